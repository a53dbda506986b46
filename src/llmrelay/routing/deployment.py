"""One deployment of a model group and its live state.

State is kept per router (not per process) and only touched under the deployment's lock, so
a router can be shared by threads. Everything is O(1) per call.

In shared mode (:mod:`llmrelay.routing.shared_usage`) the ``remote_*`` fields hold what the
other instances report (their requests and tokens this minute, their requests in flight); the
strategies add them to this instance's own counts. They are 0 otherwise.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from typing import Any

from ..cost import deployment_prices
from ..litellm_params import ROUTER_PARAMS

__all__ = ["Deployment", "ROUTER_ONLY_PARAMS", "provider_of"]

#: ``litellm_params`` keys the router consumes instead of passing them to ``completion``
#: (the table is :data:`llmrelay.litellm_params.LITELLM_PARAMS`).
ROUTER_ONLY_PARAMS = ROUTER_PARAMS

#: Window of the rpm/tpm counters (seconds).
USAGE_WINDOW = 60.0
#: Weight of the newest sample in the latency moving average.
LATENCY_ALPHA = 0.3


def _resolve_env(value: Any) -> Any:
    """LiteLLM's ``"os.environ/NAME"`` convention for secrets in config files."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        return os.environ.get(value[len("os.environ/"):])
    return value


def _positive_number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, got {value!r}") from None
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return float(value)


