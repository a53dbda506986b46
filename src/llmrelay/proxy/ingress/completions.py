"""``/v1/completions``: OpenAI's legacy text completions, translated to chat completions
(:mod:`llmrelay.translate.completions`); streams as ``text_completion`` chunks, then ``[DONE]``."""

from __future__ import annotations

from typing import Any

import orjson

from ...translate.completions import CompletionsRequestError, TextChunks, to_chat, to_text_completion
from . import CanonicalRequest, Ingress, IngressError, StreamEncoder
from .chat import take_model, take_stream

__all__ = ["CompletionsIngress"]

_dumps = orjson.dumps


class _Encoder(StreamEncoder):
    __slots__ = ("chunks",)

    def __init__(self, model: str, echo: str | None) -> None:
        self.chunks = TextChunks(model, echo)

    def chunk(self, chunk: Any) -> bytes:
        out = self.chunks.convert(chunk)
        return b"" if out is None else b"data: " + _dumps(out) + b"\n\n"

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"


class CompletionsIngress(Ingress):
    """OpenAI's legacy ``POST /v1/completions``."""

    name = "completions"
    summary = "OpenAI legacy text completions (translated to chat)"
    paths = frozenset({"/v1/completions", "/completions"})

    def parse(self, data: dict[str, Any]) -> CanonicalRequest:
        model = take_model(data)
        stream = take_stream(data)
        try:
            messages, params, echo = to_chat(data)
        except CompletionsRequestError as exc:
            raise IngressError(exc.message, param=exc.param) from None
        return CanonicalRequest(model, messages, stream, params, state=messages[0]["content"] if echo else None)

    def response_body(self, result: Any, request: CanonicalRequest) -> bytes:
        return _dumps(to_text_completion(result, request.model, request.state))

    def encoder(self, request: CanonicalRequest) -> StreamEncoder:
        return _Encoder(request.model, request.state)
