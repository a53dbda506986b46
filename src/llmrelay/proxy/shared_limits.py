"""Virtual keys' rate limits (:mod:`.rate_limits`) counted on Redis: the ``LimitBackend`` of shared mode.

The keys pipeline makes one ``acquire(limits)`` per request (key, team, user, per-model
limits…) and one ``release(limits, tokens)`` at its end. Here both are one Lua script each on
Redis (:class:`~llmrelay.ratelimit.RedisLimiter`), so every gateway instance counts against the
same numbers; while Redis is unreachable the counting falls back to this instance alone
(:class:`~llmrelay.ratelimit.SharedLimiter`). Windows are the Redis clock's minutes (the local
backend's are sliding): a refusal's ``Retry-After`` is the time to the next minute.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Sequence

from ..ratelimit import Limit, SharedLimiter
from ..redis_link import RedisLink

__all__ = ["RedisLimits"]


class RedisLimits:
    """``acquire``/``release`` of the keys' ``LimitBackend`` protocol, on a :class:`SharedLimiter`.

    ``decision`` builds the pipeline's ``Decision`` (passed in, so this module does not depend
    on the keys module's layout).
    """

    def __init__(self, link: RedisLink, decision: Any, prefix: str = "llmrelay:") -> None:
        self.limiter = SharedLimiter(link, prefix + "rl:")
        self.decision = decision
        self._grants: dict[tuple[str, ...], deque] = {}

    @staticmethod
    def _ours(limits: Sequence[Any]) -> tuple[Limit, ...]:
        return tuple(Limit(lim.counter, lim.rpm, lim.tpm, lim.parallel) for lim in limits)

    async def acquire(self, limits: Sequence[Any]) -> Any:
        grant = await self.limiter.acquire(self._ours(limits))
        if not grant.allowed:
            refused = next((lim for lim in limits if lim.counter == grant.limit), None)
            label = getattr(refused, "label", grant.limit)
            number = {"rpm": getattr(refused, "rpm", None), "tpm": getattr(refused, "tpm", None),
                      "parallel": getattr(refused, "parallel", None)}[grant.kind or "rpm"]
            what = {"rpm": f"rpm limit ({number}/min)", "tpm": f"tpm limit ({number}/min)",
                    "parallel": f"max_parallel_requests limit ({number})"}[grant.kind or "rpm"]
            return self.decision(False, f"{label} {what}", grant.retry_after)
        self._grants.setdefault(tuple(lim.counter for lim in limits), deque()).append(grant)
        out = self.decision(True)
        rpms = [lim.rpm for lim in limits if lim.rpm is not None]
        tpms = [lim.tpm for lim in limits if lim.tpm is not None]
        if rpms and grant.remaining_requests is not None:
            out.limit_requests, out.remaining_requests = min(rpms), grant.remaining_requests
        if tpms and grant.remaining_tokens is not None:
            out.limit_tokens, out.remaining_tokens = min(tpms), grant.remaining_tokens
        return out

    async def release(self, limits: Sequence[Any], tokens: int) -> None:
        grants = self._grants.get(tuple(lim.counter for lim in limits))
        if not grants:
            return
        grant = grants.popleft()
        if not grants:
            self._grants.pop(tuple(lim.counter for lim in limits), None)
        self.limiter.release_soon(grant, tokens)
