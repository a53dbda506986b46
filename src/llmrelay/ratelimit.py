"""Rate limits (requests and tokens per minute, requests in flight) as one atomic check-and-take.

A request names the :class:`Limit` s that apply to it (its key, team, user, the deployment…);
:meth:`acquire` admits it under *all* of them or under none, and :meth:`release` gives back its
in-flight slots and books the tokens it really used. Two backends, one interface:

* :class:`LocalLimiter` — this process's memory (one instance, or the fallback);
* :class:`RedisLimiter` — one Lua script per request on a shared Redis, so N gateway instances
  enforce one set of numbers; ``SharedLimiter`` uses it while Redis answers and falls back to
  a :class:`LocalLimiter` (each instance enforcing the full limits) while it does not.

Windows are fixed minutes of the Redis server's clock (``TIME``), so every instance agrees on
them; ``retry_after`` is the time to the next minute (1 s for a parallel-request refusal).
TPM admission reserves ``tokens`` (the caller's estimate) and :meth:`release` corrects the
count to the tokens really used, so concurrent requests cannot overshoot a TPM limit by more
than their estimates undercount. In-flight slots are members of a sorted set scored by their
deadline, so the slots of a crashed instance free themselves (``slot_ttl``, default 600 s).
Keys embed the window, so Redis Cluster is not supported (one Redis or a primary/replica pair).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

from .redis_link import RedisLink, RedisUnavailable, spawn

__all__ = ["Limit", "Grant", "LocalLimiter", "RedisLimiter", "SharedLimiter", "WINDOW"]

WINDOW = 60
#: Seconds a finished request's release may wait to be sent with others (:meth:`SharedLimiter.release_soon`).
RELEASE_DELAY = 0.02

_KINDS = {1: "rpm", 2: "tpm", 3: "parallel", 4: "budget"}


@dataclass(frozen=True)
class Limit:
    """The limits of one scope (``name``: e.g. ``key:<hash>``, ``team:<id>``, ``deployment:<id>``).
    None means unlimited."""

    name: str
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None

    @property
    def empty(self) -> bool:
        return not (self.rpm or self.tpm or self.parallel)


@dataclass
class Grant:
    """The answer to :meth:`acquire`. When refused: ``limit``/``kind`` say which (``rpm``,
    ``tpm``, ``parallel``) and ``retry_after`` when to try again. When admitted: what is left
    (the smallest over all scopes; None when no such limit applies), and what :meth:`release`
    needs. ``shared``: decided by Redis (False: by this instance alone)."""

    allowed: bool
    limit: str | None = None
    kind: str | None = None
    retry_after: float = 0.0
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    window: int = 0
    reserved: int = 0
    slot: str = ""
    shared: bool = False
    limits: Sequence[Limit] = field(default_factory=tuple)
    #: The budgets' spend as read by the same round trip (:meth:`RedisLimiter.acquire`'s
    #: ``budgets``; a refusal for a budget has ``kind`` "budget" and ``limit`` its index).
    spent: tuple[float, ...] = ()
    #: The cache entry read by the same round trip (``get``), None if absent or not asked.
    cached: bytes | None = None


def _slot() -> str:
    return uuid.uuid4().hex


# ============================================================================ in memory
class LocalLimiter:
    """The same semantics in this process's memory (thread-safe; windows of this machine's clock).

    It is :class:`RedisLimiter`'s stand-in (:class:`SharedLimiter`'s fallback while Redis is
    down), so it keeps the script's model: fixed minutes, tpm reserved at admission and corrected
    at release, slots with a deadline. The keys' limits without Redis use
    :class:`llmrelay.proxy.rate_limits.LocalLimits` instead, whose documented windows slide
    (docs/keys.md) and which costs a quarter of the CPU per request; its docstring says why the
    two are not one.
    """

    def __init__(self, slot_ttl: float = 600.0) -> None:
        self.slot_ttl = slot_ttl
        self._counts: dict[tuple[str, str, int], int] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def _acquire(self, limits: Sequence[Limit], tokens: int) -> Grant:
        now = time.time()
        window = int(now // WINDOW)
        reset = WINDOW - (now % WINDOW)
        slot = _slot()
        counts = self._counts
        rem_r = rem_t = None
        with self._lock:
            if len(counts) > 4096:
                for k in [k for k in counts if k[2] < window]:
                    del counts[k]
            for lim in limits:
                if lim.rpm:
                    used = counts.get((lim.name, "r", window), 0)
                    if used + 1 > lim.rpm:
                        return Grant(False, lim.name, "rpm", reset, window=window)
                    rem_r = _least(rem_r, lim.rpm - used - 1)
                if lim.tpm:
                    used = counts.get((lim.name, "t", window), 0)
                    if used >= lim.tpm or (used > 0 and used + tokens > lim.tpm):
                        return Grant(False, lim.name, "tpm", reset, window=window)
                    rem_t = _least(rem_t, lim.tpm - used - tokens)
                if lim.parallel:
                    slots = self._slots.setdefault(lim.name, {})
                    for k in [k for k, deadline in slots.items() if deadline <= now]:
                        del slots[k]
                    if len(slots) + 1 > lim.parallel:
                        return Grant(False, lim.name, "parallel", 1.0, window=window)
            for lim in limits:
                if lim.rpm:
                    counts[(lim.name, "r", window)] = counts.get((lim.name, "r", window), 0) + 1
                if lim.tpm and tokens:
                    counts[(lim.name, "t", window)] = counts.get((lim.name, "t", window), 0) + tokens
                if lim.parallel:
                    self._slots.setdefault(lim.name, {})[slot] = now + self.slot_ttl
        return Grant(True, retry_after=reset, remaining_requests=rem_r, remaining_tokens=rem_t, window=window,
                     reserved=tokens, slot=slot, limits=tuple(limits))

    def _release(self, grant: Grant, tokens_used: int | None) -> None:
        with self._lock:
            for lim in grant.limits:
                if lim.parallel:
                    self._slots.get(lim.name, {}).pop(grant.slot, None)
                if lim.tpm and tokens_used is not None:
                    key = (lim.name, "t", grant.window)
                    if key in self._counts or tokens_used:
                        self._counts[key] = max(0, self._counts.get(key, 0) + tokens_used - grant.reserved)

    async def acquire(self, limits: Sequence[Limit], tokens: int = 0) -> Grant:
        """Admit a request under every limit in ``limits`` (taking its share), or refuse it."""
        return self._acquire(limits, tokens)

    async def release(self, grant: Grant, tokens_used: int | None = None) -> None:
        """The request ended: free its slots; book ``tokens_used`` (None: keep the reservation)."""
        if grant.allowed:
            self._release(grant, tokens_used)


def _least(a: int | None, b: int) -> int:
    return b if a is None or b < a else a


# ============================================================================ on Redis
#: One admission, all in one script (one round trip): budgets first (a request over a budget takes
#: no share of any limit), then every limit checked and, only if all admit it, taken; then the
#: response cache's entry, if asked for.
#: KEYS: the limits' base names (nl), the budgets' spend counters (nb), then the cache key (get=1).
#: ARGV: tokens, slot id, slot ttl, nl, nb, get, then per limit rpm, tpm, parallel, then per budget
#: its maximum (-1: none).
#: Reply: {ok, index, kind (1 rpm, 2 tpm, 3 parallel, 4 budget), reset, rem_r, rem_t, window,
#: cache entry or nil, then each budget's spend as read (strings)}.
_ACQUIRE = """
local tokens = tonumber(ARGV[1])
local slot = ARGV[2]
local ttl = tonumber(ARGV[3])
local nl, nb, get = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1'
local out = {1, 0, 0, '0', -1, -1, 0, false}
for j = 1, nb do
  local s = redis.call('GET', KEYS[nl + j]) or '0'
  out[8 + j] = s
  local cap = tonumber(ARGV[6 + 3 * nl + j])
  if cap >= 0 and tonumber(s) >= cap then
    out[1], out[2], out[3] = 0, j, 4
    return out
  end
