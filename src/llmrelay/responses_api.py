"""``responses()`` / ``aresponses()``: OpenAI's Responses API for every provider.

The request is translated to a chat completion (:mod:`llmrelay.translate.responses`), called
with :func:`llmrelay.completion` / :func:`llmrelay.acompletion` (so every provider, retry and
keyword argument works), and the answer is translated back: a :class:`ResponsesAPIResponse`, or
with ``stream=True`` an iterator of Responses stream events (``response.created`` …
``response.completed``, each with a ``sequence_number``). An error inside a stream raises from
the iteration, like a chat stream.

``previous_response_id`` continues a conversation stored by an earlier call in this process
(``store`` not False): :data:`STORE`, in memory, entries expire after one hour
(``STORE.ttl``, seconds).
"""

from __future__ import annotations

from typing import Any

from .response_store import ResponseStore
from .translate.responses import (
    _ACCEPTED,
    ResponseEvents,
    ResponsesCall,
    ResponsesRequestError,
    conversation_after,
    to_chat,
    to_response,
)
from .types import OpenAIObject

__all__ = ["responses", "aresponses", "ResponsesAPIResponse", "ResponsesEvent", "STORE"]

#: The conversations ``previous_response_id`` refers to (this process; one-hour expiry).
STORE = ResponseStore()


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return ResponsesEvent(**value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class ResponsesEvent(OpenAIObject):
    """A Responses object (event, item, part…): attributes all the way down, and dict access."""

    __slots__ = ()

    def __init__(self, **fields: Any) -> None:
        super().__init__(**{k: _wrap(v) for k, v in fields.items()})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return None  # absent fields read as None, like the SDK's optional fields


class ResponsesAPIResponse(ResponsesEvent):
    """A ``response`` object; ``output_text`` joins its output text like the OpenAI SDK's."""

    __slots__ = ()

    @property
    def output_text(self) -> str:
        return "".join(part.text or "" for item in self.output or () if item.type == "message"
                       for part in item.content or () if part.type == "output_text")


def _split(model: Any, input: Any, kwargs: dict[str, Any]) -> tuple[ResponsesCall, dict[str, Any], bool]:  # noqa: A002
    from .exceptions import BadRequestError

    if not isinstance(model, str) or not model:
        raise BadRequestError(f"model must be a non-empty string, got {model!r}")
    data = {"input": input}
    call_kwargs: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _ACCEPTED:
            if value is not None:
                data[key] = value
        else:
            call_kwargs[key] = value
    stream = bool(data.pop("stream", False))
    previous = data.get("previous_response_id")
    history = None
    if previous is not None:
        history = STORE.get(previous)
        if history is None:
            from .exceptions import NotFoundError

            raise NotFoundError(f"Previous response with id {previous!r} not found (stored responses expire "
                                f"after {STORE.ttl:.0f} seconds).", model=model)
    try:
        call = to_chat(data, model, history)
    except ResponsesRequestError as exc:
        raise BadRequestError(exc.message, model=model) from None
    if stream:
        call.params["stream_options"] = {"include_usage": True}
    return call, {**call.params, **call_kwargs}, stream


def _finish(call: ResponsesCall, response: dict[str, Any]) -> ResponsesAPIResponse:
    if call.store:
        STORE.put(call.id, conversation_after(call, response))
    return ResponsesAPIResponse(**response)


def responses(input: Any, model: str, stream: bool = False, **kwargs: Any) -> Any:  # noqa: A002 - OpenAI's name
    """Create a response (OpenAI's Responses API) with any provider's model.

    Responses parameters (``instructions``, ``tools``, ``tool_choice``, ``text``,
    ``reasoning``, ``max_output_tokens``, ``previous_response_id``, ``store``, ``temperature``…)
    are translated; every other keyword argument goes to :func:`llmrelay.completion`
    (``api_key``, ``api_base``, ``timeout``, ``num_retries``…).
    """
    from .main import completion

    return respond(completion, input, model, stream, kwargs)


async def aresponses(input: Any, model: str, stream: bool = False, **kwargs: Any) -> Any:  # noqa: A002
    """The async twin of :func:`responses` (``async for`` over a stream's events)."""
    from .main import acompletion

    return await arespond(acompletion, input, model, stream, kwargs)


def respond(complete: Any, input: Any, model: str, stream: bool, kwargs: dict[str, Any]) -> Any:  # noqa: A002
    """:func:`responses` over any ``completion``-like callable (the library's, a Router's)."""
    call, kw, stream = _split(model, input, {**kwargs, "stream": stream})
    result = complete(model, call.messages, stream, **kw)
    if stream:
        return _SyncEvents(result, call, model)
    return _finish(call, to_response(result, call, model))


async def arespond(acomplete: Any, input: Any, model: str, stream: bool, kwargs: dict[str, Any]) -> Any:  # noqa: A002
    """The async twin of :func:`respond`."""
    call, kw, stream = _split(model, input, {**kwargs, "stream": stream})
    result = await acomplete(model, call.messages, stream, **kw)
    if stream:
        return _AsyncEvents(result, call, model)
    return _finish(call, to_response(result, call, model))


class _Events:
    def __init__(self, chunks: Any, call: ResponsesCall, model: str) -> None:
        self.chunks = chunks
        self.events = ResponseEvents(call, model)
        self.pending: list[dict[str, Any]] = self.events.start()
        self.ended = False
        self.response: ResponsesAPIResponse | None = None

    def _end(self) -> None:
        self.ended = True
        self.pending.extend(self.events.end())
        if self.events.response is not None:
            self.response = _finish(self.events.call, self.events.response)

    def _pop(self) -> ResponsesEvent:
        event = self.pending.pop(0)
        if event["type"] in ("response.completed", "response.incomplete") and self.response is not None:
            return ResponsesEvent(type=event["type"], sequence_number=event["sequence_number"],
                                  response=self.response)
        return ResponsesEvent(**event)


class _SyncEvents(_Events):
    def __iter__(self) -> "_SyncEvents":
        return self

    def __next__(self) -> ResponsesEvent:
        while not self.pending:
            if self.ended:
                raise StopIteration
            try:
                chunk = next(self.chunks)
            except StopIteration:
                self._end()
                continue
            self.pending.extend(self.events.chunk(chunk))
        return self._pop()

    def close(self) -> None:
        self.chunks.close()


class _AsyncEvents(_Events):
    def __aiter__(self) -> "_AsyncEvents":
        return self

    async def __anext__(self) -> ResponsesEvent:
        while not self.pending:
            if self.ended:
                raise StopAsyncIteration
            try:
                chunk = await self.chunks.__anext__()
            except StopAsyncIteration:
                self._end()
                continue
            self.pending.extend(self.events.chunk(chunk))
        return self._pop()

    async def aclose(self) -> None:
        await self.chunks.aclose()
