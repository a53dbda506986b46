"""``/v1/responses``: OpenAI's Responses API, translated to chat completions.

The translation lives in :mod:`llmrelay.translate.responses` (shared with
:func:`llmrelay.responses`); this module adds the gateway's side: the stored conversations of
``previous_response_id`` (a :class:`~llmrelay.response_store.ResponseStore` per gateway
process, persisted by :mod:`llmrelay.proxy.response_db` when the gateway has a database) and the SSE framing (``event: <type>`` + ``data: <json>``, no ``[DONE]``).
"""

from __future__ import annotations

from typing import Any

import orjson

from ...exceptions import LLMRelayError
from ...response_store import ResponseStore
from ...translate.responses import (
    ResponseEvents,
    ResponsesCall,
    ResponsesRequestError,
    conversation_after,
    to_chat,
    to_response,
)
from .. import errors
from . import CanonicalRequest, Ingress, IngressError, Redact, StreamEncoder
from .chat import take_model, take_stream

__all__ = ["ResponsesIngress"]

_dumps = orjson.dumps


def _frames(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + _dumps(e) + b"\n\n" for e in events)


class _Encoder(StreamEncoder):
    __slots__ = ("events", "store")

    def __init__(self, call: ResponsesCall, model: str, store: ResponseStore) -> None:
        self.events = ResponseEvents(call, model)
        self.store = store

    def start(self) -> bytes:
        return _frames(self.events.start())

    def chunk(self, chunk: Any) -> bytes:
        events = self.events.chunk(chunk)
        return _frames(events) if events else b""

    def error(self, exc: BaseException, redact: Redact, **options: Any) -> bytes:
        if isinstance(exc, LLMRelayError):
            message = redact(errors.client_message(exc, options.get("request_id")))
        else:
            message = "Internal error in the gateway (see its log)."
        code = errors.ERROR_TYPES.get(errors.status_of(exc), "api_error")
        return _frames(self.events.error(code, message))

    def end(self) -> bytes:
        frames = _frames(self.events.end())
        events = self.events
        if events.response is not None and events.call.store:
            self.store.put(events.call.id, conversation_after(events.call, events.response), events.response)
        return frames


class ResponsesIngress(Ingress):
    """OpenAI's ``POST /v1/responses``."""

    name = "responses"
    summary = "OpenAI Responses API (translated; stream=true gives Responses events)"
    paths = frozenset({"/v1/responses", "/responses"})

    def __init__(self, store: ResponseStore | None = None) -> None:
        self.store = store if store is not None else ResponseStore()

    def parse(self, data: dict[str, Any]) -> CanonicalRequest:
        model = take_model(data)
        stream = take_stream(data)
        previous = data.get("previous_response_id")
        history = None
        if previous is not None:
            history = self.store.get(previous) if isinstance(previous, str) else None
            if history is None:
                raise IngressError(f"Previous response with id {previous!r} not found (responses are kept "
                                   f"for {self.store.ttl:.0f} seconds).",
                                   status=404, param="previous_response_id", code="previous_response_not_found")
        try:
            call = to_chat(data, model, history)
        except ResponsesRequestError as exc:
            raise IngressError(exc.message, status=exc.status, param=exc.param, code=exc.code) from None
        params = call.params
        if stream:
            params["stream_options"] = {"include_usage": True}
        return CanonicalRequest(model, call.messages, stream, params, state=call)

    def response_body(self, result: Any, request: CanonicalRequest) -> bytes:
        call = request.state
        response = to_response(result, call, request.model)
        if call.store:
            self.store.put(call.id, conversation_after(call, response), response)
        return _dumps(response)

    def encoder(self, request: CanonicalRequest) -> StreamEncoder:
        return _Encoder(request.state, request.model, self.store)

    def stored(self, method: str, response_id: str) -> tuple[int, bytes]:
        """``GET`` / ``DELETE /v1/responses/{id}``: (status, body) from this gateway's store."""
        if method == "DELETE":
            if self.store.delete(response_id):
                return 200, _dumps({"id": response_id, "object": "response", "deleted": True})
        else:
            response = self.store.response(response_id)
            if response is not None:
                return 200, _dumps(response)
        return 404, self.error_body(404, f"Response with id {response_id!r} not found (responses are kept "
                                    f"for {self.store.ttl:.0f} seconds).", param="response_id")
