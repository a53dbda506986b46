"""Which failures are retried, how long to wait, and which fallback list applies."""

from __future__ import annotations

import random
from typing import Any

from ..exceptions import (
    APIConnectionError,
    APIError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    LLMRelayError,
    Timeout,
)

__all__ = ["retryable", "counts_against_deployment", "backoff", "fallback_kind", "MAX_RETRY_AFTER"]

#: Longest Retry-After the router will honour by waiting (seconds).
MAX_RETRY_AFTER = 60.0


def retryable(exc: BaseException) -> bool:
    """429, 408, 5xx, connection errors and timeouts; never 400/401/403/404/422."""
    if isinstance(exc, (APIConnectionError, Timeout)):
        return True
    if isinstance(exc, APIError):
        status = exc.status_code
        return status == 429 or status == 408 or status >= 500
    return False


def counts_against_deployment(exc: BaseException) -> bool:
    """Failures that say something about the deployment (cooldown), not about the request.

    Retryable failures plus 401/403/404 (a wrong key, region or model name in the config).
    """
    if retryable(exc):
        return True
    return isinstance(exc, APIError) and exc.status_code in (401, 403, 404)


def backoff(attempt: int, exc: BaseException | None, minimum: float = 0.0) -> float:
    """Exponential backoff with jitter (0.5 s, 1 s, 2 s … ×0.75–1.25, ≤ 8 s); Retry-After wins."""
    after = getattr(exc, "retry_after", None)
    if after is not None:
        return max(min(after, MAX_RETRY_AFTER), minimum)
    base = min(0.5 * (2**attempt), 8.0)
    return max(base * (0.75 + random.random() * 0.5), minimum)


def fallback_kind(exc: BaseException) -> str | None:
    """Which fallback list applies to a group's final error (None: no fallback at all).

    Context-window and content-policy errors use their own lists (then the generic one);
    other 400/422 errors are the caller's mistake and are raised as they are.
    """
    if isinstance(exc, ContextWindowExceededError):
        return "context_window"
    if isinstance(exc, ContentPolicyViolationError):
        return "content_policy"
    if isinstance(exc, BadRequestError):
        return None
    if isinstance(exc, APIError):
        return None if exc.status_code == 422 else "generic"
    if isinstance(exc, LLMRelayError):
        return "generic"
    return None


def attempt_record(group: str, deployment: Any, exc: BaseException | None, elapsed: float) -> dict[str, Any]:
    """One entry of ``exc.attempts``."""
    record: dict[str, Any] = {
        "model_group": group,
        "deployment_id": getattr(deployment, "id", None),
        "model": getattr(deployment, "model", None),
        "api_base": getattr(deployment, "api_base", None),
        "elapsed": round(elapsed, 4),
    }
    if exc is not None:
        record["error"] = type(exc).__name__
        record["status_code"] = getattr(exc, "status_code", None)
        record["message"] = getattr(exc, "message", None) or str(exc)
    return record