end
if nl > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local win = math.floor(now / 60)
  local reset = tostring(60 - (now % 60))
  out[4], out[7] = reset, win
  local rem_r, rem_t = -1, -1
  for i = 1, nl do
    local base = KEYS[i]
    local rpm, tpm, par = tonumber(ARGV[3*i+4]), tonumber(ARGV[3*i+5]), tonumber(ARGV[3*i+6])
    if rpm > 0 then
      local used = tonumber(redis.call('GET', base .. ':r:' .. win) or '0')
      if used + 1 > rpm then out[1], out[2], out[3] = 0, i, 1 return out end
      if rem_r < 0 or rpm - used - 1 < rem_r then rem_r = rpm - used - 1 end
    end
    if tpm > 0 then
      local used = tonumber(redis.call('GET', base .. ':t:' .. win) or '0')
      if used >= tpm or (used > 0 and used + tokens > tpm) then out[1], out[2], out[3] = 0, i, 2 return out end
      if rem_t < 0 or tpm - used - tokens < rem_t then rem_t = tpm - used - tokens end
    end
    if par > 0 then
      redis.call('ZREMRANGEBYSCORE', base .. ':p', '-inf', now)
      if redis.call('ZCARD', base .. ':p') + 1 > par then
        out[1], out[2], out[3], out[4] = 0, i, 3, '1'
        return out
      end
    end
  end
  for i = 1, nl do
    local base = KEYS[i]
    local rpm, tpm, par = tonumber(ARGV[3*i+4]), tonumber(ARGV[3*i+5]), tonumber(ARGV[3*i+6])
    if rpm > 0 then
      local k = base .. ':r:' .. win
      if redis.call('INCR', k) == 1 then redis.call('EXPIRE', k, 120) end
    end
    if tpm > 0 and tokens > 0 then
      local k = base .. ':t:' .. win
      if redis.call('INCRBY', k, tokens) == tokens then redis.call('EXPIRE', k, 120) end
    end
    if par > 0 then
      redis.call('ZADD', base .. ':p', now + ttl, slot)
      redis.call('EXPIRE', base .. ':p', math.ceil(ttl))
    end
  end
  out[5], out[6] = rem_r, rem_t
