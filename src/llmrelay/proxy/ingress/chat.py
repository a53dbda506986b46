"""``/v1/chat/completions``: the canonical API itself, so the translation is the identity."""

from __future__ import annotations

from typing import Any

import orjson

from ...types import json_default
from . import CanonicalRequest, Ingress, IngressError, StreamEncoder

__all__ = ["ChatIngress", "ChatEncoder", "take_model", "take_stream"]

_dumps = orjson.dumps
_DONE_FRAME = b"data: [DONE]\n\n"


def take_model(data: dict[str, Any]) -> str:
    """Pop and check the required ``model`` string."""
    model = data.pop("model", None)
    if model is None:
        raise IngressError("Missing required parameter: 'model'.", param="model")
    if type(model) is not str:
        raise IngressError("'model' must be a string.", param="model")
    return model


def take_stream(data: dict[str, Any]) -> bool:
    """Pop and check the optional ``stream`` flag."""
    stream = data.pop("stream", None)
    if stream is None:
        return False
    if type(stream) is not bool:
        raise IngressError("'stream' must be true or false.", param="stream")
    return stream


class ChatEncoder(StreamEncoder):
    """Chunks as ``chat.completion.chunk`` SSE frames, ``model`` set to the client's name."""

    __slots__ = ("model",)

    def __init__(self, model: str) -> None:
        self.model = model

    def chunk(self, chunk: Any) -> bytes:
        chunk.model = self.model
        return b"data: " + _dumps(chunk, default=json_default) + b"\n\n"

    def end(self) -> bytes:
        return _DONE_FRAME


class ChatIngress(Ingress):
    """OpenAI chat completions, passed through as they are."""

    name = "chat"
    summary = "Create a chat completion (OpenAI-compatible; stream=true gives text/event-stream)"
    paths = frozenset({"/v1/chat/completions", "/chat/completions"})

    def parse(self, data: dict[str, Any]) -> CanonicalRequest:
        model = take_model(data)
        messages = data.pop("messages", None)
        if messages is None:
            raise IngressError("Missing required parameter: 'messages'.", param="messages")
        if type(messages) is not list:
            raise IngressError("'messages' must be an array of message objects.", param="messages")
        stream = take_stream(data)
        return CanonicalRequest(model, messages, stream, data)

    def response_body(self, result: Any, request: CanonicalRequest) -> bytes:
        result.model = request.model
        return _dumps(result, default=json_default)

    def encoder(self, request: CanonicalRequest) -> StreamEncoder:
        return ChatEncoder(request.model)
