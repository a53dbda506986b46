"""The exception hierarchy.

Every failure a caller can see is one of these classes. Each carries ``status_code``,
``message``, ``llm_provider`` and ``model``; when an HTTP response was involved also its
``headers`` and ``body`` and, if the upstream sent ``Retry-After``, ``retry_after`` in seconds.
Errors raised from inside a stream carry ``generated_content``: the text streamed so far.

The hierarchy follows the official OpenAI SDK's names so that ``except llmrelay.RateLimitError``
reads the same as ``except openai.RateLimitError`` — and, as with LiteLLM, an llmrelay error *is*
an instance of the ``openai`` package's matching class (``except openai.RateLimitError`` catches
it) whenever ``openai`` has been imported in the process. ``import llmrelay`` never imports
``openai``: the link is made lazily, when an exception is created with ``openai`` already imported
(see :func:`_link_openai`); nobody can name ``openai.RateLimitError`` before importing it.

Constructors also take LiteLLM's arguments (``llm_provider``, ``model``, ``response``,
``litellm_debug_info``, ``max_retries``, ``num_retries``, positionally in LiteLLM's order too),
and ``.code`` / ``.type`` default as LiteLLM's do (``"429"`` / ``"throttling_error"``).
"""

from __future__ import annotations

import sys
import threading
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
    "JSONSchemaValidationError",
    "BudgetExceededError",
    "RouterRateLimitError",
    "RejectedRequestError",
    "MockException",
    "MidStreamFallbackError",
    "LITELLM_EXCEPTION_TYPES",
    "exception_for_status",
    "parse_retry_after",
]


class LLMRelayError(Exception):
    """Base of every exception llmrelay raises."""


#: LiteLLM's positional argument order after ``message`` (most classes).
_PROVIDER_FIRST = ("llm_provider", "model", "response", "litellm_debug_info", "max_retries", "num_retries")
#: ... and for the classes whose LiteLLM constructor takes ``model`` first.
_MODEL_FIRST = ("model", "llm_provider", "response", "litellm_debug_info", "max_retries", "num_retries")


#: Further keyword arguments some of LiteLLM's constructors take (kept as attributes).
_LITELLM_EXTRAS = frozenset({"provider_specific_fields", "request_data"})


class APIError(LLMRelayError):
    """An error from (or about) the upstream API; base of the HTTP-status classes."""

    status_code: int = 500
    #: LiteLLM's ``.type`` when the upstream gave none.
    _default_type: str | None = None
    #: The ``openai`` class an instance also belongs to (when ``openai`` is imported).
    _openai_name: str | None = "APIError"
    _positional: tuple[str, ...] = _PROVIDER_FIRST

    def __new__(cls, *args: Any, **kwargs: Any) -> "APIError":
        if not _OPENAI_LINKED and "openai" in sys.modules:
            _link_openai()
        return Exception.__new__(cls, *args)

    def __init__(
        self,
        message: str | None = None,
        *args: Any,
        status_code: int | None = None,
        llm_provider: str | None = None,
        model: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        generated_content: str | None = None,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        response: Any = None,
        request: Any = None,
        litellm_debug_info: str | None = None,
        max_retries: int | None = None,
        num_retries: int | None = None,
        **extra: Any,
    ) -> None:
        if isinstance(message, int) and not isinstance(message, bool) and args:
            # LiteLLM's APIError(status_code, message, llm_provider, model, request)
            status_code, message, args = message, args[0], args[1:]
            given = dict(zip(("llm_provider", "model", "request", "litellm_debug_info", "max_retries",
                              "num_retries"), args))
        else:
            given = dict(zip(self._positional, args))
        llm_provider = given.get("llm_provider", llm_provider)
        model = given.get("model", model)
        response = given.get("response", response)
        request = given.get("request", request)
        litellm_debug_info = given.get("litellm_debug_info", litellm_debug_info)
        max_retries = given.get("max_retries", max_retries)
        num_retries = given.get("num_retries", num_retries)
        if response is not None:
            if status_code is None and type(self).status_code == APIError.status_code:
                status = getattr(response, "status_code", None)
                if isinstance(status, int):
                    status_code = status
            if headers is None:
                headers = getattr(response, "headers", None)
        message = "" if message is None else str(message)
        Exception.__init__(self, message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.llm_provider = llm_provider
        self.model = model
        self.headers: dict[str, str] = dict(headers) if headers else {}
        self.body = body
        self.generated_content = generated_content
        self.code = code if code is not None else str(self.status_code)
        self.param = param
        self.type = error_type if error_type is not None else self._default_type
        self.retry_after: float | None = parse_retry_after(self.headers)
        self.litellm_debug_info = litellm_debug_info
        self.max_retries = max_retries
        self.num_retries = num_retries
        self._response = response
        self._request = request
        #: Deployments tried before this error was raised (filled by the router).
        self.attempts: list[dict[str, Any]] = []
        unknown = set(extra) - _LITELLM_EXTRAS
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments: {sorted(unknown)}")
        for key, value in extra.items():
            setattr(self, key, value)

    # openai's APIStatusError / APIError attributes, built only when read -----------------
    @property
    def response(self) -> Any:
        """The HTTP response (an ``httpx.Response`` synthesised from status and headers when
        the error was not built from one; None if ``httpx`` is not installed)."""
        if self._response is None:
            httpx = _httpx()
            if httpx is not None:
                self._response = httpx.Response(self.status_code, headers=self.headers, request=self.request)
        return self._response

    @response.setter
    def response(self, value: Any) -> None:
        self._response = value

    @property
    def request(self) -> Any:
        if self._request is None:
            request = getattr(self._response, "_request", None)
            if request is None:
                httpx = _httpx()
                if httpx is not None:
                    request = httpx.Request("POST", "http://llmrelay.invalid/v1/chat/completions")
            self._request = request
        return self._request

    @request.setter
    def request(self, value: Any) -> None:
        self._request = value

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id") or self.headers.get("request-id")

    def __str__(self) -> str:
        where = "/".join(p for p in (self.llm_provider, self.model) if p)
        prefix = f"{type(self).__name__}"
        if where:
            prefix += f" [{where}]"
        text = f"{prefix}: {self.message}"
        if self.num_retries:  # LiteLLM's suffix once retries ran out
            text += f" LiteLLM Retried: {self.num_retries} times"
        if self.max_retries:
            text += f", LiteLLM Max Retries: {self.max_retries}"
        return text

    def __reduce__(self):  # keep pickling (multiprocessing, the gateway's workers) working
        state = dict(self.__dict__)
        state["_response"] = state["_request"] = None  # httpx objects do not travel
        return (_rebuild, (type(self), self.message, state))


def _rebuild(cls: type, message: str, state: dict) -> APIError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, message)
    obj.__dict__.update(state)
    return obj


