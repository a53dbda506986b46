"""Budget routing: LiteLLM's ``provider_budget_config`` (USD per provider per period) and a
deployment's own ``litellm_params.max_budget`` / ``budget_duration``.

A deployment whose provider's window, or its own, has spent its limit is skipped until the
window's period ends (then its spend starts again from zero); when every deployment of a group
is over, the call fails at once with ``RateLimitError`` "No deployments available - crossed
budget" and a ``retry_after`` of the time until the first window reopens. Calls are charged
with their ``response_cost`` (a stream's when it ends). Sans-I/O; the windows live in the
Router's process, and in shared mode (a Router with Redis) every instance's spend is added up
there (:mod:`.shared_budgets`).
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from .deployment import provider_of

__all__ = ["SpendWindow", "BudgetLimits", "parse_provider_budgets", "stream_cost"]


class SpendWindow:
    """``limit`` USD per ``period`` (LiteLLM's durations: ``1d``, ``30d``, ``1mo``…).

    ``spent`` is the period's spend: this instance's, or in shared mode (:mod:`.shared_budgets`)
    every instance's as of the last exchange plus this instance's since (``unsent``)."""

    __slots__ = ("name", "limit", "period", "spent", "resets_at", "unsent")

    def __init__(self, name: str, limit: Any, period: Any) -> None:
        from ..proxy.budgets import DurationError, next_reset

        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0:
            raise ValueError(f"{name}: budget_limit must be a non-negative number of USD, got {limit!r}")
        try:
            next_reset(str(period), 0.0)
        except DurationError as exc:
            raise ValueError(f"{name}: time_period: {exc}") from None
        self.name = name
        self.limit = float(limit)
        self.period = str(period)
        self.spent = 0.0
        self.resets_at = 0.0
        self.unsent = 0.0

    def next_end(self, now: float) -> float:
        """The end of a period starting at ``now``."""
        from ..proxy.budgets import next_reset

        return next_reset(self.period, now)

    def roll(self, now: float) -> None:
        """Start a new period when this one has ended."""
        if now >= self.resets_at:
            self.spent = 0.0
            self.resets_at = self.next_end(now)

    def charge(self, cost: float, now: float) -> None:
        self.roll(now)
        self.spent += cost
        self.unsent += cost

    def adopt(self, ends: float, spent: float) -> None:
        """The shared period's end and spend (an exchange's answer), plus what was charged here since."""
        self.resets_at = ends
        self.spent = spent + self.unsent

    def over(self, now: float) -> bool:
        """Spent its limit in the current period."""
        return now < self.resets_at and self.spent >= self.limit


def parse_provider_budgets(config: Any) -> dict[str, SpendWindow]:
    """``{provider: {"budget_limit": USD, "time_period": "1d"}}`` → a window per provider."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"provider_budget_config must be a mapping of provider → budget_limit and time_period, "
                         f"got {type(config).__name__}")
    out = {}
    for provider, entry in config.items():
        name = f"provider_budget_config[{provider!r}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{name} must be a mapping with budget_limit and time_period")
        out[str(provider)] = SpendWindow(f"provider {provider}", entry.get("budget_limit"),
                                         entry.get("time_period") or entry.get("budget_duration"))
    return out


class BudgetLimits:
    """The windows that apply to each deployment (by id); empty when no budget is configured."""

    __slots__ = ("windows", "providers", "own")

    def __init__(self, provider_windows: dict[str, SpendWindow], deployments: Iterable[Any] = ()) -> None:
        self.providers = provider_windows
        self.windows: dict[str, tuple[SpendWindow, ...]] = {}
        #: deployment id → (deployment, its own window) of the deployments with a ``max_budget``
        self.own: dict[str, tuple[Any, SpendWindow]] = {}
        for dep in deployments:
            self.add(dep)

    def add(self, dep: Any) -> None:
        """Track ``dep``: its provider's window and its own ``max_budget``, if any."""
        found = []
        if self.providers:
            provider = provider_of(dep)
            if provider in self.providers:
                found.append(self.providers[provider])
        limit = dep.litellm_params.get("max_budget")
        if limit is not None:
            period = dep.litellm_params.get("budget_duration") or "1mo"
            own = SpendWindow(f"deployment {dep.id} ({dep.model_name})", limit, period)
            self.own[dep.id] = (dep, own)
            found.append(own)
        if found:
            self.windows[dep.id] = tuple(found)

    def remove(self, dep_id: str) -> None:
        self.windows.pop(dep_id, None)
        self.own.pop(dep_id, None)

    def over(self, dep: Any, now: float) -> SpendWindow | None:
        """The first of ``dep``'s windows that has spent its limit, if any."""
        for window in self.windows.get(dep.id, ()):
            if window.over(now):
                return window
        return None

    def charge(self, dep: Any, cost: Any) -> None:
        windows = self.windows.get(dep.id)
        if windows and isinstance(cost, (int, float)) and cost > 0:
            now = time.time()
            for window in windows:
                window.charge(float(cost), now)

    def crossed(self, group: str, deps: list[Any], now: float) -> Any:
        """The error for a group whose every deployment is over its budget."""
        from ..exceptions import RateLimitError

        over = [w for w in (self.over(d, now) for d in deps) if w is not None]
        detail = "; ".join(dict.fromkeys(f"{w.name} spent ${w.spent:.6g} of ${w.limit:.6g} ({w.period})" for w in over))
        err = RateLimitError(f"No deployments available - crossed budget for {group!r}: {detail}", model=group,
                             code="no_deployments_available")
        err.retry_after = max(0.0, min(w.resets_at for w in over) - now) if over else None
        err.crossed_budget = True
        return err


def stream_cost(dep: Any, usage: Any) -> float | None:
    """A finished stream's cost on ``dep`` (its own prices first, then the table)."""
    from ..cost import response_cost
    from ..exceptions import BadRequestError
    from ..providers.registry import resolve

    try:
        provider, model = resolve(dep.model, dep.litellm_params.get("custom_llm_provider"))
    except BadRequestError:
        return None
    try:
        return response_cost(model, provider, usage, dep.prices)
    except Exception:  # noqa: BLE001 - an unpriced model costs nothing here
        return None
