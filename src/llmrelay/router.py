"""``Router``: load balancing, retries, fallbacks, cooldowns and timeouts over model groups.

    router = Router(model_list=[
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "...", "rpm": 600}},
        {"model_name": "gpt", "litellm_params": {"model": "azure/gpt-4o-mini", "api_base": "...", "rpm": 300}},
        {"model_name": "backup", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest"}},
    ], fallbacks=[{"gpt": ["backup"]}], num_retries=2, stream_timeout=10)
    response = router.completion(model="gpt", messages=[...])
    for chunk in router.completion(model="gpt", messages=[...], stream=True): ...

``completion``/``acompletion`` return exactly what :func:`llmrelay.completion` returns (a
``ModelResponse`` or the ``CustomStreamWrapper``); ``_hidden_params`` gains ``model_group``,
``model_id`` and ``api_base``.

How a call runs (docs in ``docs/router.md``):

1. Pick a deployment of the group: not cooling down, under its rpm/tpm/max_parallel_requests,
   chosen by the routing strategy (``simple-shuffle``, ``least-busy``,
   ``latency-based-routing``, ``usage-based-routing``).
2. Call it (``num_retries=0`` in the library: the router does the retrying).
3. On a retryable failure (429, 408, 5xx, connection error, timeout) retry up to
   ``num_retries`` times, on a deployment not yet tried when there is one (then at once),
   otherwise after exponential backoff with jitter or the upstream's Retry-After.
4. When the group has failed, try the fallback groups in order: ``context_window_fallbacks``
   for ContextWindowExceededError, ``content_policy_fallbacks`` for
   ContentPolicyViolationError (each then the generic list), ``fallbacks`` for anything
   else except the caller's own 400/422 mistakes.
5. Streams: the router reads the first chunk before returning the stream, so every failure
   before it falls back transparently. After the first chunk nothing is retried: the error
   reaches the caller typed, with ``generated_content`` (the text so far) and ``attempts``.

The raised exception is the last failure; ``exc.attempts`` lists every deployment tried, in
order, with the error and status of each. An unknown group raises ``NotFoundError`` (404,
code ``model_not_found``), as OpenAI does for an unknown model; LiteLLM raises a 400 here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterable

from .exceptions import APIError, LLMRelayError, NotFoundError, RateLimitError, Timeout
from .routing.deployment import Deployment
from .routing.policy import attempt_record, backoff, counts_against_deployment, fallback_kind, retryable
from .routing.strategies import get_strategy
from .routing.streams import TrackedSource

__all__ = ["Router"]

log = logging.getLogger("llmrelay.router")

_monotonic = time.monotonic

#: Call keyword arguments the router consumes (the rest go to ``completion``).
_ROUTER_CALL_KWARGS = (
    "num_retries",
    "max_retries",
    "timeout",
    "request_timeout",
    "stream_timeout",
    "stream_idle_timeout",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
)

#: LiteLLM Router options that are accepted and ignored (caching, redis, alerting…).
_IGNORED_OPTIONS = frozenset(
    {
        "redis_host", "redis_port", "redis_password", "redis_url", "cache_responses", "cache_kwargs",
        "caching_groups", "client_ttl", "debug_level", "set_verbose", "alerting_config",
        "polling_interval", "provider_budget_config", "enable_pre_call_checks", "model_group_alias",
        "router_general_settings", "assistants_config", "retry_policy", "allowed_fails_policy",
        "enable_tag_filtering", "optional_pre_call_checks", "ignore_invalid_deployments",
    }
)


def _fallback_map(value: Any, what: str) -> dict[str, list[str]]:
    """``[{"a": ["b", "c"]}, ...]`` (LiteLLM's shape) or ``{"a": [...]}`` → a dict."""
    if value is None:
        return {}
    items: Iterable[Any] = value if isinstance(value, list) else [value]
    out: dict[str, list[str]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(f"{what} must be a list of {{group: [fallback groups]}} dicts, got {item!r}")
        for key, targets in item.items():
            if isinstance(targets, str):
                targets = [targets]
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise ValueError(f"{what}[{key!r}] must be a list of group names, got {targets!r}")
            out.setdefault(key, []).extend(targets)
    return out


def _seconds(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


class Router:
    """Routes calls over groups of deployments (see the module docstring)."""

    def __init__(
        self,
        model_list: list[dict[str, Any]] | None = None,
        routing_strategy: str = "simple-shuffle",
        routing_strategy_args: dict[str, Any] | None = None,
        num_retries: int | None = None,
        retry_after: float = 0.0,
        timeout: float | None = None,
        stream_timeout: float | None = None,
        stream_idle_timeout: float | None = None,
        fallbacks: list[dict[str, list[str]]] | None = None,
        context_window_fallbacks: list[dict[str, list[str]]] | None = None,
        content_policy_fallbacks: list[dict[str, list[str]]] | None = None,
        default_fallbacks: list[str] | None = None,
        allowed_fails: int | None = None,
        cooldown_time: float | None = None,
        allowed_fails_window: float = 60.0,
        disable_cooldowns: bool = False,
        rate_limit_wait: float = 0.0,
        **options: Any,
    ) -> None:
        """Build a router.

        ``model_list`` has the config file's shape: ``model_name`` (the group), ``litellm_params``
        (``model`` plus anything ``completion`` takes, and ``rpm``/``tpm``/``weight``/
        ``timeout``/``stream_timeout``/``stream_idle_timeout``/``max_parallel_requests`` for the
        router) and ``model_info`` (``id``…). ``timeout`` bounds a whole non-streaming call;
        ``stream_timeout`` the time to a stream's first chunk; ``stream_idle_timeout`` the gap
        between chunks. A deployment that fails more than ``allowed_fails`` (default 3) times
        within ``allowed_fails_window`` seconds is skipped for ``cooldown_time`` (default 5) s;
        a 429 with Retry-After cools it down for that long. ``rate_limit_wait``: how long a call
        may wait for a deployment under its rpm/tpm before failing with RateLimitError.
        """
        unknown = set(options) - _IGNORED_OPTIONS
        if unknown:
            raise TypeError(f"Router() got unexpected keyword arguments: {sorted(unknown)}")
        for name in set(options) & _IGNORED_OPTIONS:
            log.debug("Router option %s is accepted and ignored", name)
        if num_retries is None:
            from . import settings

            num_retries = settings.get("num_retries") or 0
        if isinstance(num_retries, bool) or not isinstance(num_retries, int) or num_retries < 0:
            raise ValueError(f"num_retries must be a non-negative integer, got {num_retries!r}")
        self.routing_strategy = routing_strategy
        self._pick = get_strategy(routing_strategy, routing_strategy_args)
        self._usage_based = routing_strategy.startswith("usage-based")
        self.num_retries = num_retries
        self.retry_after = float(retry_after or 0.0)
        self.timeout = _seconds(timeout, "timeout")
        self.stream_timeout = _seconds(stream_timeout, "stream_timeout")
        self.stream_idle_timeout = _seconds(stream_idle_timeout, "stream_idle_timeout")
        self.allowed_fails = 3 if allowed_fails is None else int(allowed_fails)
        self.cooldown_time = 5.0 if cooldown_time is None else float(cooldown_time)
        self.allowed_fails_window = float(allowed_fails_window)
        self.disable_cooldowns = bool(disable_cooldowns)
        self.rate_limit_wait = float(rate_limit_wait or 0.0)
        self.fallbacks = _fallback_map(fallbacks, "fallbacks")
        self.context_window_fallbacks = _fallback_map(context_window_fallbacks, "context_window_fallbacks")
        self.content_policy_fallbacks = _fallback_map(content_policy_fallbacks, "content_policy_fallbacks")
        self.default_fallbacks = list(default_fallbacks or [])
        self._groups: dict[str, list[Deployment]] = {}
        self._by_id: dict[str, Deployment] = {}
        self.set_model_list(model_list or [])

    # ================================================================== model list
    def set_model_list(self, model_list: list[dict[str, Any]]) -> None:
        """Replace the deployments (their health state starts fresh)."""
        if not isinstance(model_list, list):
            raise ValueError(f"model_list must be a list of dicts, got {type(model_list).__name__}")
        groups: dict[str, list[Deployment]] = {}
        by_id: dict[str, Deployment] = {}
        for i, entry in enumerate(model_list):
            dep = Deployment(entry, i)
            if dep.id in by_id:
                raise ValueError(f"model_list[{i}]: duplicate model_info.id {dep.id!r}")
            by_id[dep.id] = dep
            groups.setdefault(dep.model_name, []).append(dep)
        for group, deps in groups.items():
            if any(d.order is not None for d in deps):
                deps.sort(key=lambda d: (d.order is None, d.order or 0))
        self._groups = groups
        self._by_id = by_id
        self._check_fallbacks()

    def _check_fallbacks(self) -> None:
        for what, table in (
            ("fallbacks", self.fallbacks),
            ("context_window_fallbacks", self.context_window_fallbacks),
            ("content_policy_fallbacks", self.content_policy_fallbacks),
        ):
            for key, targets in table.items():
                for target in targets:
                    if target not in self._groups:
                        raise ValueError(f"{what}: {key!r} falls back to {target!r}, which is not a model_name in model_list")
        for target in self.default_fallbacks:
            if target not in self._groups:
                raise ValueError(f"default_fallbacks: {target!r} is not a model_name in model_list")

    def add_deployment(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Add one ``model_list`` entry; return its public view."""
        dep = Deployment(entry, len(self._by_id))
        if dep.id in self._by_id:
            raise ValueError(f"duplicate model_info.id {dep.id!r}")
        self._by_id[dep.id] = dep
        self._groups.setdefault(dep.model_name, []).append(dep)
        return dep.describe()

    def delete_deployment(self, id: str) -> bool:  # noqa: A002 - LiteLLM's name
        """Remove a deployment by ``model_info.id``; False if there is none."""
        dep = self._by_id.pop(id, None)
        if dep is None:
            return False
        group = self._groups.get(dep.model_name, [])
        group.remove(dep)
        if not group:
            del self._groups[dep.model_name]
        return True

    @property
    def model_names(self) -> list[str]:
        """The group names, in ``model_list`` order."""
        return list(self._groups)

    def get_model_names(self) -> list[str]:
        return self.model_names

    def get_model_list(self, model_name: str | None = None) -> list[dict[str, Any]]:
        """The ``model_list`` entries (of one group when ``model_name`` is given)."""
        if model_name is not None:
            return [d.describe() for d in self._groups.get(model_name, [])]
        return [d.describe() for deps in self._groups.values() for d in deps]

    def get_deployments(self, model_name: str) -> list[dict[str, Any]]:
        """The entries of group ``model_name`` ([] if there is no such group)."""
        return self.get_model_list(model_name)

    def get_deployment(self, model_id: str) -> dict[str, Any] | None:
        dep = self._by_id.get(model_id)
        return dep.describe() if dep is not None else None

    def deployment_state(self, model_name: str | None = None) -> list[dict[str, Any]]:
        """Live health of each deployment (for dashboards and tests)."""
        now = _monotonic()
        deps = self._groups.get(model_name, []) if model_name else list(self._by_id.values())
        return [
            {
                "model_name": d.model_name,
                "id": d.id,
                "in_flight": d.in_flight,
                "cooling_down_for": max(0.0, d.cooldown_until - now),
                "cooldown_reason": d.cooldown_reason if d.cooling(now) else None,
                "rpm_used": d.window_requests,
                "tpm_used": d.window_tokens,
                "latency": d.latency,
                "ttft": d.ttft,
                "successes": d.successes,
                "failures": d.failures,
            }
            for d in deps
        ]

    def reset_cooldowns(self) -> None:
        for dep in self._by_id.values():
            dep.cooldown_until = 0.0
            dep.fails.clear()

    def _group(self, model: Any) -> list[Deployment]:
        deps = self._groups.get(model)
        if deps:
            return deps
        dep = self._by_id.get(model) if isinstance(model, str) else None
        if dep is not None:
            return [dep]
        raise NotFoundError(
            f"No model group named {model!r}. Known groups: {sorted(self._groups)}",
            model=model if isinstance(model, str) else None,
            code="model_not_found",
            param="model",
            error_type="invalid_request_error",
        )

    # ================================================================== choosing
    def _available(self, deps: list[Deployment], tried: set[str], now: float) -> list[Deployment]:
        avail = [d for d in deps if d.cooldown_until <= now and not d.over_limit(now)]
        if tried and len(avail) > 1:
            fresh = [d for d in avail if d.id not in tried]
            if fresh:
                return fresh
        return avail

    def _unavailable(self, group: str, deps: list[Deployment], now: float) -> tuple[RateLimitError, float, bool]:
        """The error for "nothing available", seconds until something may be, and whether
        only limits (not cooldowns) are in the way (only then is waiting allowed)."""
        cooling = [d for d in deps if d.cooling(now)]
        limited = [d for d in deps if not d.cooling(now)]
        if limited:
            wait = min(d.limit_frees_in(now) for d in limited)
            message = f"All deployments of {group!r} are at their rpm/tpm/parallel-request limits"
        else:
            wait = min(d.cooldown_until for d in cooling) - now
            message = f"All deployments of {group!r} are cooling down after failures (next back in {wait:.1f}s)"
        err = RateLimitError(message, model=group, code="no_deployments_available")
        err.retry_after = wait
        return err, wait, bool(limited)

    def _choose(self, group: str, deps: list[Deployment], stream: bool, tried: set[str]) -> Deployment | RateLimitError:
        now = _monotonic()
        avail = self._available(deps, tried, now)
        if avail:
            return avail[0] if len(avail) == 1 else self._pick(avail, stream)
        err, _, _ = self._unavailable(group, deps, now)
        return err

    def _choose_or_wait_sync(self, group: str, deps: list[Deployment], stream: bool, tried: set[str]) -> Deployment | RateLimitError:
        choice = self._choose(group, deps, stream, tried)
        if isinstance(choice, Deployment) or self.rate_limit_wait <= 0:
            return choice
        deadline = _monotonic() + self.rate_limit_wait
        while True:
            now = _monotonic()
            err, wait, limited = self._unavailable(group, deps, now)
            if not limited or now >= deadline:
                return err
            time.sleep(max(0.005, min(wait or 0.05, 0.05, deadline - now)))
            choice = self._choose(group, deps, stream, tried)
            if isinstance(choice, Deployment):
                return choice

    async def _choose_or_wait_async(self, group: str, deps: list[Deployment], stream: bool, tried: set[str]) -> Deployment | RateLimitError:
        choice = self._choose(group, deps, stream, tried)
        if isinstance(choice, Deployment) or self.rate_limit_wait <= 0:
            return choice
        deadline = _monotonic() + self.rate_limit_wait
        while True:
            now = _monotonic()
            err, wait, limited = self._unavailable(group, deps, now)
            if not limited or now >= deadline:
                return err
            await asyncio.sleep(max(0.005, min(wait or 0.05, 0.05, deadline - now)))
            choice = self._choose(group, deps, stream, tried)
            if isinstance(choice, Deployment):
                return choice

    def _retry_wait(self, group_deps: list[Deployment], tried: set[str], attempt: int, exc: BaseException) -> float:
        """No wait when an untried deployment is available; else backoff / Retry-After."""
        now = _monotonic()
        for d in group_deps:
            if d.id not in tried and d.cooldown_until <= now and not d.over_limit(now):
                return max(0.0, self.retry_after)
        return backoff(attempt, exc, self.retry_after)

    # ================================================================== bookkeeping
    def _record_failure(self, dep: Deployment, exc: BaseException, elapsed: float | None, stream: bool) -> None:
        if self.disable_cooldowns or not counts_against_deployment(exc):
            dep.failures += 1
            return
        retry_after = getattr(exc, "retry_after", None) if getattr(exc, "status_code", None) == 429 else None
        cooled = dep.failure(
            _monotonic(),
            self.allowed_fails,
            self.cooldown_time,
            self.allowed_fails_window,
            retry_after,
            type(exc).__name__,
            elapsed if isinstance(exc, Timeout) else None,
            stream,
        )
        if cooled:
            log.info("deployment %s of %s cooling down (%s)", dep.id, dep.model_name, type(exc).__name__)

    def _call_kwargs(self, dep: Deployment, kwargs: dict[str, Any], overrides: dict[str, Any], stream: bool) -> tuple[dict[str, Any], float | None, float | None]:
        """kwargs for ``completion`` (deployment's params, then the caller's) and the
        router-enforced timeouts: (total or time-to-first-chunk, idle between chunks)."""
        kw = dict(dep.kwargs)
        if kwargs:
            kw.update(kwargs)
        kw["num_retries"] = 0
        if stream:
            first = overrides.get("stream_timeout") or dep.stream_timeout or self.stream_timeout
            idle = overrides.get("stream_idle_timeout") or dep.stream_idle_timeout or self.stream_idle_timeout
            if idle is None:
                # LiteLLM's per-call ``timeout`` on a stream means the per-read timeout
                idle = overrides.get("timeout") or dep.timeout or self.timeout
            if idle is not None:
                kw["timeout"] = idle
            return kw, first, idle
        total = overrides.get("timeout") or dep.timeout or self.timeout
        if total is not None:
            kw["timeout"] = total
        return kw, total, None

    def _finish_ok(self, dep: Deployment, group: str, result: Any, attempts: list, count: bool) -> None:
        hidden = getattr(result, "_hidden_params", None)
        if isinstance(hidden, dict):
            hidden["model_group"] = group
            hidden["model_id"] = dep.id
            if dep.api_base and not hidden.get("api_base"):
                hidden["api_base"] = dep.api_base
            if attempts:
                hidden["router_attempts"] = list(attempts)
        if count:
            usage = getattr(result, "usage", None)
            tokens = getattr(usage, "total_tokens", 0) if usage is not None else 0
            if tokens:
                dep.add_tokens(tokens)

    @staticmethod
    def _split_overrides(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        overrides: dict[str, Any] = {}
        if kwargs:
            for key in _ROUTER_CALL_KWARGS:
                if key in kwargs:
                    kwargs = dict(kwargs) if not overrides else kwargs
                    overrides[key] = kwargs.pop(key)
            if "request_timeout" in overrides and "timeout" not in overrides:
                overrides["timeout"] = overrides["request_timeout"]
            if "max_retries" in overrides and "num_retries" not in overrides:
                overrides["num_retries"] = overrides["max_retries"]
        return kwargs, overrides

    def _next_group(self, model: str, exc: BaseException, tried_groups: list[str], overrides: dict[str, Any]) -> str | None:
        kind = fallback_kind(exc)
        if kind is None:
            return None
        tables = []
        if kind == "context_window":
            tables.append(_fallback_map(overrides["context_window_fallbacks"], "context_window_fallbacks")
                          if overrides.get("context_window_fallbacks") is not None else self.context_window_fallbacks)
        elif kind == "content_policy":
            tables.append(_fallback_map(overrides["content_policy_fallbacks"], "content_policy_fallbacks")
                          if overrides.get("content_policy_fallbacks") is not None else self.content_policy_fallbacks)
        tables.append(_fallback_map(overrides["fallbacks"], "fallbacks")
                      if overrides.get("fallbacks") is not None else self.fallbacks)
        for table in tables:
            chain = table.get(model)
            if chain is None:
                chain = table.get("*")
            for target in chain or ():
                if target not in tried_groups:
                    return target
        for target in self.default_fallbacks:
            if target not in tried_groups:
                return target
        return None

    @staticmethod
    def _fail(exc: BaseException, attempts: list) -> BaseException:
        if isinstance(exc, APIError):
            exc.attempts = list(attempts)
        return exc

    # ================================================================== sync
    def completion(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Route a chat completion to group ``model``; returns what ``llmrelay.completion`` does.

        Besides the library's keyword arguments: ``num_retries``, ``timeout``,
        ``stream_timeout``, ``stream_idle_timeout``, ``fallbacks``,
        ``context_window_fallbacks``, ``content_policy_fallbacks`` override the router's.
        """
        deps = self._group(model)
        kwargs, overrides = self._split_overrides(kwargs)
        attempts: list[dict[str, Any]] = []
        tried_groups = [model]
        group = model
        while True:
            try:
                return self._run_group_sync(group, deps, messages, stream, kwargs, overrides, attempts)
            except LLMRelayError as exc:
                target = self._next_group(model, exc, tried_groups, overrides)
                if target is None:
                    raise self._fail(exc, attempts) from None
                log.info("group %s failed (%s); falling back to %s", group, type(exc).__name__, target)
                tried_groups.append(target)
                group = target
                deps = self._groups[target]

    def _run_group_sync(self, group: str, deps: list[Deployment], messages: Any, stream: bool,
                        kwargs: dict[str, Any], overrides: dict[str, Any], attempts: list) -> Any:
        from .main import completion

        retries = overrides.get("num_retries")
        retries = self.num_retries if retries is None else retries
        tried: set[str] = set()
        last: BaseException | None = None
        attempt = 0
        while True:
            dep = self._choose_or_wait_sync(group, deps, stream, tried)
            if not isinstance(dep, Deployment):
                attempts.append({"model_group": group, "deployment_id": None, "error": type(dep).__name__,
                                 "status_code": 429, "message": dep.message, "elapsed": 0.0})
                raise last if last is not None else dep
            tried.add(dep.id)
            kw, limit, idle = self._call_kwargs(dep, kwargs, overrides, stream)
            count = self._usage_based or dep.tpm is not None
            start = _monotonic()
            dep.start(start)
            try:
                if not stream:
                    try:
                        result = completion(dep.model, messages, False, **kw)
                    finally:
                        dep.done()
                    dep.success(_monotonic() - start, False)
                    self._finish_ok(dep, group, result, attempts, count)
                    return result
                result = self._open_stream_sync(completion, dep, messages, kw, limit, idle, start, attempts, count)
                self._finish_ok(dep, group, result, attempts, False)
                return result
            except LLMRelayError as exc:
                elapsed = _monotonic() - start
                self._record_failure(dep, exc, elapsed, stream)
                attempts.append(attempt_record(group, dep, exc, elapsed))
                last = exc
                if attempt >= retries or not retryable(exc):
                    raise
                wait = self._retry_wait(deps, tried, attempt, exc)
                attempt += 1
                log.debug("retrying %s (attempt %d) in %.2fs after %s", group, attempt, wait, type(exc).__name__)
                if wait > 0:
                    time.sleep(wait)

    def _open_stream_sync(self, completion: Any, dep: Deployment, messages: Any, kw: dict[str, Any],
                          first_timeout: float | None, idle: float | None, start: float, attempts: list,
                          count: bool) -> Any:
        """Open the stream and read its first chunk (within ``first_timeout``)."""
        if first_timeout is not None:
            kw["timeout"] = first_timeout if idle is None else min(first_timeout, idle)
        try:
            stream = completion(dep.model, messages, True, **kw)
        except BaseException:
            dep.done()
            raise
        tracked = TrackedSource(stream.source, self, dep, stream.state, attempts, count, dep.model_name, start)
        stream.source = tracked
        timed = False
        if first_timeout is not None:
            left = first_timeout - (_monotonic() - start)
            if left <= 0:
                stream.close()
                raise _ttft_timeout(dep, first_timeout)
            timed = tracked.set_read_timeout(left)
        try:
            first = next(stream)
        except StopIteration:
            first = None
        except Timeout as exc:
            if first_timeout is not None:
                raise _ttft_timeout(dep, first_timeout) from exc
            raise
        if timed:
            from . import settings

            tracked.set_read_timeout(idle if idle is not None else settings.get("request_timeout"))
        dep.success(_monotonic() - start, True)
        tracked.delivered = True
        if first is not None:
            stream.unread(first)
        return stream

    # ================================================================== async
    async def acompletion(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        """The async twin of :meth:`completion` (returns what ``llmrelay.acompletion`` does)."""
        deps = self._group(model)
        kwargs, overrides = self._split_overrides(kwargs)
        attempts: list[dict[str, Any]] = []
        tried_groups = [model]
        group = model
        while True:
            try:
                return await self._run_group_async(group, deps, messages, stream, kwargs, overrides, attempts)
            except LLMRelayError as exc:
                target = self._next_group(model, exc, tried_groups, overrides)
                if target is None:
                    raise self._fail(exc, attempts) from None
                log.info("group %s failed (%s); falling back to %s", group, type(exc).__name__, target)
                tried_groups.append(target)
                group = target
                deps = self._groups[target]

    async def _run_group_async(self, group: str, deps: list[Deployment], messages: Any, stream: bool,
                               kwargs: dict[str, Any], overrides: dict[str, Any], attempts: list) -> Any:
        from .main import acompletion

        retries = overrides.get("num_retries")
        retries = self.num_retries if retries is None else retries
        tried: set[str] = set()
        last: BaseException | None = None
        attempt = 0
        while True:
            dep = await self._choose_or_wait_async(group, deps, stream, tried)
            if not isinstance(dep, Deployment):
                attempts.append({"model_group": group, "deployment_id": None, "error": type(dep).__name__,
                                 "status_code": 429, "message": dep.message, "elapsed": 0.0})
                raise last if last is not None else dep
            tried.add(dep.id)
            kw, limit, idle = self._call_kwargs(dep, kwargs, overrides, stream)
            count = self._usage_based or dep.tpm is not None
            start = _monotonic()
            dep.start(start)
            try:
                if not stream:
                    try:
                        if limit is None:
                            result = await acompletion(dep.model, messages, False, **kw)
                        else:
                            try:
                                result = await asyncio.wait_for(
                                    acompletion(dep.model, messages, False, **kw), limit
                                )
                            except asyncio.TimeoutError:  # not the builtin one before 3.11
                                raise Timeout(
                                    f"No response from {dep.model} within timeout={limit}s",
                                    model=dep.model,
                                ) from None
                    finally:
                        dep.done()
                    dep.success(_monotonic() - start, False)
                    self._finish_ok(dep, group, result, attempts, count)
                    return result
                result = await self._open_stream_async(acompletion, dep, messages, kw, limit, start, attempts, count)
                self._finish_ok(dep, group, result, attempts, False)
                return result
            except LLMRelayError as exc:
                elapsed = _monotonic() - start
                self._record_failure(dep, exc, elapsed, stream)
                attempts.append(attempt_record(group, dep, exc, elapsed))
                last = exc
                if attempt >= retries or not retryable(exc):
                    raise
                wait = self._retry_wait(deps, tried, attempt, exc)
                attempt += 1
                log.debug("retrying %s (attempt %d) in %.2fs after %s", group, attempt, wait, type(exc).__name__)
                if wait > 0:
                    await asyncio.sleep(wait)

    async def _open_stream_async(self, acompletion: Any, dep: Deployment, messages: Any, kw: dict[str, Any],
                                 first_timeout: float | None, start: float, attempts: list, count: bool) -> Any:
        holder: list[Any] = []

        async def open_and_peek() -> Any:
            try:
                stream = await acompletion(dep.model, messages, True, **kw)
            except BaseException:
                dep.done()
                raise
            tracked = TrackedSource(stream.source, self, dep, stream.state, attempts, count, dep.model_name, start)
            stream.source = tracked
            holder.append(stream)
            try:
                return await stream.__anext__()
            except StopAsyncIteration:
                return None

        if first_timeout is None:
            first = await open_and_peek()
        else:
            try:
                first = await asyncio.wait_for(open_and_peek(), first_timeout)
            except asyncio.TimeoutError:  # not the builtin one before 3.11
                if holder:
                    await holder[0].aclose()
                raise _ttft_timeout(dep, first_timeout) from None
        stream = holder[0]
        dep.success(_monotonic() - start, True)
        stream.source.delivered = True
        if first is not None:
            stream.unread(first)
        return stream

    def __repr__(self) -> str:
        return f"<Router strategy={self.routing_strategy!r} groups={self.model_names}>"


def _ttft_timeout(dep: Deployment, seconds: float) -> Timeout:
    return Timeout(
        f"No first chunk from {dep.model} within stream_timeout={seconds}s",
        model=dep.model,
        llm_provider=(dep.model.split("/", 1)[0] if "/" in dep.model else None),
    )
