"""The exception hierarchy.

Every failure a caller can see is one of these classes. Each carries ``status_code``,
``message``, ``llm_provider`` and ``model``; when an HTTP response was involved also its
``headers`` and ``body`` and, if the upstream sent ``Retry-After``, ``retry_after`` in seconds.
Errors raised from inside a stream carry ``generated_content``: the text streamed so far.

The hierarchy follows the official OpenAI SDK's names so that ``except llmrelay.RateLimitError``
reads the same as ``except openai.RateLimitError``.
"""

from __future__ import annotations

from typing import Any, Mapping

from .retry_after import parse_retry_after

__all__ = [
    "LLMRelayError",
    "APIError",
    "APIConnectionError",
    "Timeout",
    "BadRequestError",
    "UnsupportedParamsError",
    "ContextWindowExceededError",
    "ContentPolicyViolationError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "BadGatewayError",
    "ServiceUnavailableError",
    "InvalidRequestError",
    "APIResponseValidationError",
    "BudgetExceededError",
    "RouterRateLimitError",
    "exception_for_status",
    "parse_retry_after",
]


class LLMRelayError(Exception):
    """Base of every exception llmrelay raises."""


class APIError(LLMRelayError):
    """An error from (or about) the upstream API; base of the HTTP-status classes."""

    status_code: int = 500

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        llm_provider: str | None = None,
        model: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        generated_content: str | None = None,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.llm_provider = llm_provider
        self.model = model
        self.headers: dict[str, str] = dict(headers) if headers else {}
        self.body = body
        self.generated_content = generated_content
        self.code = code
        self.param = param
        self.type = error_type
        self.retry_after: float | None = parse_retry_after(self.headers)
        #: Deployments tried before this error was raised (filled by the router).
        self.attempts: list[dict[str, Any]] = []

    def __str__(self) -> str:
        where = "/".join(p for p in (self.llm_provider, self.model) if p)
        prefix = f"{type(self).__name__}"
        if where:
            prefix += f" [{where}]"
        return f"{prefix}: {self.message}"

    def __reduce__(self):  # keep pickling (multiprocessing, the gateway's workers) working
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type, message: str, state: dict) -> APIError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, message)
    obj.__dict__.update(state)
    return obj


class APIConnectionError(APIError):
    """The upstream could not be reached, or the connection broke (also mid-stream)."""

    status_code = 500


class Timeout(APIError):
    """The upstream did not answer in time (connect, first byte, or between chunks)."""

    status_code = 408


class BadRequestError(APIError):
    """400: the request is invalid (also raised before any network call for bad input)."""

    status_code = 400


class UnsupportedParamsError(BadRequestError):
    """A parameter the provider does not support was given and ``drop_params`` is off."""


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus max tokens) does not fit the model's context window."""


class ContentPolicyViolationError(BadRequestError):
    """The request or the answer was refused by a content filter."""


class AuthenticationError(APIError):
    status_code = 401


class PermissionDeniedError(APIError):
    status_code = 403


class NotFoundError(APIError):
    status_code = 404


class UnprocessableEntityError(APIError):
    status_code = 422


class RateLimitError(APIError):
    status_code = 429


class InternalServerError(APIError):
    status_code = 500


class BadGatewayError(APIError):
    status_code = 502


class ServiceUnavailableError(APIError):
    status_code = 503


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: Timeout,
    413: BadRequestError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    500: InternalServerError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
    504: Timeout,
    529: ServiceUnavailableError,
}


def exception_for_status(status: int) -> type[APIError]:
    """The exception class for an HTTP status code."""
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    if 400 <= status < 500:
        return BadRequestError
    return APIError


# LiteLLM's remaining public exception names, for code written against LiteLLM.
class InvalidRequestError(BadRequestError):
    """LiteLLM's older name for a 400 error (kept for code that still catches it)."""


class APIResponseValidationError(APIError):
    """The upstream answered, but not in the shape its API promises."""

    status_code = 500


class BudgetExceededError(LLMRelayError):
    """A spend limit was reached (``current_cost`` > ``max_budget``)."""

    def __init__(self, current_cost: float, max_budget: float, message: str | None = None) -> None:
        self.current_cost = current_cost
        self.max_budget = max_budget
        self.message = message or f"Budget has been exceeded! Current cost: {current_cost}, Max budget: {max_budget}"
        super().__init__(self.message)


class RouterRateLimitError(LLMRelayError, ValueError):
    """Every deployment of a router model group is cooling down."""

    def __init__(
        self,
        model: str,
        cooldown_time: float,
        enable_pre_call_checks: bool = False,
        cooldown_list: list | None = None,
    ) -> None:
        self.model = model
        self.cooldown_time = cooldown_time
        self.enable_pre_call_checks = enable_pre_call_checks
        self.cooldown_list = list(cooldown_list or [])
        self.message = (
            f"No deployments available for selected model, Try again in {cooldown_time} seconds. "
            f"Passed model={model}. pre-call-checks={enable_pre_call_checks}, "
            f"cooldown_list={self.cooldown_list}"
        )
        super().__init__(self.message)