# ============================================================ the openai classes, resolved lazily
_OPENAI_LINKED = False
_LINK_LOCK = threading.Lock()


def _link_openai() -> None:
    """Once ``openai`` is imported: make each class also a subclass of openai's matching one.

    Done by extending the classes' ``__bases__`` (so ``type(exc) is llmrelay.RateLimitError``
    still holds, pickling is unchanged, and exceptions created earlier are covered too), the
    first time an exception is created — or llmrelay imported — with ``openai`` in
    ``sys.modules``. Until then this costs one dict lookup per exception.
    """
    global _OPENAI_LINKED
    openai = sys.modules.get("openai")
    if openai is None:
        return
    with _LINK_LOCK:
        if _OPENAI_LINKED:
            return
        targets = []
        for cls in (APIError, *_all_subclasses(APIError)):
            name = cls.__dict__.get("_openai_name")
            if name is None or cls.__module__ != __name__:
                continue
            base = getattr(openai, name, None)
            if not (isinstance(base, type) and issubclass(base, Exception)):
                if name == "APIError":
                    return  # openai half-imported: try again next time
                continue  # a class this openai does not have
            targets.append((cls, base))
        for cls, base in targets:
            if not issubclass(cls, base):
                try:
                    cls.__bases__ = (*cls.__bases__, base)
                except TypeError:  # a layout some future openai makes incompatible: stay plain
                    pass
        _OPENAI_LINKED = True


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        return None
    return httpx


class APIConnectionError(APIError):
    """The upstream could not be reached, or the connection broke (also mid-stream)."""

    status_code = 500
    _openai_name = "APIConnectionError"
    _positional = ("llm_provider", "model", "request", "litellm_debug_info", "max_retries", "num_retries")


class Timeout(APIError):
    """The upstream did not answer in time (connect, first byte, or between chunks)."""

    status_code = 408
    _openai_name = "APITimeoutError"
    _positional = ("model", "llm_provider", "litellm_debug_info", "max_retries", "num_retries", "headers")

    def __init__(self, message: str | None = None, *args: Any, exception_status_code: int | None = None,
                 **kwargs: Any) -> None:
        if len(args) > 5:  # LiteLLM's ``headers`` positional
            kwargs.setdefault("headers", args[5])
            args = args[:5]
        if exception_status_code is not None:
            kwargs.setdefault("status_code", exception_status_code)
        super().__init__(message, *args, **kwargs)


