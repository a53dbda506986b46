"""``mock_response=``: test code that calls llmrelay without any server.

* a string → a response with that content; with ``stream=True`` streamed in small pieces
  through the real stream state machine;
* an exception instance → raised;
* an exception class name (``"litellm.RateLimitError"``, ``"llmrelay.RateLimitError"`` or
  just ``"RateLimitError"``) → that exception raised;
* a dict → a ``ModelResponse`` built from it (``chat.completion`` shape).
"""

from __future__ import annotations

import re
import time
from typing import Any

from . import exceptions
from .exceptions import BadRequestError
from .providers.base import Call
from .streaming import CustomStreamWrapper
from .types import ModelResponse, new_completion_id

__all__ = ["mock_completion", "split_for_stream"]

_PIECE = re.compile(r"\s*\S+|\s+")
_EXCEPTION_NAME = re.compile(r"^(?:(?:litellm|llmrelay)(?:\.exceptions)?\.)?([A-Z][A-Za-z]+)$")


def split_for_stream(text: str) -> list[str]:
    """Word-sized pieces whose concatenation is ``text`` exactly."""
    return _PIECE.findall(text) or [""]


def _exception_for(mock: Any, call: Call) -> BaseException | None:
    if isinstance(mock, BaseException):
        return mock
    if isinstance(mock, type) and issubclass(mock, BaseException):
        return _instantiate(mock, call)
    if isinstance(mock, str):
        match = _EXCEPTION_NAME.match(mock.strip())
        if match:
            cls = getattr(exceptions, match.group(1), None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                return _instantiate(cls, call)
    return None


def _instantiate(cls: type[BaseException], call: Call) -> BaseException:
    if issubclass(cls, exceptions.APIError):
        return cls(
            f"mock_response raised {cls.__name__}",
            llm_provider=call.provider,
            model=call.user_model,
        )
    return cls(f"mock_response raised {cls.__name__}")


def mock_completion(call: Call, mock: Any) -> ModelResponse | CustomStreamWrapper:
    """The response (or stream) ``completion(..., mock_response=mock)`` returns."""
    error = _exception_for(mock, call)
    if error is not None:
        raise error
    if isinstance(mock, dict):
        data = dict(mock)
        data.setdefault("model", call.user_model)
        return ModelResponse(**data)
    if not isinstance(mock, str):
        raise BadRequestError(
            f"mock_response must be a string, a dict, an exception or an exception name; "
            f"got {type(mock).__name__}",
            model=call.user_model,
        )
    response_id = new_completion_id()
    created = int(time.time())
    if call.stream:
        chunks = [
            {
                "id": response_id,
                "created": created,
                "choices": [{"index": 0, "delta": {"content": piece}}],
            }
            for piece in split_for_stream(mock)
        ]
        chunks.append({"id": response_id, "created": created, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        stream = CustomStreamWrapper(
            chunks,
            model=call.user_model,
            custom_llm_provider=call.provider,
            stream_options=call.params.get("stream_options"),
            messages=call.messages,
            hidden_params={"custom_llm_provider": call.provider, "mock": True},
        )
        if call.extra:
            from .cost import call_prices

            stream._hidden_params.prices = call_prices(call.extra)
        return stream
    from .tokens import counted_usage

    response = ModelResponse(
        id=response_id,
        created=created,
        model=call.user_model,
        choices=[{"index": 0, "message": {"role": "assistant", "content": mock}, "finish_reason": "stop"}],
        usage=counted_usage(call.user_model, call.messages, mock),
    )
    from .cost import call_prices, response_cost

    response._hidden_params = {
        "custom_llm_provider": call.provider,
        "mock": True,
        "response_cost": response_cost(call.model, call.provider, response.usage, call_prices(call.extra)),
    }
    return response
