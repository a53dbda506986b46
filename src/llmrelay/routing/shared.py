"""Router state shared by every instance through Redis (``Router(redis_host=…)``/``redis_url=``).

* **Cooldowns.** When a deployment goes into cooldown on one instance, the instance stores
  ``cooldown:<id>`` (expiring with the cooldown) and broadcasts it; every other instance puts
  the deployment in cooldown for the rest of that time, so all stop sending to a failing
  deployment at once. After (re)connecting, an instance reads the stored cooldowns to catch up.
  Costs nothing per request: only failures write, and the listener runs in the background.
* **Deployment limits** (``rpm``/``tpm``/``max_parallel_requests`` in ``litellm_params``) are
  checked and taken in one Redis script per attempt (async calls), so N instances share one
  budget per deployment. A refused deployment counts as full locally until the window ends and
  the Router picks another, or answers 429 with ``Retry-After``. Sync ``completion()`` calls and
  any call while Redis is unreachable count per instance.
* **Budget windows** of budget routing (``provider_budget_config``, a deployment's
  ``max_budget``) are exchanged in the background every 0.5 s by
  :class:`~llmrelay.routing.shared_budgets.SharedBudgets`: every instance's spend counts.
* **Routing counters** of ``usage-based-routing`` and ``least-busy`` (requests and tokens per
  deployment this minute, requests in flight) are exchanged in the background every 0.5 s by
  :class:`~llmrelay.routing.shared_usage.SharedCounters` (only for those strategies): nothing
  is added to a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ..broadcast import get_broadcaster
from ..ratelimit import Limit, SharedLimiter
from ..redis_link import RedisLink, RedisUnavailable, get_link, spawn as _spawn

if TYPE_CHECKING:
    from .deployment import Deployment

__all__ = ["RouterShared", "shared_from_options", "SHARED_OPTIONS"]

#: Router options that turn on and tune the shared state (LiteLLM's names, plus a few).
SHARED_OPTIONS = frozenset({"redis_url", "redis_host", "redis_port", "redis_password", "redis_db", "redis_prefix",
                            "redis_timeout"})

log = logging.getLogger("llmrelay.router")

_TOPIC = "router.cooldown"


class RouterShared:
    """One router's link to the shared state (see the module docstring)."""

    def __init__(self, link: RedisLink, prefix: str = "llmrelay:") -> None:
        self.link = link
        self.root = prefix
        self.prefix = prefix + "router:"
        self.limiter = SharedLimiter(link, prefix + "rl:")
        self.broadcaster = get_broadcaster(link, prefix)
        self.broadcaster.on(_TOPIC, self._on_cooldown)
        self.broadcaster.on_connect(self._catch_up)
        self._by_id: dict[str, Deployment] = {}  # shared name -> deployment
        self._names: dict[str, str] = {}  # deployment id -> shared name
        self._grants: dict[str, deque] = {}
        self._last: dict[str, list] = {}  # deployment id -> [grant, tokens] of the attempt just ended
        self._limits: dict[str, Limit] = {}  # deployment id -> its limits (built once)
        self._loop: Any = None  # the event loop the background tasks run in
        #: The routing counters exchanged with the other instances (:meth:`share_counters`).
        self.counters: Any = None
        #: Budget routing's spend windows exchanged with the other instances (:meth:`share_budgets`).
        self.budgets: Any = None
        #: The deployments the router made so far for names matching its wildcard groups
        #: (``Router`` sets it: ``Wildcards.made``); their counters are exchanged too.
        self.made: Any = None
        self._made_names: dict[str, str] = {}  # made deployment id -> shared name (unsuffixed)

    def share_counters(self, usage: bool, busy: bool) -> None:
        """Share the counters a routing strategy reads: requests and tokens per deployment
        (``usage``), requests in flight (``busy``); neither: share none. The counters shared
        before (another strategy's) stop exchanging; the new ones start with the next call."""
        from .shared_usage import SharedCounters

        if self.counters is not None:
            self.counters.cancel()
        self.counters = SharedCounters(self, usage, busy) if usage or busy else None

    def share_budgets(self, budgets: Any) -> None:
        """Share budget routing's spend windows (a :class:`~.budget_limits.BudgetLimits`) with
        the other instances: they start exchanging with the next call."""
        from .shared_budgets import SharedBudgets

        if self.budgets is not None:
            self.budgets.cancel()
        self.budgets = SharedBudgets(self, budgets)

    def attach(self, by_id: dict[str, "Deployment"]) -> None:
        """Track the router's deployments (after every change of its model list)."""
        self._by_id = {}
        self._names = {}
        self._limits = {}
        seen: dict[str, int] = {}
        for dep in by_id.values():
            dep.shared = self
            name = shared_name(dep)
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}.{seen[name]}"
            self._names[dep.id] = name
            self._by_id[name] = dep

    def counted(self) -> list[tuple[str, "Deployment"]]:
        """(shared name, deployment) of every deployment whose routing counters are exchanged:
        the configured ones and those made on the fly for wildcard groups (named like the
        configured ones, from the concrete model and params: the same on every instance)."""
        deps = list(self._by_id.items())
        made = self.made() if self.made is not None else None
        if not made:
            return deps
        known = {id(dep) for _, dep in deps}
        names, seen = {}, {}
        for dep in made:
            if id(dep) in known:  # (put in _by_id by name(), for a cooldown)
                continue
            base = self._made_names.get(dep.id) or shared_name(dep)
            names[dep.id] = base
            seen[base] = seen.get(base, 0) + 1
            deps.append((base if seen[base] == 1 else f"{base}.{seen[base]}", dep))
        self._made_names = names
        return deps

    def name(self, dep: "Deployment") -> str:
        """The deployment's name in Redis, the same on every instance with the same config."""
        name = self._names.get(dep.id)
        if name is None:
            self.attach({**{d.id: d for d in self._by_id.values()}, dep.id: dep})
            name = self._names[dep.id]
        return name

    def start(self) -> None:
        """Start listening for other instances' cooldowns, exchanging the routing counters and
        warm the connection pool (in the running loop; idempotent, cheap: called per request)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        task = self.broadcaster._task
        if task is None or task.done() or task.get_loop() is not loop:
            self.broadcaster.start()
            _spawn(self.link.warm())
        tasks = [self.broadcaster._task]
        if self.counters is not None:
            tasks.append(self.counters.start())
        if self.budgets is not None:
            tasks.append(self.budgets.start())
        for task in tasks:
            if task is not None:  # a task ending (stopped) makes the next call start it again
                task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task) -> None:
        if self._loop is task.get_loop():
            self._loop = None

    async def stop(self) -> None:
        """Stop the background tasks of the running loop (at shutdown)."""
        self._loop = None
        if self.counters is not None:
            await self.counters.stop()
        if self.budgets is not None:
            await self.budgets.stop()
        await self.broadcaster.stop()

    # ------------------------------------------------------------------ cooldowns
    def cooled(self, dep: "Deployment", now: float) -> None:
        """``dep`` just went into cooldown here: tell the others."""
        seconds = dep.cooldown_until - now
        if seconds <= 0:
            return
        name = self.name(dep)
        payload = {"id": name, "until": time.time() + seconds, "reason": dep.cooldown_reason}
        key = self.prefix + "cooldown:" + name
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a sync completion(): tell the others synchronously
            import orjson

            try:
                self.link.run_sync(lambda r: r.set(key, orjson.dumps(payload), px=max(1, int(seconds * 1000))))
            except RedisUnavailable:
                return
            self.broadcaster.publish_sync(_TOPIC, payload)
            return
        _spawn(self._publish(key, payload, seconds))

    async def _publish(self, key: str, payload: dict, seconds: float) -> None:
        import orjson

        try:
            await self.link.run(lambda r: r.set(key, orjson.dumps(payload), px=max(1, int(seconds * 1000))))
        except RedisUnavailable:
            return
        await self.broadcaster.publish(_TOPIC, payload)

    def _on_cooldown(self, payload: dict) -> None:
        dep = self._by_id.get(payload.get("id"))
        if dep is None:
            return
        try:
            left = float(payload["until"]) - time.time()
        except (KeyError, TypeError, ValueError):
            return
        if left <= 0:
            return
        until = time.monotonic() + left
        with dep.lock:
            if until > dep.cooldown_until:
                dep.cooldown_until = until
                dep.cooldown_reason = str(payload.get("reason") or "cooldown on another instance")
                dep.fails.clear()
        log.info("deployment %s of %s cooling down for %.1fs (reported by another instance)",
                 dep.id, dep.model_name, left)

    async def _catch_up(self) -> None:
        import orjson

        ids = list(self._by_id)
        if not ids:
            return
        keys = [self.prefix + "cooldown:" + i for i in ids]
        try:
            values = await self.link.run(lambda r: r.mget(keys))
        except RedisUnavailable:
            return
        for value in values:
            if value:
                try:
                    self._on_cooldown(orjson.loads(value))
                except orjson.JSONDecodeError:
                    pass

    # ------------------------------------------------------------------ limits
    @staticmethod
    def limited(dep: "Deployment") -> bool:
        return bool(dep.rpm or dep.tpm or dep.max_parallel_requests)

    async def admit(self, dep: "Deployment", messages: Any = None, kwargs: dict[str, Any] | None = None) -> bool:
        """Take ``dep``'s share for one attempt on the shared limits; False (and ``dep`` marked
        full here until the window ends) when another instance used it up.

        With a TPM limit the attempt reserves its estimated tokens (:func:`estimate_tokens`); the
        count is corrected to the real usage when it ends.
        """
        limit = self._limits.get(dep.id)
        if limit is None or (limit.rpm, limit.tpm, limit.parallel) != (_int(dep.rpm), _int(dep.tpm),
                                                                       dep.max_parallel_requests):
            limit = self._limits[dep.id] = Limit("deployment:" + self.name(dep), _int(dep.rpm), _int(dep.tpm),
                                                 dep.max_parallel_requests)
        tokens = estimate_tokens(messages, kwargs) if dep.tpm else 0
        grant = await self.limiter.acquire((limit,), tokens)
        if grant.allowed:
            self._grants.setdefault(dep.id, deque()).append(grant)
            return True
        if grant.kind in ("rpm", "tpm"):
            # full until the shared window ends: align the local window with it
            dep.fill_window(time.monotonic(), grant.kind, grant.retry_after)
        return False

    def done(self, dep: "Deployment") -> None:
        """An admitted attempt ended: give back its share, in the background, in one call that
        also books the tokens :meth:`tokens` reports right after (same synchronous step)."""
        grants = self._grants.get(dep.id)
        if not grants:
            return
        grant = grants.popleft()
        if not (dep.tpm or dep.max_parallel_requests):
            return  # an rpm count has nothing to give back
        box = [grant, None]
        self._last[dep.id] = box
        try:
            asyncio.get_running_loop().call_soon(self._finish, dep.id, box)
        except RuntimeError:  # no loop (a sync call): nothing was taken on Redis
            self._last.pop(dep.id, None)

    def tokens(self, dep: "Deployment", tokens: int) -> None:
        """The tokens the attempt that just ended on ``dep`` used (booked by its release)."""
        box = self._last.get(dep.id)
        if box is not None and box[1] is None:
            box[1] = tokens

    def _finish(self, dep_id: str, box: list) -> None:
        if self._last.get(dep_id) is box:
            del self._last[dep_id]
        self.limiter.release_soon(box[0], box[1])


def shared_name(dep: "Deployment") -> str:
    """The group and a digest of the deployment's params: the same on every instance with the
    same config (a generated ``model_info.id`` differs between instances)."""
    import hashlib

    import orjson

    blob = orjson.dumps([dep.model_name, dep.litellm_params], option=orjson.OPT_SORT_KEYS, default=str)
    return f"{dep.model_name}:{hashlib.sha256(blob).hexdigest()[:16]}"


def estimate_tokens(messages: Any, kwargs: dict[str, Any] | None) -> int:
    """A quick upper estimate of an attempt's tokens: about one token per 3 characters of the
    messages' text (+4 per message), plus the answer's cap (``max_tokens``), if any. No tokenizer
    on the hot path; the count is corrected to the real usage when the attempt ends."""
    chars = 0
    count = 0
    for message in messages or ():
        count += 1
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
    cap = (kwargs or {}).get("max_completion_tokens") or (kwargs or {}).get("max_tokens") or 0
    cap = int(cap) if isinstance(cap, int) and not isinstance(cap, bool) else 0
    return chars // 3 + 4 * count + cap


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def shared_from_options(options: dict[str, Any]) -> RouterShared | None:
    """LiteLLM's Router options ``redis_url`` / ``redis_host``+``redis_port``+``redis_password``
    (and ``redis_prefix``, ``redis_timeout``) → a :class:`RouterShared`, or None."""
    url = options.get("redis_url")
    host = options.get("redis_host")
    if not url and not host:
        return None
    settings: dict[str, Any] = {"url": url} if url else {
        "host": host, "port": options.get("redis_port"), "password": options.get("redis_password"),
    }
    if options.get("redis_db") is not None:
        settings["db"] = options["redis_db"]
    link = get_link(timeout=float(options.get("redis_timeout") or 0.5), **settings)
    return RouterShared(link, options.get("redis_prefix") or "llmrelay:")
