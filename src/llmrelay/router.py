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
   otherwise after exponential backoff with jitter or the upstream's Retry-After. A
   ``retry_policy`` (or the group's ``model_group_retry_policy``) sets the count per error
   kind instead, any kind it names included (:mod:`llmrelay.routing.policies`).
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

from . import settings
from .cost import apply_prices
from .exceptions import APIError, LLMRelayError, NotFoundError, RateLimitError, Timeout
from .logging_obj import start_call
from .retry_after import DEFAULT_MAX_RETRY_AFTER, capped
from .routing import names as _names
from .routing.deployment import Deployment
from .routing.precall import DeploymentView, fitting, mock_fallback_error, mock_fallback_kind, no_fit_error
from .routing.budget_limits import BudgetLimits, parse_provider_budgets
from .routing.policies import AllowedFailsPolicy, RetryPolicy, parse_group_policies, parse_policy
from .routing.policy import attempt_record, backoff, counts_against_deployment, fallback_kind, retryable
from .routing.strategies import get_strategy
from .routing.shared import SHARED_OPTIONS, shared_from_options
from .routing.streams import TrackedSource

__all__ = ["Router", "RetryPolicy", "AllowedFailsPolicy"]

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
    "timeout_cap",
    "disable_fallbacks",
)
_ROUTER_CALL_KEYS = frozenset(_ROUTER_CALL_KWARGS)

#: LiteLLM Router options that are accepted and ignored (caching, alerting…; redis_* are
#: routing.shared.SHARED_OPTIONS).
_IGNORED_OPTIONS = frozenset(
    {
        "cache_responses", "cache_kwargs",  # used by _response_cache
        "caching_groups", "client_ttl", "debug_level", "set_verbose", "alerting_config",
        "polling_interval",
        "router_general_settings", "assistants_config",
        "enable_tag_filtering", "optional_pre_call_checks", "ignore_invalid_deployments",
    }
)


def _response_cache(options: dict[str, Any]) -> None:
    """LiteLLM's ``Router(cache_responses=True)``: set ``llmrelay.cache`` unless one is set — a
    Redis cache on the Router's ``redis_url``/``redis_host``… when given, else a local one —
    with ``cache_kwargs`` as more ``Cache`` arguments."""
    import sys

    module = sys.modules["llmrelay"]
    if module.__dict__.get("cache") is not None:
        return
    from .caching import Cache

    config: dict[str, Any] = {}
    if options.get("redis_url") or options.get("redis_host"):
        config["type"] = "redis"
        for name in ("url", "host", "port", "password", "db"):
            if options.get(f"redis_{name}") is not None:
                config[name] = options[f"redis_{name}"]
    config.update(options.get("cache_kwargs") or {})
    module.cache = Cache(**config)


#: The settings :meth:`Router.update_settings` changes (LiteLLM's list, less those not implemented).
_SETTINGS = frozenset({
    "routing_strategy_args", "routing_strategy", "allowed_fails", "cooldown_time", "num_retries", "timeout",
    "retry_after", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks",
})


def _client_fallbacks(value: Any) -> tuple[list[str], dict[str, dict[str, Any]]] | None:
    """LiteLLM's per-call (client-side) shape: ``["b", {"model": "c", "messages": [...]}]``, the
    groups to try after the called one, each optionally with its own call arguments → (groups,
    {group: arguments}); None for the router's ``[{"a": ["b"]}]`` shape."""
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(i, str) or (isinstance(i, dict) and isinstance(i.get("model"), str)) for i in value):
        return None
    groups: list[str] = []
    params: dict[str, dict[str, Any]] = {}
    for item in value:
        if isinstance(item, str):
            groups.append(item)
        else:
            groups.append(item["model"])
            extra = {k: v for k, v in item.items() if k != "model"}
            if extra:
                params[item["model"]] = extra
    return groups, params


def _fallback_map(value: Any, what: str) -> dict[str, list[str]]:
    """``[{"a": ["b", "c"]}, ...]`` (LiteLLM's shape) or ``{"a": [...]}`` → a dict; a call's
    client-side list (``["b", {"model": "c"}]``, see :func:`_client_fallbacks`) → ``{"*": [...]}``."""
    if value is None:
        return {}
    client = _client_fallbacks(value)
    if client is not None:
        return {"*": client[0]}
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