def _stable_id(name: str, params: dict[str, Any], index: int) -> str:
    """A deployment's generated ``model_info.id``: a digest of its group, params (its
    ``api_key`` left out) and place in the list, so every process (``--workers``, instances) with
    the same config names it alike, as LiteLLM's generated ids do; metrics labelled by
    ``model_id`` then add up across processes."""
    import orjson

    blob = orjson.dumps([name, index, {k: v for k, v in params.items() if k != "api_key"}],
                        option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(blob).hexdigest()[:12]


class Deployment:
    """A ``model_list`` entry: ``model_name`` (its group), ``litellm_params``, ``model_info``."""

    __slots__ = (
        "id", "model_name", "model", "litellm_params", "model_info", "kwargs", "api_base",
        "rpm", "tpm", "weight", "timeout", "stream_timeout", "stream_idle_timeout",
        "max_parallel_requests", "order", "cooldown_time", "tags", "input_cost_per_token",
        "output_cost_per_token", "region_name",
        "in_flight", "fails", "cooldown_until", "cooldown_reason",
        "window_start", "window_requests", "window_tokens", "past_requests", "past_tokens",
        "remote_requests", "remote_tokens", "remote_in_flight",
        "latency", "ttft", "successes", "failures", "lock", "shared", "prices", "plan",
    )

    def __init__(self, entry: dict[str, Any], index: int) -> None:
        if not isinstance(entry, dict):
            raise ValueError(f"model_list[{index}] must be a dict, got {type(entry).__name__}")
        name = entry.get("model_name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"model_list[{index}] needs a 'model_name' (the group name)")
        params = entry.get("litellm_params")
        if not isinstance(params, dict) or not isinstance(params.get("model"), str):
            raise ValueError(f"model_list[{index}] ({name}) needs litellm_params with a 'model'")
        info = dict(entry.get("model_info") or {})
        self.model_name = name
        self.litellm_params = params
        self.model_info = info
        self.id = str(info.get("id") or entry.get("id") or _stable_id(name, params, index))
        info.setdefault("id", self.id)
        self.model = params["model"]
        where = f"model_list[{index}] ({name})"
        self.rpm = _positive_number(params.get("rpm", entry.get("rpm", info.get("rpm"))), f"{where} rpm")
        self.tpm = _positive_number(params.get("tpm", entry.get("tpm", info.get("tpm"))), f"{where} tpm")
        self.weight = _positive_number(params.get("weight", entry.get("weight", info.get("weight"))), f"{where} weight")
        self.timeout = _positive_number(params.get("timeout"), f"{where} timeout")
        self.stream_timeout = _positive_number(params.get("stream_timeout"), f"{where} stream_timeout")
        self.stream_idle_timeout = _positive_number(params.get("stream_idle_timeout"), f"{where} stream_idle_timeout")
        mpr = params.get("max_parallel_requests", entry.get("max_parallel_requests"))
        self.max_parallel_requests = int(mpr) if mpr is not None else None
        self.order = params.get("order", entry.get("order"))
        self.cooldown_time = _positive_number(params.get("cooldown_time", entry.get("cooldown_time")),
                                              f"{where} cooldown_time")
        tags = params.get("tags", entry.get("tags"))
        self.tags = frozenset(tags) if isinstance(tags, (list, tuple, set, frozenset)) else frozenset()
        self.input_cost_per_token = _positive_number(
            params.get("input_cost_per_token", info.get("input_cost_per_token")), f"{where} input_cost_per_token")
        self.output_cost_per_token = _positive_number(
            params.get("output_cost_per_token", info.get("output_cost_per_token")), f"{where} output_cost_per_token")
        self.region_name = params.get("region_name")
        self.kwargs = {
            k: _resolve_env(v) for k, v in params.items() if k != "model" and k not in ROUTER_ONLY_PARAMS
        }
        self.api_base = self.kwargs.get("api_base") or self.kwargs.get("base_url")
        #: The price overrides of litellm_params and model_info (None: the table's prices apply).
        self.prices: dict[str, Any] | None = deployment_prices(info, params)
        #: Its streamed calls' ``llmrelay.main.StreamPlan`` (None: none applies), worked out by
        #: the router on first use; False until then.
        self.plan: Any = False
        self.in_flight = 0
        self.fails: deque[float] = deque()
        self.cooldown_until = 0.0
        self.cooldown_reason: str | None = None
        self.window_start = 0.0
        self.window_requests = 0
        self.window_tokens = 0
        #: Requests/tokens counted in earlier windows (so ``past + window`` only grows).
        self.past_requests = 0
        self.past_tokens = 0
        self.remote_requests = 0
        self.remote_tokens = 0
        self.remote_in_flight = 0
        self.latency: float | None = None
        self.ttft: float | None = None
        self.successes = 0
        self.failures = 0
        self.lock = threading.Lock()
        self.shared: Any = None  # the router's RouterShared in shared (Redis) mode

    # ------------------------------------------------------------------ availability
    def cooling(self, now: float) -> bool:
        return self.cooldown_until > now

    def available(self, now: float) -> bool:
        """Neither cooling down nor at a limit: may be called now."""
        return self.cooldown_until <= now and not self.over_limit(now)

    def _roll(self, now: float) -> None:
        if now - self.window_start >= USAGE_WINDOW:
            self.window_start = now
            self.past_requests += self.window_requests
            self.past_tokens += self.window_tokens
            self.window_requests = 0
            self.window_tokens = 0

    def over_limit(self, now: float) -> bool:
        """At its rpm/tpm (this minute) or at its max_parallel_requests."""
        if self.max_parallel_requests is not None and self.in_flight >= self.max_parallel_requests:
            return True
        if self.rpm is None and self.tpm is None:
            return False
        self._roll(now)
        if self.rpm is not None and self.window_requests >= self.rpm:
            return True
        return self.tpm is not None and self.window_tokens >= self.tpm

    def limit_frees_in(self, now: float) -> float:
        """Seconds until the rpm/tpm window rolls over (0 if limited by parallelism only)."""
        if self.rpm is None and self.tpm is None:
            return 0.0
        return max(0.0, self.window_start + USAGE_WINDOW - now)

    def fill_window(self, now: float, kind: str, frees_in: float) -> None:
        """Count as full on ``kind`` ("rpm" or "tpm") until ``frees_in`` seconds from ``now``
        (another instance used the shared limit up). The filler is not usage: :meth:`usage`
        does not count it."""
        with self.lock:
            self.window_start = now - (USAGE_WINDOW - frees_in)
            if kind == "rpm":
                fill = max(0, int(self.rpm or 0) - self.window_requests)
                self.window_requests += fill
                self.past_requests -= fill
            elif kind == "tpm":
                fill = max(0, int(self.tpm or 0) - self.window_tokens)
                self.window_tokens += fill
                self.past_tokens -= fill

    def usage(self) -> tuple[int, int]:
        """(requests, tokens) counted here since the deployment was made (only grows)."""
        with self.lock:
            return self.past_requests + self.window_requests, self.past_tokens + self.window_tokens

    # ------------------------------------------------------------------ bookkeeping
    def start(self, now: float) -> None:
        with self.lock:
            self.in_flight += 1
            self._roll(now)
            self.window_requests += 1

    def done(self) -> None:
        with self.lock:
            if self.in_flight > 0:
                self.in_flight -= 1
        if self.shared is not None:
            self.shared.done(self)

    def add_tokens(self, tokens: int) -> None:
        if tokens:
            with self.lock:
                self.window_tokens += tokens
            if self.shared is not None:
                self.shared.tokens(self, tokens)

    def success(self, latency: float, stream: bool) -> None:
        with self.lock:
            self.successes += 1
            if stream:
                old = self.ttft
                self.ttft = latency if old is None else old + LATENCY_ALPHA * (latency - old)
            else:
                old = self.latency
                self.latency = latency if old is None else old + LATENCY_ALPHA * (latency - old)

    def failure(
        self,
        now: float,
        allowed_fails: int,
        cooldown_time: float,
        window: float,
        retry_after: float | None,
        reason: str,
        elapsed: float | None = None,
        stream: bool = False,
    ) -> bool:
        """Record a failure; return True if the deployment was just put in cooldown.

        ``retry_after`` (a 429's Retry-After) cools the deployment down for that long at once.
        Otherwise it cools down for ``cooldown_time`` when it has failed more than
        ``allowed_fails`` times within ``window`` seconds. A timed-out attempt also counts as
        a latency sample, so latency-based routing moves away from slow deployments.
        """
        with self.lock:
            self.failures += 1
            if elapsed is not None:
                if stream:
                    self.ttft = elapsed if self.ttft is None else max(self.ttft, elapsed)
                else:
                    self.latency = elapsed if self.latency is None else max(self.latency, elapsed)
            if retry_after is not None and retry_after > 0:
                until = now + retry_after
                if until > self.cooldown_until:
                    self.cooldown_until = until
                    self.cooldown_reason = reason
                self.fails.clear()
                return True
            fails = self.fails
            fails.append(now)
            while fails and now - fails[0] > window:
                fails.popleft()
            if len(fails) > allowed_fails and cooldown_time > 0:
                self.cooldown_until = now + cooldown_time
                self.cooldown_reason = reason
                fails.clear()
                return True
            return False

    def describe(self) -> dict[str, Any]:
        """The public view (``get_model_list`` entries)."""
        return {"model_name": self.model_name, "litellm_params": self.litellm_params, "model_info": self.model_info}

    def __repr__(self) -> str:
        return f"<Deployment {self.model_name}:{self.id} {self.model} {self.api_base or ''}>"


def provider_of(dep: Deployment) -> str | None:
    """The provider prefix a deployment's model resolves to (None when it does not resolve)."""
    from ..exceptions import BadRequestError
    from ..providers.registry import resolve

    try:
        return resolve(dep.model, dep.litellm_params.get("custom_llm_provider"))[0]
    except BadRequestError:
        return None
