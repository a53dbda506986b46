"""Mock calls: test code that calls llmrelay without any server, as LiteLLM's ``mock_*`` do.

``mock_response=``

* a string → a response with that content (``n`` choices for ``n=``); with ``stream=True``
  streamed in small pieces through the real stream state machine;
* a ``ModelResponse`` → returned as is (streamed, choice by choice, with ``stream=True``);
* a dict → a ``ModelResponse`` built from it (``chat.completion`` shape);
* an llmrelay exception (instance or class), or its name (``"litellm.RateLimitError"``,
  ``"llmrelay.RateLimitError"``, ``"RateLimitError"``) → raised;
* any other exception → mapped as a real upstream error would be: by its ``status_code``
  attribute (500 without one), and to ``ContextWindowExceededError`` /
  ``ContentPolicyViolationError`` when its message reads like one — so retries and fallbacks
  react to mocks exactly as to real errors. Its ``text`` attribute, when it has one, is the
  message, and its ``llm_provider`` attribute the provider (as in LiteLLM);
* ``"Exception: content_filter_policy…"`` → ``ContentPolicyViolationError`` (400), LiteLLM's
  way to test content-filter handling; ``"Exception: mock_streaming_error"`` → a
  ``ServiceUnavailableError`` (529, "overloaded", as llmrelay maps a real 529), raised from the
  stream's first read when streaming.

``mock_tool_calls=[...]`` answers with those tool calls; ``mock_timeout=True`` raises
``Timeout`` after the call's timeout; ``mock_delay=`` seconds are waited before answering.
"""

from __future__ import annotations

import re
import time
from typing import Any

from . import exceptions
from .exceptions import BadRequestError, LLMRelayError, Timeout, exception_for_status
from .providers.base import Call, error_class_for_message
from .types import ModelResponse, new_completion_id

__all__ = ["MOCK_KWARGS", "is_mocked", "mock_wait", "mock_completion", "mocked_error", "split_for_stream"]

#: The call keyword arguments that make or shape a mock call.
MOCK_KWARGS = ("mock_response", "mock_tool_calls", "mock_timeout", "mock_delay")

#: LiteLLM's mock strings that raise: a content-filter rejection, an error from inside a stream.
CONTENT_FILTER_MOCK = "Exception: content_filter_policy"
STREAMING_ERROR_MOCK = "Exception: mock_streaming_error"

_PIECE = re.compile(r"\s*\S+|\s+")
_EXCEPTION_NAME = re.compile(r"^(?:(?:litellm|llmrelay)(?:\.exceptions)?\.)?([A-Z][A-Za-z]+)$")


def split_for_stream(text: str) -> list[str]:
    """Word-sized pieces whose concatenation is ``text`` exactly."""
    return _PIECE.findall(text) or [""]


def is_mocked(kwargs: dict[str, Any]) -> bool:
    """Whether these call arguments ask for a mock answer instead of a real call."""
    return (
        kwargs.get("mock_response") is not None
        or kwargs.get("mock_tool_calls") is not None
        or bool(kwargs.get("mock_timeout"))
    )


def mock_wait(kwargs: dict[str, Any], timeout: float | None) -> float:
    """Seconds a mock call waits before answering: the call's timeout for ``mock_timeout``,
    else ``mock_delay``."""
    if kwargs.get("mock_timeout"):
        return timeout or 0.0
    delay = kwargs.get("mock_delay")
    if delay is None:
        return 0.0
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise BadRequestError(f"mock_delay must be a non-negative number of seconds, got {delay!r}")
    return float(delay)