class BadRequestError(APIError):
    """400: the request is invalid (also raised before any network call for bad input)."""

    status_code = 400
    _openai_name = "BadRequestError"
    _positional = _MODEL_FIRST


class UnsupportedParamsError(BadRequestError):
    """A parameter the provider does not support was given and ``drop_params`` is off."""

    _positional = _PROVIDER_FIRST


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus max tokens) does not fit the model's context window."""


class ContentPolicyViolationError(BadRequestError):
    """The request or the answer was refused by a content filter."""


class AuthenticationError(APIError):
    status_code = 401
    _openai_name = "AuthenticationError"


class PermissionDeniedError(APIError):
    status_code = 403
    _openai_name = "PermissionDeniedError"


class NotFoundError(APIError):
    status_code = 404
    _openai_name = "NotFoundError"
    _positional = _MODEL_FIRST


class UnprocessableEntityError(APIError):
    status_code = 422
    _openai_name = "UnprocessableEntityError"
    _positional = _MODEL_FIRST


class RateLimitError(APIError):
    status_code = 429
    _default_type = "throttling_error"
    _openai_name = "RateLimitError"


class InternalServerError(APIError):
    status_code = 500
    _openai_name = "InternalServerError"


class BadGatewayError(APIError):
    status_code = 502
    _openai_name = "APIStatusError"


class ServiceUnavailableError(APIError):
    status_code = 503
    _openai_name = "APIStatusError"


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
    _openai_name = "APIResponseValidationError"


class JSONSchemaValidationError(APIResponseValidationError):
    """The model's answer does not match the ``response_format`` JSON schema (LiteLLM's
    client-side schema check); ``raw_response`` holds the answer, ``schema`` the schema."""

    def __init__(self, model: str, llm_provider: str, raw_response: str, schema: str) -> None:
        self.raw_response = raw_response
        self.schema = schema
        message = (
            f"litellm.JSONSchemaValidationError: model={model}, returned an invalid response={raw_response}, "
            f"for schema={schema}.\nAccess raw response with `e.raw_response`"
        )
        super().__init__(message, model=model, llm_provider=llm_provider)


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


class RejectedRequestError(BadRequestError):
    """A gateway hook refused the request (LiteLLM's; ``request_data`` is the request)."""

    _positional = ("model", "llm_provider", "request_data", "litellm_debug_info", "max_retries", "num_retries")

    def __init__(self, message: str | None = None, *args: Any, request_data: dict | None = None,
                 **kwargs: Any) -> None:
        if len(args) >= 3:  # LiteLLM's (message, model, llm_provider, request_data, ...)
            request_data, args = args[2], args[:2] + args[3:]
        super().__init__(message, *args, **kwargs)
        self.request_data = request_data if request_data is not None else {}


class MockException(APIError):
    """LiteLLM's exception for a mocked error: ``MockException(status_code, message,
    llm_provider, model)``; its class is the status's own only when raised through
    ``mock_response`` (which maps it as an upstream error)."""

    def __init__(self, status_code: int | None = None, message: str | None = None, llm_provider: str | None = None,
                 model: str | None = None, request: Any = None, **kwargs: Any) -> None:
        super().__init__(message, status_code=status_code if status_code is not None else 500,
                         llm_provider=llm_provider, model=model, request=request, **kwargs)


class MidStreamFallbackError(ServiceUnavailableError):
    """LiteLLM's error for a stream that failed after its first chunk (``generated_content``
    holds the text so far; ``original_exception`` the cause)."""

    def __init__(self, message: str | None = None, model: str | None = None, llm_provider: str | None = None,
                 original_exception: BaseException | None = None, generated_content: str = "",
                 is_pre_first_chunk: bool = False, **kwargs: Any) -> None:
        super().__init__(message, model=model, llm_provider=llm_provider, generated_content=generated_content,
                         **kwargs)
        self.original_exception = original_exception
        self.is_pre_first_chunk = is_pre_first_chunk


#: LiteLLM's list of its exception classes (``except tuple(LITELLM_EXCEPTION_TYPES)``).
LITELLM_EXCEPTION_TYPES: list[type[Exception]] = [
    AuthenticationError, NotFoundError, BadRequestError, UnprocessableEntityError, UnsupportedParamsError, Timeout,
    PermissionDeniedError, RateLimitError, ContextWindowExceededError, RejectedRequestError,
    ContentPolicyViolationError, InternalServerError, ServiceUnavailableError, BadGatewayError, APIError,
    APIConnectionError, APIResponseValidationError, JSONSchemaValidationError, BudgetExceededError,
]


_link_openai()  # openai imported before llmrelay: link now (no import happens here)
