"""LiteLLM's ``completion_with_retries`` / ``acompletion_with_retries``.

As in LiteLLM: ``num_retries`` (default 3) is the number of attempts in all, any exception
is retried (the last one is raised), and ``retry_strategy`` is ``"constant_retry"`` (the next
attempt at once, the default) or ``"exponential_backoff_retry"`` (waits of 1, 2, 4, 8 and then
10 s). Each attempt is one ``completion`` call with its own retries off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

__all__ = ["completion_with_retries", "acompletion_with_retries"]

log = logging.getLogger("llmrelay")

_STRATEGIES = ("constant_retry", "exponential_backoff_retry")


def _plan(kwargs: dict[str, Any]) -> tuple[int, Callable[[int], float]]:
    """Pop the retry arguments: (attempts, seconds to wait after failed attempt n)."""
    attempts = kwargs.pop("num_retries", 3)
    strategy = kwargs.pop("retry_strategy", "constant_retry")
    if strategy not in _STRATEGIES:
        raise ValueError(f"retry_strategy must be one of {_STRATEGIES}, got {strategy!r}")
    kwargs["max_retries"] = 0
    kwargs["num_retries"] = 0
    if strategy == "exponential_backoff_retry":
        return max(1, int(attempts)), lambda n: min(10.0, 2.0 ** (n - 1))
    return max(1, int(attempts)), lambda n: 0.0


def completion_with_retries(*args: Any, **kwargs: Any) -> Any:
    """``completion(*args, **kwargs)``, attempted up to ``num_retries`` times (module docstring);
    ``original_function=`` calls another function the same way."""
    from .main import completion

    call = kwargs.pop("original_function", completion)
    attempts, wait = _plan(kwargs)
    for n in range(1, attempts + 1):
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if n == attempts:
                raise
            log.debug("completion_with_retries: attempt %d failed (%r); retrying", n, exc)
            time.sleep(wait(n))
    raise AssertionError("unreachable")  # pragma: no cover


async def acompletion_with_retries(*args: Any, **kwargs: Any) -> Any:
    """The async twin of :func:`completion_with_retries` (over ``acompletion``)."""
    from .main import acompletion

    call = kwargs.pop("original_function", acompletion)
    attempts, wait = _plan(kwargs)
    for n in range(1, attempts + 1):
        try:
            return await call(*args, **kwargs)
        except Exception as exc:
            if n == attempts:
                raise
            log.debug("acompletion_with_retries: attempt %d failed (%r); retrying", n, exc)
            await asyncio.sleep(wait(n))
    raise AssertionError("unreachable")  # pragma: no cover
