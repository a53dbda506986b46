"""Retry-After, read defensively: the one parser for the library, the router and the gateway.

An upstream's ``Retry-After`` (delay-seconds or an HTTP-date, RFC 9110 §10.2.3) or
``retry-after-ms`` header is untrusted input: ``inf``, ``NaN``, negative numbers, dates in the
past or far future, and garbage all occur. Everything here returns a finite, non-negative
number of seconds or ``None`` (no usable value), never raises, and never returns more than
:data:`MAX_SECONDS`; callers cap further with their own, configurable maximum (the router's
``max_retry_after``, default :data:`DEFAULT_MAX_RETRY_AFTER`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_MAX_RETRY_AFTER", "MAX_SECONDS", "retry_after_seconds", "parse_retry_after", "capped"]

#: Default cap on how long one Retry-After is honoured (cooldown, retry wait, what clients see).
DEFAULT_MAX_RETRY_AFTER = 60.0
#: Absolute sanity bound of the parser (one day); anything longer is clamped to it.
MAX_SECONDS = 86400.0


def _number(value: Any) -> float | None:
    """A finite, non-negative number from a number or a numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (bytes, str)):
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if len(text) > 64:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def _date(value: Any, now: float | None) -> float | None:
    """Seconds until an HTTP-date (0 if it is past), else None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value.strip()).timestamp()
    except Exception:  # noqa: BLE001 - any malformed date is "no value"
        return None
    return max(when - (time.time() if now is None else now), 0.0)


def retry_after_seconds(value: Any, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After value: a number, a delay-seconds string or an HTTP-date.

    Negative, non-finite or unparsable values give ``None``; a past date gives 0.
    """
    if value is None:
        return None
    seconds = _number(value)
    if seconds is None:
        seconds = _date(value, now)
    return None if seconds is None else min(seconds, MAX_SECONDS)


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` in response headers."""
    if not headers:
        return None
    ms = retry_after = None
    for key, value in headers.items():
        lower = key.lower() if isinstance(key, str) else key
        if lower == "retry-after-ms":
            ms = value
        elif lower == "retry-after":
            retry_after = value
    millis = _number(ms)
    if millis is not None:
        return min(millis / 1000.0, MAX_SECONDS)
    return retry_after_seconds(retry_after, now=now)


def capped(value: Any, cap: float = DEFAULT_MAX_RETRY_AFTER) -> float | None:
    """``value`` read defensively (see :func:`retry_after_seconds`), at most ``cap``."""
    seconds = retry_after_seconds(value)
    return None if seconds is None else min(seconds, cap)