def mocked_error(mock: Any, provider: str | None = None, model: str | None = None) -> BaseException | None:
    """The exception ``mock_response=mock`` raises, or None when it is not an error."""
    if (isinstance(mock, LLMRelayError) and not isinstance(mock, exceptions.MockException)) or (
            isinstance(mock, BaseException) and not isinstance(mock, Exception)):
        return mock
    if isinstance(mock, Exception):
        status = getattr(mock, "status_code", None)
        if isinstance(status, bool) or not isinstance(status, int):
            status = 500
        message = getattr(mock, "text", None)
        if not isinstance(message, str) or not message:
            message = getattr(mock, "message", None)
        if not isinstance(message, str) or not message:
            message = str(mock) or type(mock).__name__
        named = getattr(mock, "llm_provider", None)
        if isinstance(named, str) and named:
            provider = named
        # The wording decides first (LiteLLM maps a mock's message whatever its status), then the status.
        cls = error_class_for_message(400, message)
        if cls is BadRequestError:
            cls = exception_for_status(status)
        error = cls(message, status_code=status, llm_provider=provider, model=model)
        error.__cause__ = mock
        return error
    if isinstance(mock, type) and issubclass(mock, BaseException):
        return _instantiate(mock, provider, model)
    if isinstance(mock, str):
        if mock.startswith(CONTENT_FILTER_MOCK):
            return exceptions.ContentPolicyViolationError(mock, status_code=400, llm_provider=provider, model=model,
                                                          litellm_debug_info=f"mock_response={mock!r}")
        if mock.startswith(STREAMING_ERROR_MOCK):
            return exceptions.ServiceUnavailableError("This is a mock error raised mid-stream", status_code=529,
                                                      llm_provider=provider, model=model)
        match = _EXCEPTION_NAME.match(mock.strip())
        if match:
            cls = getattr(exceptions, match.group(1), None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                return _instantiate(cls, provider, model)
    return None


def _instantiate(cls: type[BaseException], provider: str | None, model: str | None) -> BaseException:
    if issubclass(cls, exceptions.APIError):
        return cls(f"mock_response raised {cls.__name__}", llm_provider=provider, model=model)
    return cls(f"mock_response raised {cls.__name__}")


def mock_completion(call: Call, kwargs: dict[str, Any], timeout: float | None = None) -> Any:
    """The response (or stream) of a mock call (after :func:`mock_wait` seconds)."""
    if kwargs.get("mock_timeout"):
        raise Timeout(f"mock_timeout: no answer within the call's timeout ({timeout}s)",
                      llm_provider=call.provider, model=call.user_model)
    mock = kwargs.get("mock_response")
    error = mocked_error(mock, call.provider, call.user_model)
    if error is not None:
        if call.stream and isinstance(mock, str) and mock.startswith(STREAMING_ERROR_MOCK):
            from .main import _wrap_stream

            return _wrap_stream(call, _raising(error), {"custom_llm_provider": call.provider, "mock": True})
        raise error
    tool_calls = kwargs.get("mock_tool_calls")
    if tool_calls is not None and not (isinstance(tool_calls, list) and all(isinstance(t, dict) for t in tool_calls)):
        raise BadRequestError("mock_tool_calls must be a list of tool call dicts", model=call.user_model)
    if isinstance(mock, ModelResponse):
        response = mock
    elif isinstance(mock, dict):
        data = dict(mock)
        data.setdefault("model", call.user_model)
        response = ModelResponse(**data)
    elif isinstance(mock, str) or (mock is None and tool_calls is not None):
        response = _text_response(call, mock, tool_calls)
    else:
        raise BadRequestError(
            f"mock_response must be a string, a dict, a ModelResponse, an exception or an exception name; "
            f"got {type(mock).__name__}",
            model=call.user_model,
        )
    if call.stream:
        from .main import _wrap_stream  # the same stream (and prices) as a real call's

        return _wrap_stream(call, response_chunks(response), {"custom_llm_provider": call.provider, "mock": True})
    if isinstance(mock, ModelResponse):
        return mock
    from .main import _call_cost

    response._hidden_params = {"custom_llm_provider": call.provider, "mock": True,
                               "response_cost": _call_cost(call, response.usage)}
    response._response_ms = 0.0
    return response


def _raising(error: BaseException) -> Any:
    """A chunk source whose first read raises ``error``."""
    raise error
    yield  # pragma: no cover - makes this a generator


def _text_response(call: Call, text: str | None, tool_calls: list[dict] | None) -> ModelResponse:
    from .tokens import completion_text, counted_usage

    n = call.params.get("n") or 1
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {"id": tc.get("id") or "call_" + new_completion_id()[9:33], "type": tc.get("type") or "function",
             "function": dict(tc.get("function") or {})}
            for tc in tool_calls
        ]
    finish = "tool_calls" if tool_calls else "stop"
    return ModelResponse(
        id=new_completion_id(),
        created=int(time.time()),
        model=call.user_model,
        choices=[{"index": i, "message": dict(message), "finish_reason": finish} for i in range(n)],
        usage=counted_usage(call.user_model, call.messages, n * completion_text([message])),
    )


def response_chunks(response: ModelResponse) -> list[dict[str, Any]]:
    """A whole response as the chunk dicts a server would stream: each choice's reasoning,
    content (word by word) and tool calls, then its finish reason; the usage last."""
    head = {"id": response.id, "created": response.created, "model": response.model}
    chunks: list[dict[str, Any]] = []

    def add(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
        chunks.append({**head, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})

    for choice in response.choices:
        message = choice.message
        index = choice.index or 0
        if message.reasoning_content:
            add(index, {"reasoning_content": message.reasoning_content})
        if message.content:
            for piece in split_for_stream(message.content):
                add(index, {"content": piece})
        for position, call in enumerate(message.tool_calls or ()):
            function = call.function
            add(index, {"tool_calls": [{
                "index": position, "id": call.id, "type": call.type or "function",
                "function": {"name": function.name if function else None,
                             "arguments": (function.arguments if function else None) or ""},
            }]})
        add(index, {}, choice.finish_reason or ("tool_calls" if message.tool_calls else "stop"))
    if response.usage is not None:
        chunks.append({**head, "choices": [], "usage": response.usage.model_dump(exclude_unset=True)})
    return chunks
