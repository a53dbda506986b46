"""Virtual keys in shared mode: limits, live budgets and key changes shared through Redis.

The keys pipeline (:mod:`.keys`) calls this module's :class:`RedisLimits` (its ``LimitBackend``):

* **Admission** — one Lua script per request (:class:`~llmrelay.ratelimit.RedisLimiter`) reads
  the spend counters of the request's budgets (key, team, user, end user, the key's per-model
  budget) and refuses it when one is spent, else checks and takes every rate limit (key, team,
  user, per model) and, when the response cache is on the same Redis, reads the cache entry:
  **one round trip** for all of it. While Redis is unreachable the limits are counted by this
  instance alone (:class:`~llmrelay.ratelimit.SharedLimiter`) and budgets are checked against
  what this instance knows (the database's spend plus its own).
* **Spend** — when a request ends, its cost is added to each budget's counter
  (``INCRBYFLOAT``; one script per batch of finished requests, in the background, never
  awaited by a request): at once when this instance's view of the budget is at
  :data:`URGENT` (80 %) or more, else within :data:`SPEND_DELAY` (20 ms) together with the
  others. The replies are the shared totals, which this instance keeps in its cached rows
  (``x-litellm-key-spend`` shows the shared spend).
* **Reconciliation** — the database stays the ledger. Every time a row with a budget is read
  from it (first use, and every ``user_api_key_cache_ttl`` (5 s) while in use, after each change), the
  counter is raised to the database's spend if lower (``counter = max(counter, ledger)``): a
  Redis that lost its data (restart, eviction) is refilled within seconds of the next use.
* **Periods** — a counter is per budget period: its name ends with the period's end
  (``budget_reset_at`` of the row) and it expires an hour after it; without
  ``budget_duration`` it never resets (and expires after 7 idle days: the ledger refills it).
* **Key changes** — every management write (``/key/update``, ``/key/delete``,
  ``/key/regenerate``, teams, users, customers) is broadcast (``keys.changed``); every other
  instance re-reads the row at once, whatever its database poll interval. The database's change
  feed stays the fallback while Redis is down.

Windows of the rate limits are the Redis clock's minutes (the local backend's are sliding): a
refusal's ``Retry-After`` is the time to the next minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Sequence

from ..ratelimit import Limit, SharedLimiter
from ..redis_link import RedisLink, RedisUnavailable, spawn as _spawn
from .rate_limits import refusal_reason

__all__ = ["RedisLimits"]

log = logging.getLogger("llmrelay.proxy.keys")

_TOPIC = "keys.changed"
#: Seconds spend updates far from their budgets wait to be sent together.
SPEND_DELAY = 0.02
#: Share of a budget from which this instance's view makes a spend update urgent (sent at once).
URGENT = 0.8
#: Seconds a counter of a budget without a period lives after its last write.
_NO_PERIOD_TTL = 7 * 86400

#: KEYS: spend counters. ARGV: per counter "+" (add), "max" (raise to) or "=" (set to: an admin's
#: reset), the amount, its ttl. Reply: each counter's value afterwards (strings).
_SPEND = """
local out = {}
for i = 1, #KEYS do
  local op, v, ttl = ARGV[3*i-2], ARGV[3*i-1], tonumber(ARGV[3*i])
  local s
  if op == '+' then
    s = redis.call('INCRBYFLOAT', KEYS[i], v)
  elseif op == '=' then
    redis.call('SET', KEYS[i], v)
    s = v
  else
    s = redis.call('GET', KEYS[i])
    if not s or tonumber(s) < tonumber(v) then redis.call('SET', KEYS[i], v) s = v end
  end
  redis.call('EXPIRE', KEYS[i], ttl)
  out[i] = s
end
return out
"""


def _period(row: dict) -> int:
    """The row's budget period, named by its end (0: no period)."""
    reset_at = row.get("budget_reset_at")
    return int(reset_at) if reset_at is not None and row.get("budget_duration") else 0


def _model_period(row: dict, model: str) -> int:
    """The period of a key's per-model budget: the model's own (``time_period``) if it has
    one, else the key's."""
    own = (row.get("model_budget_reset_at") or {}).get(model)
    return int(own) if own is not None else _period(row)


def _ttl(period: int) -> int:
    return max(60, int(period - time.time()) + 3600) if period else _NO_PERIOD_TTL


class _Budget:
    """One budget of a request: its counter, maximum, and the cached row it mirrors."""

    __slots__ = ("counter", "cap", "row", "model", "period")

    def __init__(self, counter: str, cap: float, row: dict, model: str | None, period: int) -> None:
        self.counter = counter
        self.cap = cap
        self.row = row
        self.model = model
        self.period = period

    def learn(self, total: float) -> None:
        """The shared spend is ``total``: raise the cached row's to it (same period only)."""
        row = self.row
        if (_period(row) if self.model is None else _model_period(row, self.model)) != self.period:
            return
        if self.model is None:
            if total > row.get("spend", 0.0):
                row["spend"] = total
        else:
            per = row.get("model_spend") or {}
            if total > per.get(self.model, 0.0):
                per[self.model] = total
                row["model_spend"] = per


