"""The routing counters of every instance: ``usage-based-routing`` and ``least-busy`` in shared
mode (``Router(redis_url=…)``, the gateway's ``router_settings.redis_*``).

Nothing is added to a request: the router counts as before (this instance's requests and tokens
per deployment, its requests in flight), and a background task exchanges the counts with Redis
every ``interval`` (0.5 s), in one script call:

* **usage**: it adds what this instance counted since the last exchange to a hash per minute of
  the Redis clock (``<prefix>router:usage:<minute>``, fields ``<deployment>|r`` and ``|t``,
  expiring after 2 minutes) and reads the hash back; a deployment's ``remote_requests`` and
  ``remote_tokens`` become the minute's totals minus this instance's own share of them;
* **in flight**: once per slot (1 s of the Redis clock) it adds its in-flight count per
  deployment to ``<prefix>router:busy:<slot>`` (expiring after 4 slots) and reads the previous
  slot's hash, complete by then; ``remote_in_flight`` becomes its sum minus this instance's
  share. An instance that dies just stops adding: nothing leaks, nothing to clean up.

The other instances' counts are therefore at most ``interval`` (usage) or ``slot + interval``
(in flight) old, and one exchange costs Redis work in proportion to the deployments, not the
instances. While Redis is unreachable (:class:`~llmrelay.redis_link.RedisLink` logs one line per
state change) the remote counts are 0 and each instance routes on its own counts; what it counted
meanwhile stays local. A synchronous-only library ``Router`` (no event loop) has no task: its
counts are per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exchange import INTERVAL, PeriodicExchange

if TYPE_CHECKING:
    from .deployment import Deployment
    from .shared import RouterShared

__all__ = ["SharedCounters", "INTERVAL", "SLOT"]

#: Seconds of one in-flight sample (of the Redis clock).
SLOT = 1.0

# ARGV: prefix, usage?, busy?, slot ms, the slot last written, n, then n × (name, requests,
# tokens, in flight) of the deployments with new counts or requests in flight. Reply: {minute, usage hash, slot, written?, previous slot's busy hash}.
_EXCHANGE = """
local prefix, usage, busy = ARGV[1], ARGV[2] == '1', ARGV[3] == '1'
local slot_ms, last, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call('TIME')
local minute = math.floor(tonumber(t[1]) / 60)
local slot = math.floor((tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) / slot_ms)
local totals, written, busy_prev = {}, 0, {}
if usage then
  local key = prefix .. 'usage:' .. minute
  for i = 0, n - 1 do
    local name, r, tk = ARGV[7 + 4 * i], tonumber(ARGV[8 + 4 * i]), tonumber(ARGV[9 + 4 * i])
    if r ~= 0 then redis.call('HINCRBY', key, name .. '|r', r) end
    if tk ~= 0 then redis.call('HINCRBY', key, name .. '|t', tk) end
  end
  redis.call('PEXPIRE', key, 120000)
  totals = redis.call('HGETALL', key)
end
if busy then
  if slot ~= last then
    local key = prefix .. 'busy:' .. slot
    for i = 0, n - 1 do
      local c = tonumber(ARGV[10 + 4 * i])
      if c ~= 0 then redis.call('HINCRBY', key, ARGV[7 + 4 * i], c) end
    end
    redis.call('PEXPIRE', key, 4 * slot_ms)
    written = 1
  end
  busy_prev = redis.call('HGETALL', prefix .. 'busy:' .. (slot - 1))
end
return {minute, totals, slot, written, busy_prev}
"""


class SharedCounters(PeriodicExchange):
    """Exchanges one router's routing counters with the other instances (module docstring)."""

    failure_message = "exchanging routing counters through Redis failed; routing on this instance's counts"

    def __init__(self, shared: "RouterShared", usage: bool, busy: bool,
                 interval: float = INTERVAL, slot: float = SLOT) -> None:
        super().__init__(interval)
        self.shared = shared
        self.usage = usage
        self.busy = busy
        self.slot_ms = max(1, int(slot * 1000))
        self._sha = shared.link.script(_EXCHANGE)
        self._sent: dict[Deployment, tuple[int, int]] = {}  # usage() at the last exchange
        self._minute: int | None = None
        self._own: dict[str, list[int]] = {}  # name -> [requests, tokens] this instance added in _minute
        self._slot = -1  # the last slot this instance wrote
        self._own_busy: dict[int, dict[str, int]] = {}  # slot -> name -> in flight written

    def lost(self) -> None:
        """Forget the other instances' counts (route on this instance's own)."""
        for _name, dep in self.shared.counted():
            dep.remote_requests = dep.remote_tokens = dep.remote_in_flight = 0

    # ------------------------------------------------------------------ one exchange
    async def exchange(self) -> None:
        """Send this instance's counts, read everyone's (raises RedisUnavailable)."""
        deps = self.shared.counted()  # (also the deployments made on the fly for wildcard groups)
        sent: dict[Deployment, tuple[int, int]] = {}
        args: list[Any] = []
        changes = []  # (name, requests, tokens, in flight) of the deployments with something to add
        for name, dep in deps:
            requests, tokens = counts = dep.usage() if self.usage else (0, 0)
            before = self._sent.get(dep, (0, 0))
            sent[dep] = counts
            in_flight = dep.in_flight if self.busy else 0
            if requests != before[0] or tokens != before[1] or in_flight:
                change = (name, requests - before[0], tokens - before[1], in_flight)
                changes.append(change)
                args += change
        # Sent, or lost with a failed call: what is counted during an outage stays local.
        self._sent = sent
        minute, totals, slot, written, busy_prev = await self.shared.link.execute(
            "EVALSHA", self._sha, 0, self.shared.prefix, int(self.usage), int(self.busy), self.slot_ms,
            self._slot, len(changes), *args)
        if self.usage:
            if minute != self._minute:
                self._minute = minute
                self._own = {}
            own = self._own
            for name, dr, dt, _n in changes:
                if dr or dt:
                    mine = own.setdefault(name, [0, 0])
                    mine[0] += dr
                    mine[1] += dt
            total = _hash(totals)
            for name, dep in deps:
                mine = own.get(name) or (0, 0)
                dep.remote_requests = max(0, total.get(name + "|r", 0) - mine[0])
                dep.remote_tokens = max(0, total.get(name + "|t", 0) - mine[1])
        if self.busy:
            if written:
                self._slot = slot
                self._own_busy = {s: v for s, v in self._own_busy.items() if s >= slot - 1}
                self._own_busy[slot] = {name: n for name, _r, _t, n in changes if n}
            mine_then = self._own_busy.get(slot - 1, {})
            total = _hash(busy_prev)
            for name, dep in deps:
                dep.remote_in_flight = max(0, total.get(name, 0) - mine_then.get(name, 0))
        self.exchanges += 1


def _hash(flat: list[Any]) -> dict[str, int]:
    """An ``HGETALL`` reply as a dict of ints."""
    out = {}
    for i in range(0, len(flat) - 1, 2):
        key = flat[i]
        out[key.decode() if isinstance(key, bytes) else str(key)] = int(flat[i + 1])
    return out