def _retry_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"num_retries must be a non-negative integer, got {value!r}")
    return value


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
        model_group_alias: dict[str, Any] | None = None,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        enable_pre_call_checks: bool = False,
        retry_policy: RetryPolicy | dict[str, int] | None = None,
        model_group_retry_policy: dict[str, RetryPolicy | dict[str, int]] | None = None,
        allowed_fails_policy: AllowedFailsPolicy | dict[str, int] | None = None,
        default_litellm_params: dict[str, Any] | None = None,
        provider_budget_config: dict[str, dict[str, Any]] | None = None,
        **options: Any,
    ) -> None:
        """Build a router.

        ``model_list`` has the config file's shape: ``model_name`` (the group), ``litellm_params``
        (``model`` plus anything ``completion`` takes, and ``rpm``/``tpm``/``weight``/
        ``timeout``/``stream_timeout``/``stream_idle_timeout``/``max_parallel_requests`` for the
        router) and ``model_info`` (``id``…). ``timeout`` bounds a whole non-streaming call;
        ``stream_timeout`` the time to a stream's first chunk and, unless ``stream_idle_timeout``
        is set, each gap between chunks; ``stream_idle_timeout`` the gaps after the first chunk.
        A deployment that fails more than ``allowed_fails`` (default 3) times
        within ``allowed_fails_window`` seconds is skipped for ``cooldown_time`` (default 5) s;
        a 429 with Retry-After cools it down for that long. ``rate_limit_wait``: how long a call
        may wait for a deployment under its rpm/tpm before failing with RateLimitError.
        ``model_group_alias``, wildcard groups (``"openai/*"``), ``order`` and ``tags``: see
        :mod:`llmrelay.routing.names`.
        ``max_retry_after`` (default 60 s) caps how long an upstream's Retry-After is honoured:
        the cooldown and the retry wait it causes (malformed values are ignored).
        ``enable_pre_call_checks``: skip deployments whose context window (``model_info``
        ``max_input_tokens`` / ``max_tokens``) is too small for the prompt; when none fits, the
        call fails with ContextWindowExceededError (so ``context_window_fallbacks`` apply).
        ``default_fallbacks`` serve any group without fallbacks of its own, and a model group
        that does not exist. ``retry_policy`` / ``model_group_retry_policy`` (a group's own,
        instead of ``retry_policy``) and ``allowed_fails_policy``: LiteLLM's per-error-kind
        counts (:class:`RetryPolicy`, :class:`AllowedFailsPolicy` or their dicts), which replace
        ``num_retries`` and ``allowed_fails`` for the kinds they name.
        ``default_litellm_params`` are added to every call's arguments (the call's own win;
        ``metadata`` merged key by key). ``provider_budget_config``
        (``{"openai": {"budget_limit": 100, "time_period": "1d"}}``) and a deployment's
        ``max_budget``/``budget_duration``: budget routing (:mod:`llmrelay.routing.budget_limits`).
        """
        unknown = set(options) - _IGNORED_OPTIONS - SHARED_OPTIONS
        if unknown:
            raise TypeError(f"Router() got unexpected keyword arguments: {sorted(unknown)}")
        #: Cooldowns, deployment limits and routing counters shared through Redis
        #: (``redis_url``/``redis_host``…; see :mod:`llmrelay.routing.shared`).
        self.shared = shared_from_options(options)
        for name in set(options) & _IGNORED_OPTIONS - {"cache_responses", "cache_kwargs"}:
            log.debug("Router option %s is accepted and ignored", name)
        if options.get("cache_responses"):
            _response_cache(options)
        self.num_retries = _retry_count(settings.get("num_retries") or 0 if num_retries is None else num_retries)
        self.routing_strategy = routing_strategy
        self.routing_strategy_args = dict(routing_strategy_args or {})
        self._pick = get_strategy(routing_strategy, routing_strategy_args)
        self._usage_based = routing_strategy.startswith("usage-based")
        if self.shared is not None:  # the counters the strategy reads, from every instance
            self.shared.made = lambda: self._wildcards.made()  # (also those made for wildcard groups)
            self.shared.share_counters(usage=self._usage_based, busy=routing_strategy == "least-busy")
        self.retry_after = float(retry_after or 0.0)
        self.timeout = _seconds(timeout, "timeout")
        self.stream_timeout = _seconds(stream_timeout, "stream_timeout")
        self.stream_idle_timeout = _seconds(stream_idle_timeout, "stream_idle_timeout")
        self.allowed_fails = 3 if allowed_fails is None else int(allowed_fails)
        self.cooldown_time = 5.0 if cooldown_time is None else float(cooldown_time)
        self.allowed_fails_window = float(allowed_fails_window)
        self.disable_cooldowns = bool(disable_cooldowns)
        self.rate_limit_wait = float(rate_limit_wait or 0.0)
        self.max_retry_after = _seconds(max_retry_after, "max_retry_after") or DEFAULT_MAX_RETRY_AFTER
        self.fallbacks = _fallback_map(fallbacks, "fallbacks")
        self.context_window_fallbacks = _fallback_map(context_window_fallbacks, "context_window_fallbacks")
        self.content_policy_fallbacks = _fallback_map(content_policy_fallbacks, "content_policy_fallbacks")
        self.default_fallbacks = list(default_fallbacks or [])
        self.model_group_alias = _names.parse_aliases(model_group_alias)
        self._wildcards = _names.Wildcards({})
        self.enable_pre_call_checks = bool(enable_pre_call_checks)
        self.retry_policy = parse_policy(retry_policy, RetryPolicy, "retry_policy")
        self.model_group_retry_policy = parse_group_policies(model_group_retry_policy)
        self.allowed_fails_policy = parse_policy(allowed_fails_policy, AllowedFailsPolicy, "allowed_fails_policy")
        self.default_litellm_params = dict(default_litellm_params or {})
        self.provider_budgets = parse_provider_budgets(provider_budget_config)
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
        self.budgets = BudgetLimits(self.provider_budgets, by_id.values())
        self._wildcards = _names.Wildcards(groups)
        self._tagged = any(d.tags for d in by_id.values())
        self._check_fallbacks()
        if getattr(self, "shared", None) is not None:
            self.shared.attach(by_id)
            if self.provider_budgets or self.budgets.own:
                self.shared.share_budgets(self.budgets)

    def _check_fallbacks(self) -> None:
        for what, table in (
            ("fallbacks", self.fallbacks),
            ("context_window_fallbacks", self.context_window_fallbacks),
            ("content_policy_fallbacks", self.content_policy_fallbacks),
        ):
            for key, targets in table.items():
                for target in targets:
                    if not self.has_group(target) and target not in self._by_id:  # (a group or a model_info.id)
                        raise ValueError(f"{what}: {key!r} falls back to {target!r}, which is not a model_name in model_list")
        for target in self.default_fallbacks:
            if not self.has_group(target):
                raise ValueError(f"default_fallbacks: {target!r} is not a model_name in model_list")

    def add_deployment(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Add one ``model_list`` entry; return its public view."""
        index = len(self._by_id)
        dep = Deployment(entry, index)
        named = isinstance(entry, dict) and (entry.get("id") or (entry.get("model_info") or {}).get("id"))
        while dep.id in self._by_id and not named:  # a generated id (after a delete): the next place's
            index += 1
            dep = Deployment(entry, index)
        if dep.id in self._by_id:
            raise ValueError(f"duplicate model_info.id {dep.id!r}")
        self._by_id[dep.id] = dep
        self._groups.setdefault(dep.model_name, []).append(dep)
        self.budgets.add(dep)
        self._tagged = self._tagged or bool(dep.tags)
        if "*" in dep.model_name:
            self._wildcards = _names.Wildcards(self._groups)
        if self.shared is not None:
            self.shared.attach(self._by_id)
            if self.shared.budgets is None and self.budgets.own:
                self.shared.share_budgets(self.budgets)
        return dep.describe()

    def delete_deployment(self, id: str) -> bool:  # noqa: A002 - LiteLLM's name
        """Remove a deployment by ``model_info.id``; False if there is none."""
        dep = self._by_id.pop(id, None)
        if dep is None:
            return False
        self.budgets.remove(id)
        group = self._groups.get(dep.model_name, [])
        group.remove(dep)
        if not group:
            del self._groups[dep.model_name]
        if self.shared is not None:
            self.shared.attach(self._by_id)
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

    def get_deployment(self, model_id: str) -> DeploymentView | None:
        """The ``model_list`` entry of deployment ``model_id`` (a copy), read as a dict or by
        attribute (``.litellm_params.api_key``), with ``model_dump()``; None if there is none."""
        dep = self._by_id.get(model_id)
        return DeploymentView.of(dep.describe()) if dep is not None else None

    @property
    def model_list(self) -> list[dict[str, Any]]:
        """LiteLLM's ``router.model_list``: every deployment as its ``model_list`` entry
        (``model_name``, ``litellm_params`` as given, ``model_info`` with its ``id``), in order;
        assigning a list is :meth:`set_model_list`."""
        return [d.describe() for d in self._by_id.values()]

    @model_list.setter
    def model_list(self, value: list[dict[str, Any]]) -> None:
        self.set_model_list(value)

    def get_model_ids(self, model_name: str | None = None) -> list[str]:
        """The deployments' ``model_info.id`` (of group ``model_name`` when given)."""
        if model_name is not None:
            return [d.id for d in self._groups.get(model_name, [])]
        return list(self._by_id)

    def has_model_id(self, _id: str) -> bool:
        """Whether a deployment has ``model_info.id`` ``_id``."""
        return _id in self._by_id

    def get_model_info(self, id: str) -> dict[str, Any] | None:  # noqa: A002 - LiteLLM's name
        """The ``model_list`` entry of deployment ``id``; None if there is none."""
        dep = self._by_id.get(id)
        return dep.describe() if dep is not None else None

    def get_model_group_info(self, model_group: str) -> Any:
        """LiteLLM's ``ModelGroupInfo`` of a group (providers, windows, prices, ``supports_*``…;
        see :mod:`llmrelay.routing.info`); None for a name that is not a group or an alias."""
        from .routing.info import group_info

        deps = self._groups.get(model_group)
        if not deps:
            alias = self.model_group_alias.get(model_group)
            deps = self._groups.get(alias[0]) if alias is not None else None
        return group_info(model_group, deps) if deps else None

    def upsert_deployment(self, deployment: Any) -> dict[str, Any] | None:
        """Add a deployment, or replace the one with its ``model_info.id`` when its
        ``litellm_params`` or ``model_name`` changed; the entry, or None when nothing changed."""
        entry = deployment.model_dump() if hasattr(deployment, "model_dump") else deployment
        if not isinstance(entry, dict):
            raise ValueError(f"deployment must be a model_list entry (a dict), got {type(deployment).__name__}")
        _id = (entry.get("model_info") or {}).get("id") or entry.get("id")
        old = self._by_id.get(str(_id)) if _id is not None else None
        if old is not None:
            if old.litellm_params == entry.get("litellm_params") and old.model_name == entry.get("model_name"):
                return None
            self.delete_deployment(old.id)
        return self.add_deployment(entry)

    # ------------------------------------------------------------------ settings
    def get_settings(self) -> dict[str, Any]:
        """LiteLLM's router settings, as :meth:`update_settings` takes them (fallbacks in
        LiteLLM's ``[{group: [groups]}]`` shape)."""
        return {
            "routing_strategy_args": dict(self.routing_strategy_args),
            "routing_strategy": self.routing_strategy,
            "allowed_fails": self.allowed_fails,
            "cooldown_time": self.cooldown_time,
            "num_retries": self.num_retries,
            "timeout": self.timeout,
            "retry_after": self.retry_after,
            "fallbacks": [{k: list(v)} for k, v in self.fallbacks.items()],
            "context_window_fallbacks": [{k: list(v)} for k, v in self.context_window_fallbacks.items()],
            "content_policy_fallbacks": [{k: list(v)} for k, v in self.content_policy_fallbacks.items()],
        }

    def update_settings(self, **kwargs: Any) -> None:
        """Change router settings at run time (the keys of :meth:`get_settings`, and
        ``max_retries`` for ``num_retries``); other keys are ignored with a warning, as LiteLLM
        ignores them. Values are checked as the constructor checks them."""
        values: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key == "max_retries":
                key = "num_retries"
            if key not in _SETTINGS:
                log.warning("Router.update_settings: setting %r is not allowed; ignored", key)
                continue
            values[key] = value
        if "num_retries" in values:
            values["num_retries"] = _retry_count(int(values["num_retries"]))
        if "timeout" in values:
            values["timeout"] = _seconds(values["timeout"], "timeout")
        for key in ("allowed_fails", "cooldown_time", "retry_after"):
            if key in values:
                values[key] = (int if key == "allowed_fails" else float)(values[key])
        for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            if key in values:
                values[key] = _fallback_map(values[key], key)
        strategy = values.pop("routing_strategy", self.routing_strategy)
        args = values.pop("routing_strategy_args", None)
        if strategy != self.routing_strategy or args is not None:
            args = self.routing_strategy_args if args is None else dict(args)
            pick = get_strategy(strategy, args)
            if self.shared is not None and strategy != self.routing_strategy:
                self.shared.share_counters(usage=strategy.startswith("usage-based"), busy=strategy == "least-busy")
            self._pick, self.routing_strategy, self.routing_strategy_args = pick, strategy, args
            self._usage_based = strategy.startswith("usage-based")
        old = {key: getattr(self, key) for key in values}
        for key, value in values.items():
            setattr(self, key, value)
        try:
            self._check_fallbacks()
        except ValueError:
            for key, value in old.items():
                setattr(self, key, value)
            raise

    # ------------------------------------------------------------------ picking
    def get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        input: Any = None,  # noqa: A002 - LiteLLM's name
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The deployment a call to ``model`` would use now (its ``model_list`` entry): not
        cooling down, under its limits, chosen by the routing strategy, and with
        ``enable_pre_call_checks`` big enough for ``messages``. Nothing is counted.
        ``specific_deployment=True``: ``model`` is a deployment's id or ``litellm_params.model``.

        Raises NotFoundError for an unknown group, RateLimitError when none is available and
        ContextWindowExceededError when none fits the messages.
        """
        kwargs = dict(request_kwargs or {})
        if specific_deployment:
            dep = self._by_id.get(model) or next((d for d in self._by_id.values() if d.model == model), None)
            if dep is not None:
                return dep.describe()
        deps = self._select(model, _names.request_tags(kwargs) if kwargs else frozenset())
        if self.enable_pre_call_checks and messages is not None:
            fit = fitting(deps, messages, kwargs)
            if not fit:
                raise no_fit_error(model, deps, messages, kwargs)
            deps = fit
        choice = self._choose(model, deps, bool(kwargs.get("stream")), set())
        if isinstance(choice, Deployment):
            return choice.describe()
        raise choice

    async def async_get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        input: Any = None,  # noqa: A002
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The async twin of :meth:`get_available_deployment`."""
        return self.get_available_deployment(model, messages, input, specific_deployment, request_kwargs)

    def reset(self) -> None:
        """LiteLLM's test helper: clear ``llmrelay``'s success/failure callback lists and start
        every deployment's health (cooldowns, counters, latencies) afresh."""
        import sys

        module = sys.modules["llmrelay"]
        for name in ("success_callback", "_async_success_callback", "failure_callback", "_async_failure_callback"):
            setattr(module, name, [])
        self.set_model_list(self.model_list)

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
                # the other instances' (shared mode, least-busy and usage-based routing)
                "remote_in_flight": d.remote_in_flight,
                "remote_rpm_used": d.remote_requests,
                "remote_tpm_used": d.remote_tokens,
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

    def has_group(self, model: Any) -> bool:
        """Whether ``model`` names a group, an alias of one, or matches a wildcard group."""
        return model in self._groups or model in self.model_group_alias or self._wildcards.matches(model)

    def _select(self, model: Any, tags: frozenset[str]) -> list[Deployment]:
        """The deployments a call to ``model`` with ``tags`` may use."""
        return _names.by_tags(model, self._group(model), tags) if tags or self._tagged else self._group(model)

    def _specific(self, model: Any) -> Deployment | None:
        """``specific_deployment=True``: the deployment whose id or ``litellm_params.model`` is
        ``model`` (None when ``model`` is a group name or matches none)."""
        if model in self._groups:
            return None
        return self._by_id.get(model) or next((d for d in self._by_id.values() if d.model == model), None)

    def _group(self, model: Any) -> list[Deployment]:
        deps = self._groups.get(model)
        if deps:
            return deps
        alias = self.model_group_alias.get(model)
        if alias is not None and alias[0] != model:
            return self._group(alias[0])
        dep = self._by_id.get(model) if isinstance(model, str) else None
        if dep is not None:
            return [dep]
        deps = self._wildcards.deployments(model, self._groups)
        if deps:
            return deps
        raise NotFoundError(
            f"No model group named {model!r}. Known groups: {sorted(self._groups)}",
            model=model if isinstance(model, str) else None,
            code="model_not_found",
            param="model",
            error_type="invalid_request_error",
        )

    # ================================================================== choosing
    def _available(self, deps: list[Deployment], tried: set[str], now: float) -> list[Deployment]:
        avail = [d for d in deps if d.available(now)]
        if tried and len(avail) > 1:
            fresh = [d for d in avail if d.id not in tried]
            if fresh:
                avail = fresh
        return _names.lowest_order(avail)

    def _unavailable(self, group: str, deps: list[Deployment], now: float) -> tuple[RateLimitError, bool]:
        """The error for "nothing available" (``retry_after``: seconds until something may be),
        and whether only limits (not cooldowns) are in the way (only then is waiting allowed)."""
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
        return err, bool(limited)

    def _choose(self, group: str, deps: list[Deployment], stream: bool, tried: set[str]) -> Deployment | RateLimitError:
        if self.budgets.windows:  # (a dict's truth, no call: this runs for every routed call)
            wall = time.time()
            within = [d for d in deps if self.budgets.over(d, wall) is None]
            if not within:
                return self.budgets.crossed(group, deps, wall)
            deps = within
        now = _monotonic()
        if len(deps) == 1:  # (what _available and _pick come to for one deployment)
            dep = deps[0]
            return dep if dep.available(now) else self._unavailable(group, deps, now)[0]
        avail = self._available(deps, tried, now)
        if avail:
            return avail[0] if len(avail) == 1 else self._pick(avail, stream)
        return self._unavailable(group, deps, now)[0]

    def _limit_pause(self, group: str, deps: list[Deployment], deadline: float) -> tuple[RateLimitError, float | None]:
        """While only rpm/tpm/parallel limits are in the way and ``deadline`` is ahead: the
        error so far and how long to pause before looking again (None: give up now)."""
        now = _monotonic()
        err, limited = self._unavailable(group, deps, now)
        if not limited or now >= deadline:
            return err, None
        return err, max(0.005, min(err.retry_after or 0.05, 0.05, deadline - now))

    def _retries_for(self, exc: BaseException, group: str, retries: int) -> tuple[int, bool]:
        """(retries allowed for this failure, whether a policy names its kind): the group's
        ``model_group_retry_policy`` (else ``retry_policy``) count for it, else ``retries``."""
        policy = self.model_group_retry_policy.get(group, self.retry_policy)
        count = None if policy is None else policy.count_for(exc)
        return (retries, False) if count is None else (count, True)

    def _retry_wait(self, group_deps: list[Deployment], tried: set[str], attempt: int, exc: BaseException) -> float:
        """No wait when an untried deployment is available; else backoff / Retry-After."""
        now = _monotonic()
        if any(d.id not in tried and d.available(now) for d in group_deps):
            return max(0.0, self.retry_after)
        return backoff(attempt, exc, self.retry_after, self.max_retry_after)

    # ================================================================== bookkeeping
    def _record_failure(self, dep: Deployment, exc: BaseException, elapsed: float | None, stream: bool) -> None:
        if self.disable_cooldowns or not counts_against_deployment(exc):
            dep.failures += 1
            return
        retry_after = capped(getattr(exc, "retry_after", None), self.max_retry_after) \
            if getattr(exc, "status_code", None) == 429 else None
        policy = self.allowed_fails_policy
        allowed = None if policy is None else policy.count_for(exc)
        cooled = dep.failure(
            _monotonic(),
            self.allowed_fails if allowed is None else allowed,
            self.cooldown_time if dep.cooldown_time is None else dep.cooldown_time,
            self.allowed_fails_window,
            retry_after,
            type(exc).__name__,
            elapsed if isinstance(exc, Timeout) else None,
            stream,
        )
        if cooled:
            log.info("deployment %s of %s cooling down (%s)", dep.id, dep.model_name, type(exc).__name__)
            if self.shared is not None:
                self.shared.cooled(dep, _monotonic())

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
                # LiteLLM's stream_timeout is its HTTP client's read timeout: a bound on every
                # wait for the next bytes. So without an idle timeout the gaps between chunks get
                # the same bound (else the stream's ``timeout``, also a per-read timeout there).
                idle = first if first is not None else overrides.get("timeout") or dep.timeout or self.timeout
            cap = overrides.get("timeout_cap")
            if cap is not None:  # (a bound on the configured timeouts: the gateway's client's timeout)
                first = cap if first is None else min(first, cap)
                idle = cap if idle is None else min(idle, cap)
            # Until the first chunk only the time to it applies; the idle bound is set after it.
            wait = first if first is not None else idle
            if wait is not None:
                kw["timeout"] = wait
            return kw, first, idle
        total = overrides.get("timeout") or dep.timeout or self.timeout
        cap = overrides.get("timeout_cap")
        if cap is not None:
            total = cap if total is None else min(total, cap)
        if total is not None:
            kw["timeout"] = total
        return kw, total, None

    @staticmethod
    def _split_overrides(kwargs: dict[str, Any]) -> dict[str, Any]:
        """Pop the router's own call arguments out of ``kwargs`` (a fresh ``**kwargs`` dict)."""
        overrides: dict[str, Any] = {}
        if kwargs and not _ROUTER_CALL_KEYS.isdisjoint(kwargs):
            for key in _ROUTER_CALL_KWARGS:
                if key in kwargs:
                    overrides[key] = kwargs.pop(key)
            if overrides:
                if "request_timeout" in overrides and "timeout" not in overrides:
                    overrides["timeout"] = overrides["request_timeout"]
                if "max_retries" in overrides and "num_retries" not in overrides:
                    overrides["num_retries"] = overrides["max_retries"]
                for key in ("timeout", "stream_timeout", "stream_idle_timeout", "timeout_cap"):
                    if key in overrides:
                        overrides[key] = _seconds(overrides[key], key)
                if overrides.get("num_retries") is not None:
                    _retry_count(overrides["num_retries"])
                client = _client_fallbacks(overrides.get("fallbacks"))
                if client is not None and client[1]:
                    overrides["fallback_params"] = client[1]
        return overrides

    def _next_group(self, model: str, exc: BaseException, tried_groups: list[str], overrides: dict[str, Any]) -> str | None:
        kind = fallback_kind(exc)
        if kind is None or overrides.get("disable_fallbacks"):  # (LiteLLM's per-call disable_fallbacks)
            return None
        names = ("fallbacks",) if kind == "generic" else (f"{kind}_fallbacks", "fallbacks")
        chains = []
        for name in names:  # the call's own list replaces the router's
            value = overrides.get(name)
            if value is None:
                table = getattr(self, name)
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                table = {model: value}  # a call's plain list of groups (LiteLLM's per-request form)
            else:
                table = _fallback_map(value, name)
            chain = table.get(model)
            chains.append(table.get("*") if chain is None else chain)
        chains.append(self.default_fallbacks)
        for chain in chains:
            for target in chain or ():
                if target not in tried_groups and (self.has_group(target) or target in self._by_id):
                    return target  # (a group, or one deployment by its model_info.id, as in LiteLLM)
        return None

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
        ``context_window_fallbacks``, ``content_policy_fallbacks`` override the router's (a
        call's ``fallbacks`` may also be a plain list of groups, tried for ``model``);
        ``timeout_cap`` bounds every timeout of the call (the gateway's client ``timeout``).
        """
        from .main import completion

        run = _Run(self, model, messages, stream, kwargs)

        def attempt(dep: Deployment, kw: dict[str, Any], limit: float | None) -> Any:
            if stream:
                return run.stream_ok(self._open_stream_sync(completion, run, dep, kw, limit))
            return _finish(run, dep, lambda: completion(dep.model, run.messages, False, **kw))

        return _route(run, attempt)

    def _open_stream_sync(self, completion: Any, run: "_Run", dep: Deployment, kw: dict[str, Any],
                          first_timeout: float | None) -> tuple[Any, Any]:
        """Open the stream and read its first chunk (within ``first_timeout``): (stream, chunk)."""
        try:
            stream = completion(dep.model, run.messages, True, **kw)
        except BaseException:
            dep.done()
            raise
        tracked = run.track(stream)
        if first_timeout is not None:
            left = first_timeout - (_monotonic() - run.start)
            if left <= 0:
                stream.close()
                raise _timeout(dep, "No first chunk", "stream_timeout", first_timeout)
            tracked.set_read_timeout(left)
        try:
            first = next(stream)
        except StopIteration:
            first = None
        except Timeout as exc:
            if first_timeout is not None:
                raise _timeout(dep, "No first chunk", "stream_timeout", first_timeout) from exc
            raise
        return stream, first

    # ================================================================== async
    async def acompletion(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        """The async twin of :meth:`completion` (returns what ``llmrelay.acompletion`` does)."""
        acompletion = (_main or _load_main()).acompletion
        run = _Run(self, model, messages, stream, kwargs, is_async=True)

        if stream:
            def attempt(dep: Deployment, kw: dict[str, Any], limit: float | None) -> Any:
                return self._open_stream_async(acompletion, run, dep, kw, limit)  # (its coroutine, awaited by _aroute)
        else:
            async def attempt(dep: Deployment, kw: dict[str, Any], limit: float | None) -> Any:
                return await _afinish(run, dep, acompletion(dep.model, run.messages, False, **kw), limit)

        return await _aroute(run, attempt)

    async def _open_stream_async(self, acompletion: Any, run: "_Run", dep: Deployment, kw: dict[str, Any],
                                 first_timeout: float | None) -> Any:
        """Open the stream and read its first chunk (within ``first_timeout``); the stream, handed
        over by ``run.stream_ok``.

        The time limit as :func:`_within` sets it (a timer that cancels this task), inline: two
        coroutines and a closure less per streamed call."""
        task: Any = None
        handle: Any = None
        fired = False
        cancelling = 0
        if first_timeout is not None:
            task = asyncio.current_task()
            if getattr(task, "uncancel", None) is None:  # Python 3.10
                return run.stream_ok(await self._open_stream_waited(acompletion, run, dep, kw, first_timeout))
            cancelling = task.cancelling()

            def expire() -> None:
                nonlocal fired
                fired = True
                task.cancel()

            handle = task.get_loop().call_later(first_timeout, expire)
        stream = None
        try:
            try:
                # A deployment's stream from its prepared plan when the request adds only
                # OpenAI parameters (the same call as acompletion's, worked out once).
                plan = dep.plan
                if plan is False:
                    plan = dep.plan = (_main or _load_main()).stream_plan(dep.model, dep.kwargs)
                if (plan is not None and run.logging is None and not run.mocked and kw.get("timeout") is not None
                        and _main.PLAIN_PARAMS.issuperset(run.kwargs) and _main.plan_applies(plan, dep.kwargs)):
                    stream = await _main.astream_planned(plan, run.messages, run.kwargs, kw["timeout"])
                else:
                    stream = await acompletion(dep.model, run.messages, True, **kw)
            except BaseException:
                dep.done()
                raise
            run.track(stream)
            try:
                first = await stream.__anext__()
            except StopAsyncIteration:
                first = None
        except asyncio.CancelledError:
            if fired:
                fired = False
                if task.uncancel() <= cancelling:  # our cancel alone, not the caller's
                    if stream is not None:
                        await stream.aclose()
                    raise _timeout(dep, "No first chunk", "stream_timeout", first_timeout) from None
            raise
        finally:
            if handle is not None:
                handle.cancel()
                if fired:  # the call ended in spite of our cancel: undo it, as asyncio.timeout does
                    task.uncancel()
        return run.stream_ok((stream, first))

    async def _open_stream_waited(self, acompletion: Any, run: "_Run", dep: Deployment, kw: dict[str, Any],
                                  first_timeout: float) -> tuple[Any, Any]:
        """:meth:`_open_stream_async` through :func:`_within` (Python 3.10: ``asyncio.wait_for``)."""
        holder: list[Any] = []

        async def open_and_peek() -> Any:
            try:
                stream = await acompletion(dep.model, run.messages, True, **kw)
            except BaseException:
                dep.done()
                raise
            run.track(stream)
            holder.append(stream)
            try:
                return await stream.__anext__()
            except StopAsyncIteration:
                return None

        try:
            first = await _within(open_and_peek(), first_timeout)
        except asyncio.TimeoutError:  # not the builtin one before 3.11
            if holder:
                await holder[0].aclose()
            raise _timeout(dep, "No first chunk", "stream_timeout", first_timeout) from None
        return holder[0], first

    # ================================================================== embeddings
    def embedding(self, model: str, input: Any = None, **kwargs: Any) -> Any:  # noqa: A002 - OpenAI's name
        """Route an embeddings call to group ``model`` (retries, fallbacks and cooldowns as for chat)."""
        from .embeddings import embedding

        run = _Run(self, model, None, False, kwargs, call_type="embedding", embed_input=input)
        return _route(run, lambda dep, kw, limit: _finish(run, dep, lambda: embedding(dep.model, input, **kw)))

    async def aembedding(self, model: str, input: Any = None, **kwargs: Any) -> Any:  # noqa: A002
        """The async twin of :meth:`embedding`."""
        from .embeddings import aembedding

        run = _Run(self, model, None, False, kwargs, is_async=True, call_type="embedding", embed_input=input)

        async def attempt(dep: Deployment, kw: dict[str, Any], limit: float | None) -> Any:
            return await _afinish(run, dep, aembedding(dep.model, input, **kw), limit)

        return await _aroute(run, attempt)

    # ================================================================== other APIs over chat
    def responses(self, input: Any = None, model: str = "", stream: bool = False, **kwargs: Any) -> Any:  # noqa: A002
        """OpenAI's Responses API on group ``model`` (:func:`llmrelay.responses` over this router)."""
        from .responses_api import respond

        return respond(self.completion, input, model, stream, kwargs)

    async def aresponses(self, input: Any = None, model: str = "", stream: bool = False, **kwargs: Any) -> Any:  # noqa: A002
        """The async twin of :meth:`responses`."""
        from .responses_api import arespond

        return await arespond(self.acompletion, input, model, stream, kwargs)

    def text_completion(self, model: str, prompt: Any = None, stream: bool = False, **kwargs: Any) -> Any:
        """Legacy completions on group ``model`` (:func:`llmrelay.text_completion` over this router)."""
        from .completions_api import complete_text

        return complete_text(self.completion, model, prompt, stream, kwargs)

    async def atext_completion(self, model: str, prompt: Any = None, stream: bool = False, **kwargs: Any) -> Any:
        """The async twin of :meth:`text_completion`."""
        from .completions_api import acomplete_text

        return await acomplete_text(self.acompletion, model, prompt, stream, kwargs)

    # ================================================================== batches (LiteLLM's)
    async def abatch_completion(self, models: list[str], messages: list[Any], **kwargs: Any) -> list[Any]:
        """The same request to several groups at once: one answer per group, in order (an
        error is returned in its place, not raised). ``messages`` as a list of conversations
        sends each to each group (a list per group)."""
        import asyncio

        async def one(model: str, conversation: list[dict[str, Any]]) -> Any:
            try:
                return await self.acompletion(model=model, messages=conversation, **dict(kwargs))
            except Exception as exc:  # noqa: BLE001 - returned in the answer's place, as LiteLLM
                return exc

        if messages and all(isinstance(m, list) for m in messages):
            async def per_model(model: str) -> list[Any]:
                return list(await asyncio.gather(*(one(model, m) for m in messages)))

            return list(await asyncio.gather(*(per_model(m) for m in models)))
        return list(await asyncio.gather(*(one(m, messages) for m in models)))

    async def abatch_completion_one_model_multiple_requests(self, model: str, messages: list[list[dict[str, Any]]],
                                                            **kwargs: Any) -> list[Any]:
        """Several conversations to one group at once: one answer per conversation, in order
        (an error is returned in its place)."""
        import asyncio

        async def one(conversation: list[dict[str, Any]]) -> Any:
            try:
                return await self.acompletion(model=model, messages=conversation, **dict(kwargs))
            except Exception as exc:  # noqa: BLE001 - returned in the answer's place, as LiteLLM
                return exc

        return list(await asyncio.gather(*(one(m) for m in messages)))

    async def abatch_completion_fastest_response(self, model: str | list[str], messages: list[dict[str, Any]],
                                                 stream: bool = False, **kwargs: Any) -> Any:
        """The same request to several groups (a list, or names separated by commas): the
        first answer; the others are cancelled. Raises the last error when all fail."""
        import asyncio

        models = [m.strip() for m in model.split(",")] if isinstance(model, str) else list(model)
        tasks = [asyncio.ensure_future(self.acompletion(model=m, messages=messages, stream=stream, **dict(kwargs)))
                 for m in models]
        error: BaseException | None = None
        try:
            for finished in asyncio.as_completed(tasks):
                try:
                    return await finished
                except Exception as exc:  # noqa: BLE001 - the next one may answer
                    error = exc
        finally:
            for task in tasks:
                task.cancel()
        raise error if error is not None else ValueError("abatch_completion_fastest_response: no model given")

    def __repr__(self) -> str:
        return f"<Router strategy={self.routing_strategy!r} groups={self.model_names}>"


def _with_defaults(kwargs: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Add the router's ``default_litellm_params`` to a call's arguments (the call's own win;
    ``metadata`` dicts are merged key by key)."""
    for key, value in defaults.items():
        if key not in kwargs or kwargs[key] is None:
            kwargs[key] = dict(value) if isinstance(value, dict) else value
        elif key == "metadata" and isinstance(value, dict) and isinstance(kwargs[key], dict):
            kwargs[key] = {**value, **kwargs[key]}


class _Run:
    """One routed call: which group and deployments are left, the attempts so far.

    Everything but the waiting and the call itself, so :meth:`Router.completion` and
    :meth:`Router.acompletion` differ only in how they call and wait.
    """

    __slots__ = ("router", "model", "messages", "stream", "kwargs", "overrides", "attempts", "tried_groups",
                 "group", "deps", "tried", "attempt", "retries", "last", "deadline", "count", "dep", "start",
                 "first_timeout", "idle", "tags", "logging", "mock_fallbacks", "mocked", "checked",
                 "original_exc")

    def __init__(self, router: Router, model: Any, messages: Any, stream: bool, kwargs: dict[str, Any],
                 is_async: bool = False, call_type: str = "completion", embed_input: Any = None) -> None:
        # Callbacks hear of the routed call once (not of each attempt): the library calls below
        # get this record as litellm_logging_obj and leave the reporting to us. A caller that
        # passed its own litellm_logging_obj (text_completion, the gateway) reports it itself.
        if router.default_litellm_params:
            _with_defaults(kwargs, router.default_litellm_params)
        if call_type == "embedding":
            self.logging = start_call(model, embed_input, False, kwargs, is_async, call_type, {"input": embed_input})
        else:
            self.logging = start_call(model, messages, stream, kwargs, is_async, call_type)
        try:
            self._setup(router, model, messages, stream, kwargs)
        except BaseException as exc:
            self.fail(exc)
            raise

    def _setup(self, router: Router, model: Any, messages: Any, stream: bool, kwargs: dict[str, Any]) -> None:
        self.router = router
        self.model = model
        self.tags = _names.request_tags(kwargs) if kwargs else frozenset()
        group = model
        specific = kwargs.pop("specific_deployment", False) if kwargs else False
        dep = router._specific(model) if specific else None
        try:
            self.deps = [dep] if dep is not None else router._select(model, self.tags)
        except NotFoundError:  # an unknown group is served by default_fallbacks, as in LiteLLM
            group = next((g for g in router.default_fallbacks if g in router._groups), None)
            if group is None:
                raise
            self.deps = router._select(group, self.tags)
        self.mock_fallbacks = mock_fallback_kind(kwargs)
        self.mocked = False  # whether the attempt under way is a mocked failure
        self.checked: str | None = None  # the group whose deployments passed the pre-call checks
        self.messages = messages
        self.stream = stream
        self.kwargs = kwargs
        self.overrides = overrides = router._split_overrides(kwargs)
        retries = overrides.get("num_retries")
        self.retries = router.num_retries if retries is None else retries
        self.attempts: list[dict[str, Any]] = []
        self.tried_groups = [model] if group == model else [model, group]
        self.group = group
        self.tried: set[str] = set()
        self.attempt = 0
        self.last: LLMRelayError | None = None
        self.deadline: float | None = None  # while waiting for a deployment under its limits
        self.count = False
        self.dep: Deployment | None = None  # the deployment being called, since ``start``
        self.start = 0.0
        self.first_timeout: float | None = None
        self.idle: float | None = None
        self.original_exc: BaseException | None = None  # what made the requested group fall back

    def fail(self, exc: BaseException) -> None:
        """The routed call failed for good (reported once; later reports do nothing)."""
        if self.logging is not None:
            self.logging.failure(exc)

    # ---------------------------------------------------------------- choosing
    def next_deployment(self) -> Deployment | float:
        """The deployment to call next, or seconds to pause before asking again.

        Raises the final error when nothing is left to try.
        """
        router = self.router
        if router.enable_pre_call_checks and self.checked != self.group:
            self.checked = self.group
            fit = fitting(self.deps, self.messages, self.kwargs)
            if not fit:
                error = no_fit_error(self.group, self.deps, self.messages, self.kwargs)
                self.attempts.append(attempt_record(self.group, None, error, 0.0))
                self._group_failed(error)
                return self.next_deployment()  # in the fallback group
            self.deps = fit
        choice = router._choose(self.group, self.deps, self.stream, self.tried)
        if isinstance(choice, Deployment):
            self.deadline = None
            return choice
        if router.rate_limit_wait > 0 and not getattr(choice, "crossed_budget", False):
            if self.deadline is None:
                self.deadline = _monotonic() + router.rate_limit_wait
            choice, pause = router._limit_pause(self.group, self.deps, self.deadline)
            if pause is not None:
                return pause
        self.deadline = None
        self.attempts.append(attempt_record(self.group, None, choice, 0.0))
        self._group_failed(self.last if self.last is not None else choice)
        return self.next_deployment()  # in the fallback group

    def begin(self, dep: Deployment) -> tuple[dict[str, Any], float | None]:
        """Mark ``dep`` busy: (kwargs for completion, the whole call's or first chunk's timeout)."""
        router = self.router
        self.tried.add(dep.id)
        kw, limit, idle = router._call_kwargs(dep, self.kwargs, self.overrides, self.stream)
        if self.logging is not None:
            kw["litellm_logging_obj"] = self.logging
        mock = self.mock_fallbacks
        # mock_testing_*fallbacks: the first group fails; mock_testing_rate_limit_error: its first attempt
        self.mocked = mock is not None and self.group == self.model and (mock != "rate_limit" or not self.attempts)
        if self.mocked:
            kw["mock_response"] = mock_fallback_error(self.group, dep.model, mock)
        self.first_timeout = limit if self.stream else None
        self.idle = idle
        self.count = router._usage_based or dep.tpm is not None
        self.dep = dep
        self.start = start = _monotonic()
        dep.start(start)
        return kw, limit

    # ---------------------------------------------------------------- outcomes
    def ok(self, result: Any) -> Any:
        """A non-streaming call succeeded."""
        dep = self.dep
        dep.success(_monotonic() - self.start, False)
        self._label(dep, result)
        if self.router.budgets.windows:
            self.router.budgets.charge(dep, getattr(result, "_hidden_params", {}).get("response_cost"))
        if self.count:
            dep.add_tokens(getattr(getattr(result, "usage", None), "total_tokens", 0) or 0)
        if self.logging is not None:
            self.logging.success(result)
        if self.original_exc is not None:
            self._fallback_event("success")
        return result

    def track(self, stream: Any) -> TrackedSource:
        """Put a :class:`TrackedSource` between the stream and its source."""
        tracked = TrackedSource(stream.source, self.router, self.dep, stream.state, self.attempts, self.count,
                                self.group, self.start)
        stream.source = tracked
        return tracked

    def stream_ok(self, opened: tuple[Any, Any]) -> Any:
        """A stream delivered its first chunk (or ended cleanly without one): hand it over."""
        stream, first = opened
        dep = self.dep
        dep.success(_monotonic() - self.start, True)
        source = stream.source
        source.delivered = True
        if self.first_timeout is not None:
            # From here on the gaps between chunks are bounded by the idle timeout
            source.set_read_timeout(settings.get("request_timeout") if self.idle is None else self.idle)
        if first is not None:
            stream.unread(first)
        self._label(dep, stream)
        if self.logging is not None:
            stream.observe(self.logging)
        if self.original_exc is not None:
            self._fallback_event("success")
        return stream

    def _label(self, dep: Deployment, result: Any) -> None:
        hidden = getattr(result, "_hidden_params", None)
        if isinstance(hidden, dict):
            hidden["model_group"] = self.group
            hidden["model_id"] = dep.id
            if dep.api_base and not hidden.get("api_base"):
                hidden["api_base"] = dep.api_base
            if self.attempts:
                hidden["router_attempts"] = list(self.attempts)
            prices = dep.prices
            if prices is not None:
                apply_prices(result, prices)

    def failed(self, exc: LLMRelayError) -> float:
        """Record a failed attempt; seconds to wait before the next one. Raises when final."""
        router = self.router
        dep = self.dep
        elapsed = _monotonic() - self.start
        if not self.mocked:  # (a mocked failure is not the deployment's)
            router._record_failure(dep, exc, elapsed, self.stream)
        self.attempts.append(attempt_record(self.group, dep, exc, elapsed))
        self.last = exc
        policy = router.model_group_retry_policy.get(self.group, router.retry_policy)
        by_kind = None if policy is None else policy.count_for(exc)
        retry = self.attempt < self.retries and retryable(exc) if by_kind is None else self.attempt < by_kind
        if retry:
            wait = router._retry_wait(self.deps, self.tried, self.attempt, exc)
            self.attempt += 1
            log.debug("retrying %s (attempt %d) in %.2fs after %s", self.group, self.attempt, wait, type(exc).__name__)
            return wait
        self._group_failed(exc)
        return 0.0

    def _group_failed(self, exc: LLMRelayError) -> None:
        """Move on to the next fallback group, or raise ``exc`` (with ``attempts``)."""
        target = self.router._next_group(self.model, exc, self.tried_groups, self.overrides)
        if self.original_exc is not None:  # a fallback group failed
            self._fallback_event("failure")
        elif target is not None:
            self.original_exc = exc
        if target is None:
            if isinstance(exc, APIError):
                exc.attempts = list(self.attempts)
                limit, forced = self.router._retries_for(exc, self.group, self.retries)
                if limit and (forced or retryable(exc)):  # the retries ran out (LiteLLM's attributes)
                    exc.num_retries = self.attempt
                    exc.max_retries = limit
            self.fail(exc)
            raise exc
        log.info("group %s failed (%s); falling back to %s", self.group, type(exc).__name__, target)
        self.tried_groups.append(target)
        self.group = target
        self.deps = self.router._select(target, self.tags)
        params = self.overrides.get("fallback_params")
        if params and target in params:  # a client-side fallback's own arguments (messages…)
            extra = dict(params[target])
            if "messages" in extra:
                self.messages = extra.pop("messages")
            self.kwargs = {**self.kwargs, **extra}
        self.tried = set()
        self.attempt = 0
        self.last = None


    def _fallback_event(self, outcome: str) -> None:
        """LiteLLM's ``log_success_fallback_event`` / ``log_failure_fallback_event``: the
        current fallback group answered / failed (kwargs as LiteLLM's: the call's, with the
        fallback group as ``model`` and ``metadata["model_group"]``)."""
        from .integrations import dispatch  # (only when falling back)

        loggers = dispatch.fallback_loggers(outcome)
        if not loggers:
            return
        kwargs = dict(self.kwargs)
        kwargs["model"] = self.group
        if self.messages is not None:
            kwargs["messages"] = self.messages
        kwargs["metadata"] = {**(kwargs.get("metadata") or {}), "model_group": self.group}
        dispatch.fallback_event(loggers, outcome, self.model, kwargs, self.original_exc)


def _route(run: _Run, attempt: Any) -> Any:
    """Try deployments until ``attempt(dep, kwargs, limit)`` returns: retries, fallbacks and
    pauses as :class:`_Run` decides; the last error raises."""
    try:
        return _route_on(run, attempt)
    except BaseException as exc:  # anything else that ends the call (reported once)
        run.fail(exc)
        raise


def _route_on(run: _Run, attempt: Any) -> Any:
    while True:
        dep = run.next_deployment()
        if type(dep) is float:
            time.sleep(dep)
            continue
        kw, limit = run.begin(dep)
        try:
            return attempt(dep, kw, limit)
        except LLMRelayError as exc:
            wait = run.failed(exc)
        if wait > 0:
            time.sleep(wait)


async def _aroute(run: _Run, attempt: Any) -> Any:
    """The async twin of :func:`_route` (``attempt`` is a coroutine function; the loop of
    :func:`_route_on` inline, one coroutine less per call)."""
    try:
        shared = run.router.shared
        if shared is not None:
            shared.start()
        while True:
            dep = run.next_deployment()
            if type(dep) is float:
                await asyncio.sleep(dep)
                continue
            if shared is not None and shared.limited(dep) and not await shared.admit(dep, run.messages, run.kwargs):
                continue  # another instance used its share up; it now counts as full here too
            kw, limit = run.begin(dep)
            try:
                return await attempt(dep, kw, limit)
            except LLMRelayError as exc:
                wait = run.failed(exc)
            if wait > 0:
                await asyncio.sleep(wait)
    except BaseException as exc:  # anything else that ends the call (reported once)
        run.fail(exc)
        raise


def _finish(run: _Run, dep: Deployment, call: Any) -> Any:
    """A non-streaming call on ``dep``: its result, the deployment released either way."""
    try:
        result = call()
    finally:
        dep.done()
    return run.ok(result)


async def _afinish(run: _Run, dep: Deployment, coro: Any, limit: float | None) -> Any:
    """The async twin of :func:`_finish`, within ``limit`` seconds (the router's timeout)."""
    try:
        if limit is None:
            result = await coro
        else:
            try:
                result = await _within(coro, limit)
            except asyncio.TimeoutError:  # not the builtin one before 3.11
                raise _timeout(dep, "No response", "timeout", limit) from None
    finally:
        dep.done()
    return run.ok(result)


_main: Any = None  # llmrelay.main (it imports this module), once the first call has loaded it


def _load_main() -> Any:
    """``llmrelay.main``, imported once (a function-level import runs importlib's machinery
    on every call); its functions are still read at call time, as the import did."""
    global _main
    from . import main

    _main = main
    return main


async def _within(coro: Any, seconds: float) -> Any:
    """``await asyncio.wait_for(coro, seconds)`` (``asyncio.TimeoutError`` when it takes longer)
    without a task of its own: a timer cancels the calling task, as ``asyncio.timeout`` does
    (Python 3.11+; that one's context manager costs as much as the task it saves)."""
    task = asyncio.current_task()
    uncancel = getattr(task, "uncancel", None)
    if uncancel is None:  # Python 3.10
        return await asyncio.wait_for(coro, seconds)
    cancelling = task.cancelling()
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = task.get_loop().call_later(seconds, expire)
    try:
        return await coro
    except asyncio.CancelledError:
        if fired:
            fired = False
            if uncancel() <= cancelling:  # our cancel alone, not the caller's
                raise asyncio.TimeoutError from None
        raise
    finally:
        handle.cancel()
        if fired:  # the call ended in spite of our cancel: undo it, as asyncio.timeout does
            uncancel()


def _timeout(dep: Deployment, what: str, setting: str, seconds: float) -> Timeout:
    provider, _, model = dep.model.partition("/") if "/" in dep.model else (None, "", dep.model)
    exc = Timeout(f"{what} within {setting}={seconds:g}s", model=model, llm_provider=provider)
    exc.timeout_setting = setting  # which of the router's timeouts fired, and its value
    exc.timeout_seconds = seconds
    return exc