class RedisLimits:
    """The keys' ``LimitBackend`` in shared mode (see the module docstring).

    ``decision`` builds the pipeline's ``Decision`` (passed in, so this module does not depend
    on the keys module's layout); ``broadcaster`` carries key changes to the other instances.
    """

    shares_budgets = True

    def __init__(self, link: RedisLink, decision: Any, prefix: str = "llmrelay:", broadcaster: Any = None) -> None:
        self.limiter = SharedLimiter(link, prefix + "rl:")
        self.link = link
        self.decision = decision
        self.spend_prefix = prefix + "sp:"
        self.broadcaster = broadcaster
        self.keys: Any = None
        self._grants: dict[tuple[str, ...], deque] = {}
        self._queue: list[tuple[str, str, float, int, _Budget | None]] = []
        self._timer: Any = None
        self._spend_sha = link.script(_SPEND)

    def attach(self, keys: Any) -> None:
        """Serve ``keys`` (the :class:`~.keys.KeyManager`): its rows, its key-change broadcasts."""
        self.keys = keys
        if self.broadcaster is not None:
            self.broadcaster.on(_TOPIC, self._on_changed)

    # ------------------------------------------------------------------ limits
    @staticmethod
    def _ours(limits: Sequence[Any]) -> tuple[Limit, ...]:
        return tuple(Limit(lim.counter, lim.rpm, lim.tpm, lim.parallel) for lim in limits)

    async def acquire(self, limits: Sequence[Any]) -> Any:
        """The ``LimitBackend`` call: the limits alone."""
        return await self.admit(limits, None, None)

    async def admit(self, limits: Sequence[Any], budgets: Sequence[_Budget] | None, prefetch: Any) -> Any:
        """Budgets, limits and the cache entry in one round trip: the ``Decision``, or None when
        a budget is spent (the rows then hold the shared spend, for the refusal's message)."""
        get = prefetch.redis_key(self.link) if prefetch is not None else None
        caps = [(b.counter, b.cap) for b in budgets] if budgets else ()
        grant = await self.limiter.acquire(self._ours(limits), 0, caps, get)
        if budgets and grant.spent:
            for budget, total in zip(budgets, grant.spent):
                budget.learn(total)
        if not grant.allowed:
            if grant.kind == "budget":
                return None
            refused = next((lim for lim in limits if lim.counter == grant.limit), None)
            kind = grant.kind or "rpm"  # the Limit's field of the same name holds the number
            reason = refusal_reason(getattr(refused, "label", grant.limit), kind, getattr(refused, kind, None))
            return self.decision(False, reason, grant.retry_after)
        if get is not None and grant.shared:
            prefetch.prefetched(grant.cached)
        if limits:
            self._grants.setdefault(tuple(lim.counter for lim in limits), deque()).append(grant)
        rpms = [lim.rpm for lim in limits if lim.rpm is not None]
        tpms = [lim.tpm for lim in limits if lim.tpm is not None]
        limit_requests = remaining_requests = limit_tokens = remaining_tokens = None
        if rpms and grant.remaining_requests is not None:
            limit_requests, remaining_requests = min(rpms), grant.remaining_requests
        if tpms and grant.remaining_tokens is not None:
            limit_tokens, remaining_tokens = min(tpms), grant.remaining_tokens
        return self.decision(True, "", 0.0, limit_requests, remaining_requests, limit_tokens, remaining_tokens)

    async def release(self, limits: Sequence[Any], tokens: int) -> None:
        grants = self._grants.get(tuple(lim.counter for lim in limits))
        if not grants:
            return
        grant = grants.popleft()
        if not grants:
            self._grants.pop(tuple(lim.counter for lim in limits), None)
        if any(lim.tpm or lim.parallel for lim in limits):  # a request count has nothing to give back
            self.limiter.release_soon(grant, tokens)

    # ------------------------------------------------------------------ budgets
    def budgets(self, token: str | None, key: dict | None, team: dict | None, user: dict | None,
                customer: dict | None, model: str) -> list[_Budget] | None:
        """The request's budgets with a maximum (their counters), or None (``key`` None: the
        master key's request, only its end user's)."""
        out = None
        prefix = self.spend_prefix
        owners = (("end_user", customer.get("user_id") if customer else None, customer),)
        if key is not None:
            owners = (("key", token, key), ("team", key.get("team_id"), team), ("user", key.get("user_id"), user),
                      *owners)
        for kind, ident, row in owners:
            if row is None or ident is None:
                continue
            cap = row.get("max_budget")
            if cap is not None:
                period = _period(row)
                out = out or []
                out.append(_Budget(f"{prefix}{kind}:{ident}:{period}", float(cap), row, None, period))
        per_model = key.get("model_max_budget") if key is not None else None
        if per_model and model in per_model:
            cap = per_model[model]
            if isinstance(cap, dict):
                cap = cap.get("budget_limit")
            if cap is not None:
                period = _model_period(key, model)
                out = out or []
                out.append(_Budget(f"{prefix}key:{token}:{period}:m:{model}", float(cap), key, model, period))
        return out

    def charge(self, who: Any, cost: float) -> None:
        """A request that ``who`` made cost ``cost``: add it to the shared counters of its
        budgets (in the background, batched with the other requests ending now)."""
        keys = self.keys
        if keys is None:
            return
        customer = keys.cached("end_user", who.end_user)
        key = who.key  # (None: the master key, only an end user's budget)
        team = keys.cached("team", key.get("team_id")) if key is not None else None
        user = keys.cached("user", key.get("user_id")) if key is not None else None
        for budget in self.budgets(who.token, key, team, user, customer, who.model or "") or ():
            self._add(budget, cost)

    def reconcile(self, kind: str, ident: str, row: dict) -> None:
        """``row`` was just read from the database (the ledger): raise its shared counter to
        the ledger's spend if lower."""
        period = _period(row)
        if row.get("max_budget") is not None and row.get("spend"):
            self._queue_op(f"{self.spend_prefix}{kind}:{ident}:{period}", "max", float(row["spend"]), period, None)
        if kind == "key" and row.get("model_max_budget") and row.get("model_spend"):
            for model, spent in row["model_spend"].items():
                if model in row["model_max_budget"] and spent:
                    own = _model_period(row, model)
                    self._queue_op(f"{self.spend_prefix}key:{ident}:{own}:m:{model}", "max", float(spent),
                                   own, None)

    async def set_spend(self, kind: str, ident: str, row: dict) -> None:
        """An admin set ``row``'s spend (``/key/update`` with ``{"spend": 0}``…): set its shared
        counter to it before the change is announced, so that no instance's next admission
        reads the spend from before (reconciliation only ever raises a counter)."""
        period = _period(row)
        self.forget_queued(kind, ident)
        try:
            await self.link.execute("EVALSHA", self._spend_sha, 1, f"{self.spend_prefix}{kind}:{ident}:{period}",
                                    "=", repr(float(row.get("spend") or 0.0)), _ttl(period))
        except RedisUnavailable:
            # (Redis down: counted by each instance alone until it is back, then refilled from the ledger)
            log.warning("the shared spend of %s %s was not reset: Redis is unavailable", kind, ident)

    def forget_queued(self, kind: str, ident: str) -> None:
        """Drop the updates queued for this row's spend counter (its spend was set since: they
        are from before)."""
        counter = f"{self.spend_prefix}{kind}:{ident}:"
        self._queue = [op for op in self._queue if not (op[0].startswith(counter) and ":m:" not in op[0])]

    def _add(self, budget: _Budget, cost: float) -> None:
        row = budget.row
        spent = row.get("spend", 0.0) if budget.model is None else (row.get("model_spend") or {}).get(budget.model, 0.0)
        # near the budget every instance must see this at once; far from it, a batch will do
        urgent = spent + cost >= URGENT * budget.cap
        self._queue_op(budget.counter, "+", cost, budget.period, budget, urgent)

    def _queue_op(self, counter: str, op: str, amount: float, period: int, budget: _Budget | None,
                  urgent: bool = False) -> None:
        if not self.link.available():
            return  # Redis is down: the ledger refills the counters when it is back
        self._queue.append((counter, op, amount, period, budget))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._queue.clear()
            return
        if urgent:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_soon(self._flush)
        elif self._timer is None:
            self._timer = loop.call_later(SPEND_DELAY, self._flush)

    def _flush(self) -> None:
        self._timer = None
        batch, self._queue = self._queue, []
        if batch:
            _spawn(self._send(batch))

    async def _send(self, batch: list[tuple[str, str, float, int, _Budget | None]]) -> None:
        keys = [counter for counter, *_ in batch]
        args: list[Any] = []
        for _counter, op, amount, period, _budget in batch:
            args += [op, repr(amount), _ttl(period)]
        try:
            totals = await self.link.execute("EVALSHA", self._spend_sha, len(keys), *keys, *args)
        except RedisUnavailable:
            return  # lost here; the ledger has it and refills the counter at the next read
        except Exception:  # noqa: BLE001 - a background write must not raise
            log.debug("shared spend update failed", exc_info=True)
            return
        for (_counter, _op, _amount, _period, budget), total in zip(batch, totals):
            if budget is not None:
                budget.learn(float(total))

    # ------------------------------------------------------------------ key changes
    def announce(self, kind: str, ident: str, spend_set: bool = False) -> None:
        """A row changed here (``spend_set``: an admin set its spend): tell every other
        instance (in the background)."""
        if self.broadcaster is not None:
            payload = {"kind": kind, "ident": ident, "spend": True} if spend_set else {"kind": kind, "ident": ident}
            _spawn(self.broadcaster.publish(_TOPIC, payload))

    def _on_changed(self, payload: dict) -> None:
        kind, ident = payload.get("kind"), payload.get("ident")
        if self.keys is not None and isinstance(kind, str) and isinstance(ident, str):
            spend_set = payload.get("spend") is True
            if spend_set:
                self.forget_queued(kind, ident)
            self.keys.changed_elsewhere(kind, ident, spend_set)