end
if get then out[8] = redis.call('GET', KEYS[nl + nb + 1]) end
return out
"""

#: KEYS: per limit, its base name. ARGV: slot id, window, token correction, then per limit tpm?, parallel?.
_RELEASE = """
local slot, win, delta = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 1, #KEYS do
  local base = KEYS[i]
  if ARGV[2*i+2] == '1' and delta ~= 0 then
    local k = base .. ':t:' .. win
    if redis.call('EXISTS', k) == 1 then redis.call('INCRBY', k, delta)
    elseif delta > 0 then redis.call('SET', k, delta, 'EX', 120) end
  end
  if ARGV[2*i+3] == '1' then redis.call('ZREM', base .. ':p', slot) end
end
return 1
"""


class RedisLimiter:
    """Limits on Redis: one ``EVALSHA`` per :meth:`acquire` and per :meth:`release`.

    Raises :class:`~llmrelay.redis_link.RedisUnavailable` when Redis does not answer.
    """

    def __init__(self, link: RedisLink, prefix: str = "llmrelay:rl:", slot_ttl: float = 600.0) -> None:
        self.link = link
        self.prefix = prefix
        self.slot_ttl = slot_ttl
        self._sha: str | None = None
        self._release_sha: str | None = None

    def acquire_args(self, limits: Sequence[Limit], tokens: int, slot: str,
                     budgets: Sequence[tuple[str, float]] = (), get: str | None = None) -> tuple[list[str], list[Any]]:
        prefix = self.prefix
        keys = [prefix + lim.name for lim in limits]
        args: list[Any] = [int(tokens), slot, self.slot_ttl, len(limits), len(budgets), 1 if get else 0]
        for lim in limits:
            args += [int(lim.rpm or 0), int(lim.tpm or 0), int(lim.parallel or 0)]
        for counter, cap in budgets:
            keys.append(counter)
            args.append(cap)
        if get:
            keys.append(get)
        return keys, args

    @staticmethod
    def grant_of(reply: list, limits: Sequence[Limit], tokens: int, slot: str) -> Grant:
        ok, index, kind, reset, rem_r, rem_t, window = reply[:7]
        cached = reply[7] if len(reply) > 7 else None
        spent = tuple(float(v) for v in reply[8:])
        if not int(ok):
            kind = _KINDS[int(kind)]
            name = str(index) if kind == "budget" else limits[int(index) - 1].name
            return Grant(False, name, kind, float(reset), window=int(window), shared=True, spent=spent)
        return Grant(True, retry_after=float(reset), remaining_requests=None if int(rem_r) < 0 else int(rem_r),
                     remaining_tokens=None if int(rem_t) < 0 else int(rem_t), window=int(window), reserved=tokens,
                     slot=slot, shared=True, limits=tuple(limits), spent=spent, cached=cached)

    async def acquire(self, limits: Sequence[Limit], tokens: int = 0, budgets: Sequence[tuple[str, float]] = (),
                      get: str | None = None) -> Grant:
        """Admit a request (see :class:`LocalLimiter`), in one round trip that also reads
        ``budgets`` (``(counter key, maximum or -1)``: refused when a counter ≥ its maximum,
        before any limit is taken) and, when admitted, the key ``get`` (the cache's entry)."""
        slot = _slot() if any(lim.parallel for lim in limits) else ""
        keys, args = self.acquire_args(limits, tokens, slot, budgets, get)
        sha = self._sha or self._load()
        return self.grant_of(await self.link.execute("EVALSHA", sha, len(keys), *keys, *args), limits, tokens, slot)

    def _load(self) -> str:
        self._sha = self.link.script(_ACQUIRE)
        self._release_sha = self.link.script(_RELEASE)
        return self._sha

    def release_args(self, grant: Grant, tokens_used: int | None) -> tuple[list[str], list[Any]]:
        delta = 0 if tokens_used is None else int(tokens_used) - grant.reserved
        keys = [self.prefix + lim.name for lim in grant.limits]
        args: list[Any] = [grant.slot, grant.window, delta]
        for lim in grant.limits:
            args += ["1" if lim.tpm else "0", "1" if lim.parallel else "0"]
        return keys, args

    async def release(self, grant: Grant, tokens_used: int | None = None) -> None:
        if grant.allowed:
            await self.release_many([(grant, tokens_used)])

    async def release_many(self, batch: Sequence[tuple[Grant, int | None]]) -> None:
        """Release several grants in one pipelined round trip."""
        calls = [self.release_args(grant, tokens) for grant, tokens in batch if grant.allowed]
        if not calls:
            return

        if self._release_sha is None:
            self._load()
        sha = self._release_sha
        await self.link.pipeline([("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls])


class SharedLimiter:
    """:class:`RedisLimiter` while Redis answers, :class:`LocalLimiter` while it does not.

    A grant is released where it was taken. Never raises for Redis's sake.
    """

    def __init__(self, link: RedisLink, prefix: str = "llmrelay:rl:", slot_ttl: float = 600.0) -> None:
        self.redis = RedisLimiter(link, prefix, slot_ttl)
        self.local = LocalLimiter(slot_ttl)
        self.link = link
        self._pending: list[tuple[Grant, int | None]] = []
        self._flush: Any = None

    async def acquire(self, limits: Sequence[Limit], tokens: int = 0, budgets: Sequence[tuple[str, float]] = (),
                      get: str | None = None) -> Grant:
        """:meth:`RedisLimiter.acquire`; while Redis is unreachable the limits are counted here
        and ``budgets``/``get`` are not read (``spent`` empty, ``cached`` None)."""
        if self.link.available():
            try:
                return await self.redis.acquire(limits, tokens, budgets, get)
            except RedisUnavailable:
                pass
        return await self.local.acquire(limits, tokens)

    async def release(self, grant: Grant, tokens_used: int | None = None) -> None:
        if not grant.allowed:
            return
        if grant.shared:
            try:
                await self.redis.release(grant, tokens_used)
            except RedisUnavailable:
                pass  # the slot frees itself at its deadline; the token correction is lost
        else:
            await self.local.release(grant, tokens_used)

    def release_soon(self, grant: Grant, tokens_used: int | None = None) -> None:
        """:meth:`release` without waiting. A grant holding in-flight slots is released at once
        (in the background); token corrections alone are batched: one pipelined round trip per
        :data:`RELEASE_DELAY` whatever the request rate."""
        if not grant.allowed:
            return
        if not grant.shared:
            self.local._release(grant, tokens_used)
            return
        if any(lim.parallel for lim in grant.limits):
            # a held slot is given back at once: the caller's next request must find it free
            spawn(self._release_batch([(grant, tokens_used)]))
            return
        self._pending.append((grant, tokens_used))
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(RELEASE_DELAY, self._send_pending)

    def _send_pending(self) -> None:
        self._flush = None
        batch, self._pending = self._pending, []
        spawn(self._release_batch(batch))

    async def _release_batch(self, batch: list[tuple[Grant, int | None]]) -> None:
        try:
            await self.redis.release_many(batch)
        except RedisUnavailable:
            pass  # the slots free themselves at their deadline; the token corrections are lost
