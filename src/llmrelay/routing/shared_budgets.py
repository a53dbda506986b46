"""Budget routing's spend windows shared by every instance (``provider_budget_config`` and a
deployment's ``max_budget`` in shared mode: ``Router(redis_url=…)``, the gateway's
``router_settings.redis_*``), as LiteLLM keeps them in Redis.

Nothing is added to a request: a call is charged to the windows of this instance as before
(:mod:`.budget_limits`), and a background task exchanges them with Redis every ``interval``
(0.5 s), all windows in one script call. Each window is a hash ``<prefix>budget:<name>``
(``provider:<provider>``, or ``deployment:<shared name>``: the same on every instance with the
same config) holding the period's end and its spend: the exchange adds what this instance spent
since the last one, starts a new period when the stored one has ended (or none is stored), and
reads back the period's end and its total, which the window then holds (plus what this instance
spent meanwhile). So every instance skips a provider or deployment at most ``interval`` after
the instances together crossed its budget, and all agree on when the period ends.

While Redis is unreachable (:class:`~llmrelay.redis_link.RedisLink` logs one line per state
change) each instance counts on its own; what it spent meanwhile is added at the next exchange
that succeeds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .exchange import INTERVAL, PeriodicExchange

if TYPE_CHECKING:
    from .budget_limits import BudgetLimits, SpendWindow
    from .shared import RouterShared

__all__ = ["SharedBudgets", "INTERVAL"]


# ARGV: prefix, n, then n × (window name, spend to add, the period's end should a new one start).
# Reply: n × (the period's end, its spend), as strings.
_EXCHANGE = """
local prefix, n = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for i = 0, n - 1 do
  local key = prefix .. 'budget:' .. ARGV[3 + 3 * i]
  local ends = tonumber(redis.call('HGET', key, 'ends') or '0')
  if ends <= now then
    ends = tonumber(ARGV[5 + 3 * i])
    redis.call('HSET', key, 'ends', ARGV[5 + 3 * i], 'spent', '0')
  end
  local spent = redis.call('HINCRBYFLOAT', key, 'spent', ARGV[4 + 3 * i])
  redis.call('PEXPIREAT', key, math.floor(ends * 1000) + 60000)
  out[#out + 1] = tostring(ends)
  out[#out + 1] = spent
end
return out
"""


class SharedBudgets(PeriodicExchange):
    """Exchanges one router's spend windows with the other instances (module docstring). A
    failed exchange changes nothing: the windows go on counting this instance's spend."""

    failure_message = "exchanging budget spend through Redis failed; budgets count this instance's spend"

    def __init__(self, shared: "RouterShared", budgets: "BudgetLimits", interval: float = INTERVAL) -> None:
        super().__init__(interval)
        self.shared = shared
        self.budgets = budgets
        self._sha = shared.link.script(_EXCHANGE)

    def windows(self) -> list[tuple[str, "SpendWindow"]]:
        """(name in Redis, window) of every window: providers', then deployments' own."""
        out = [(f"provider:{provider}", window) for provider, window in self.budgets.providers.items()]
        for dep, window in self.budgets.own.values():
            out.append((f"deployment:{self.shared.name(dep)}", window))
        return out

    async def exchange(self) -> None:
        """Add this instance's spend, read everyone's (raises RedisUnavailable)."""
        windows = self.windows()
        if not windows:
            return
        now = time.time()
        args: list[Any] = []
        sent = []
        for name, window in windows:
            window.roll(now)
            delta, window.unsent = window.unsent, 0.0
            sent.append(delta)
            args += (name, repr(delta), repr(window.next_end(now)))
        try:
            reply = await self.shared.link.execute("EVALSHA", self._sha, 0, self.shared.prefix, len(windows), *args)
        except BaseException:
            for (_name, window), delta in zip(windows, sent):
                window.unsent += delta  # (sent at the next exchange that succeeds)
            raise
        for i, (_name, window) in enumerate(windows):
            window.adopt(float(reply[2 * i]), float(reply[2 * i + 1]))
        self.exchanges += 1
