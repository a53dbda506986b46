"""Which failures are retried, how long to wait, and which fallback list applies.

Retrying follows the library's own policy (:func:`llmrelay.main.retryable` and
:func:`~llmrelay.main.retry_delay`), so a router retry and a ``num_retries`` retry agree.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import (
    APIError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    LLMRelayError,
)
from ..main import retry_delay, retryable
from ..retry_after import DEFAULT_MAX_RETRY_AFTER

__all__ = ["retryable", "counts_against_deployment", "backoff", "fallback_kind", "attempt_record"]


def counts_against_deployment(exc: BaseException) -> bool:
    """Failures that say something about the deployment (cooldown), not about the request.

    Retryable failures plus 401/403/404 (a wrong key, region or model name in the config).
    """
    if retryable(exc):
        return True
    return isinstance(exc, APIError) and exc.status_code in (401, 403, 404)


def backoff(attempt: int, exc: BaseException | None, minimum: float = 0.0,
            cap: float = DEFAULT_MAX_RETRY_AFTER) -> float:
    """The library's retry delay (:func:`llmrelay.main.retry_delay`, a Retry-After at most
    ``cap``), at least ``minimum``."""
    return max(retry_delay(exc, attempt, cap), minimum)


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
