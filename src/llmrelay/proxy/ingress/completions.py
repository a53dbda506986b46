"""``/v1/completions``: OpenAI's legacy text completions, translated to chat completions
(:mod:`llmrelay.translate.completions`); streams as ``text_completion`` chunks, then ``[DONE]``."""

from __future__ import annotations

from typing import Any

import orjson

from ...translate.completions import CompletionsRequestError, text_chunk, to_chat, to_text_completion
from . import CanonicalRequest, Ingress, IngressError, StreamEncoder
from .chat import take_model, take_stream

__all__ = ["CompletionsIngress"]

_dumps = orjson.dumps


class _Encoder(StreamEncoder):
    __slots__ = ("model", "echo")

    def __init__(self, model: str, echo: str | None) -> None:
        self.model = model
        self.echo = echo

    def chunk(self, chunk: Any) -> bytes:
        out = text_chunk(chunk, self.model)
        if out is None:
            return b""
        if self.echo is not None and out["choices"]:
            out["choices"][0]["text"] = self.echo + out["choices"][0]["text"]
            self.echo = None
        return b"data: " + _dumps(out) + b"\n\n"

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"


class CompletionsIngress(Ingress):
    """OpenAI's legacy ``POST /v1/completions``."""

    name = "completions"
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
