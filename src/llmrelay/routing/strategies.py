"""Routing strategies: pick one deployment from a group's available ones.

Each strategy is ``pick(candidates, stream) -> Deployment``; ``candidates`` is never empty and
holds only deployments that are neither cooling down nor over their limits.

``least-busy`` and ``usage-based-routing`` read this instance's counts plus, in shared mode,
the other instances' (``remote_*``, refreshed in the background: see
:mod:`llmrelay.routing.shared_usage`).
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

from .deployment import Deployment

__all__ = ["STRATEGIES", "get_strategy"]

Pick = Callable[[Sequence[Deployment], bool], Deployment]


def simple_shuffle(candidates: Sequence[Deployment], stream: bool) -> Deployment:
    """Random, weighted by ``weight``, else by ``rpm``, else by ``tpm``, else uniform."""
    if len(candidates) == 1:
        return candidates[0]
    for attr in ("weight", "rpm", "tpm"):
        weights = [getattr(d, attr) for d in candidates]
        if any(w is not None for w in weights):
            weights = [w or 0.0 for w in weights]
            if sum(weights) > 0:
                return random.choices(candidates, weights)[0]
    return candidates[random.randrange(len(candidates))]


def _lowest(candidates: Sequence[Deployment], load: Callable[[Deployment], float]) -> Deployment:
    """The candidate with the lowest ``load`` (ties broken at random), in one pass: the
    load-based strategies run this for every call."""
    best: list[Deployment] = []
    low = 0.0
    for d in candidates:
        n = load(d)
        if not best or n < low:
            low = n
            best = [d]
        elif n == low:
            best.append(d)
    return best[0] if len(best) == 1 else random.choice(best)


def _busy(d: Deployment) -> float:
    return d.in_flight + d.remote_in_flight


def least_busy(candidates: Sequence[Deployment], stream: bool) -> Deployment:
    """The fewest requests in flight, on every instance (ties broken at random)."""
    return _lowest(candidates, _busy)


def make_latency_based(buffer: float = 0.0) -> Pick:
    """Lowest recent latency (streams: time to first chunk), within ``buffer`` (a fraction).

    A deployment with no sample yet counts as fastest, so every deployment gets measured.
    """

    def latency_based(candidates: Sequence[Deployment], stream: bool) -> Deployment:
        if len(candidates) == 1:
            return candidates[0]
        values = []
        for d in candidates:
            v = d.ttft if stream else d.latency
            if v is None:  # fall back to the other measure, then to "unmeasured"
                v = d.latency if stream else d.ttft
            values.append(0.0 if v is None else v)
        low = min(values)
        limit = low * (1.0 + buffer)
        best = [d for d, v in zip(candidates, values) if v <= limit]
        return best[0] if len(best) == 1 else random.choice(best)

    return latency_based


def usage_based(candidates: Sequence[Deployment], stream: bool) -> Deployment:
    """The lowest share of its tpm (else rpm) used this minute, on every instance; unlimited
    ones by raw usage."""
    return _lowest(candidates, _usage)


def _usage(d: Deployment) -> float:
    if d.tpm:
        return (d.window_tokens + d.remote_tokens) / d.tpm
    if d.rpm:
        return (d.window_requests + d.remote_requests) / d.rpm
    return float(d.window_tokens + d.remote_tokens + d.window_requests + d.remote_requests)


#: LiteLLM's price for a deployment whose model has none (so priced ones are preferred).
_UNKNOWN_PRICE = 5.0
#: (deployment id, model, its own prices) → price per token, worked out once.
_prices: dict[tuple, float] = {}


def _price(d: Deployment) -> float:
    """Input + output USD per token: the deployment's own prices, else the table's (cached on it)."""
    memo = (d.id, d.model, d.input_cost_per_token, d.output_cost_per_token)
    price = _prices.get(memo)
    if price is None:
        inp, out = d.input_cost_per_token, d.output_cost_per_token
        if inp is None or out is None:
            from ..cost import ModelNotMappedError, get_model_info

            try:
                info = get_model_info((d.model_info or {}).get("base_model") or d.model)
                inp = info.get("input_cost_per_token") if inp is None else inp
                out = info.get("output_cost_per_token") if out is None else out
            except (ModelNotMappedError, ValueError):
                pass
        price = _UNKNOWN_PRICE if inp is None and out is None else float(inp or 0.0) + float(out or 0.0)
        if len(_prices) > 10_000:
            _prices.clear()
        _prices[memo] = price
    return price


def lowest_cost(candidates: Sequence[Deployment], stream: bool) -> Deployment:
    """LiteLLM's ``cost-based-routing``: the lowest input + output price per token (a model
    without prices counts as $5 per token); ties broken at random."""
    prices = [_price(d) for d in candidates]
    low = min(prices)
    best = [d for d, p in zip(candidates, prices) if p == low]
    return best[0] if len(best) == 1 else random.choice(best)


STRATEGIES = {
    "simple-shuffle": simple_shuffle,
    "least-busy": least_busy,
    "latency-based-routing": None,  # built with its arguments
    "usage-based-routing": usage_based,
    "usage-based-routing-v2": usage_based,
    "cost-based-routing": lowest_cost,
}


def get_strategy(name: str, args: dict | None = None) -> Pick:
    """The pick function for ``routing_strategy`` (ValueError for unknown names)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown routing_strategy {name!r}; one of {sorted(STRATEGIES)}")
    if name == "latency-based-routing":
        args = args or {}
        return make_latency_based(float(args.get("lowest_latency_buffer", 0.0) or 0.0))
    return STRATEGIES[name]  # type: ignore[return-value]
