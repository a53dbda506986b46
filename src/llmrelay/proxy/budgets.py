"""Budget periods (``budget_duration``) and the budget checks, as pure functions.

Durations are LiteLLM's: a number and a unit — ``s``, ``m`` (minutes), ``h``, ``d``, ``w``,
``mo`` (calendar months, reset on the same day of the month, UTC) — or one of its words,
``hourly``, ``daily``, ``weekly``, ``monthly`` (30 days).
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timezone
from typing import Any

__all__ = ["parse_duration", "next_reset", "DurationError", "model_budget", "model_resets"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mo|s|m|h|d|w)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: LiteLLM's words for durations (its duration parser's aliases).
_WORDS = {"hourly": "1h", "daily": "24h", "weekly": "7d", "monthly": "30d"}


class DurationError(ValueError):
    """Not a duration like ``30s``, ``1h``, ``30d``, ``1mo``."""


def parse_duration(text: Any) -> tuple[float, str]:
    """``"30d"`` → ``(30, "d")`` (and LiteLLM's ``"daily"`` → ``(24, "h")``, ``"hourly"``,
    ``"weekly"``, ``"monthly"`` = 30 days); :class:`DurationError` for anything else."""
    if isinstance(text, str):
        text = _WORDS.get(text.strip().lower(), text)
    m = _DURATION.match(str(text)) if isinstance(text, str) else None
    if m is None:
        raise DurationError(f"invalid duration {text!r}: use a number and s, m, h, d, w or mo (e.g. 30s, 1h, 30d, 1mo)")
    return float(m.group(1)), m.group(2)


def next_reset(duration: str, now: float) -> float:
    """The Unix time one ``duration`` after ``now``."""
    amount, unit = parse_duration(duration)
    if unit != "mo":
        return now + amount * _SECONDS[unit]
    start = datetime.fromtimestamp(now, timezone.utc)
    months = start.month - 1 + int(amount)
    year, month = start.year + months // 12, months % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day).timestamp()


def model_budget(entry: Any) -> tuple[float | None, str | None]:
    """(limit in USD, period) of one ``model_max_budget`` entry: a number, or LiteLLM's
    ``{"budget_limit": 10, "time_period": "1d"}`` (``budget_duration`` is accepted for the period)."""
    if isinstance(entry, dict):
        limit = entry.get("budget_limit", entry.get("max_budget"))
        period = entry.get("time_period") or entry.get("budget_duration")
        return (float(limit) if limit is not None else None), (str(period) if period else None)
    return (float(entry) if entry is not None else None), None


def model_resets(per_model: Any, now: float) -> dict[str, float] | None:
    """model → the end of its first period, for the ``model_max_budget`` entries that have
    their own period (None if none has); :class:`DurationError` for a bad period."""
    if not isinstance(per_model, dict):
        return None
    out = {}
    for model, entry in per_model.items():
        period = model_budget(entry)[1]
        if period:
            out[str(model)] = next_reset(period, now)
    return out or None
