"""The stream: one state machine that both the sync and the async iterator drive.

``StreamState`` turns OpenAI-shaped chunk dicts (whatever the provider's wire format was,
its decoder produced these) into the chunks the caller sees, enforcing the streaming
contract (docs/streaming.md):

* one ``id``, ``created`` and ``model`` for every chunk;
* ``delta.role == "assistant"`` on each choice's first chunk only;
* content is passed on as it arrives; chunks with nothing in them are dropped;
* tool-call deltas keep their ``index`` (filled in when the upstream left it out) and get
  ``type: "function"`` when they open a call;
* ``finish_reason`` exactly once per choice, on that choice's last chunk: the upstream's value
  is held back and sent when the stream ends, so nothing can follow it but the usage chunk;
* usage: the upstream's, else counted; one ``choices == []`` chunk with it when
  ``stream_options.include_usage`` was asked;
* the repeat guard (``REPEATED_STREAMING_CHUNK_LIMIT``).

``CustomStreamWrapper`` is the object ``completion(stream=True)`` returns. It pulls batches of
chunk dicts from a *source* (an HTTP response plus a provider decoder, or any iterator of
chunks) and feeds them through the state machine; ``__next__`` and ``__anext__`` differ only in
how they wait for the next batch.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Iterable

import orjson

from . import settings
from .exceptions import APIConnectionError, APIError, InternalServerError, LLMRelayError
from .provider_headers import additional_headers as _additional_headers
from .types import (
    content_parts_text,
    ChatCompletionDeltaToolCall,
    Choices,
    FINISH_REASONS,
    Delta,
    Function,
    Message,
    ModelResponse,
    ModelResponseStream,
    OpenAIObject,
    StreamingChoices,
    Usage,
    _fast,
    _plain,
    new_completion_id,
    plain_fields,
)

__all__ = [
    "StreamUsageError",
    "StreamState",
    "CustomStreamWrapper",
    "ModelResponseListIterator",
    "normalize_finish_reason",
]

log = logging.getLogger("llmrelay.stream")

_FINISH_REASONS = FINISH_REASONS


def normalize_finish_reason(reason: Any) -> str:
    """Map any provider's finish reason onto OpenAI's values (unknown ones become ``stop``)."""
    if reason is None:
        return "stop"
    key = str(reason).lower()
    return _FINISH_REASONS.get(key, "stop")


def _as_dict(value: Any) -> dict:
    """Chunks and their parts may come as our objects (cached or list streams) or mappings."""
    return value.model_dump() if isinstance(value, OpenAIObject) else dict(value)


class StreamUsageError(TypeError):
    """A stream was used the wrong way (``for`` over an ``acompletion`` stream, or the reverse)."""


class _ChoiceState:
    __slots__ = ("role_sent", "finish", "text", "reasoning", "tool_index_by_id", "tools",
                 "last_content", "repeats", "function_call")

    def __init__(self) -> None:
        self.role_sent = False
        self.finish: str | None = None
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tool_index_by_id: dict[str, int] = {}
        self.tools: dict[int, list] = {}  # index -> [id, name, [argument pieces]]
        self.last_content: str | None = None
        self.repeats = 0
        self.function_call: list | None = None


class StreamState:
    """Per-stream bookkeeping: chunk dicts in, caller-facing chunks out. No I/O."""

    def __init__(
        self,
        model: str | None,
        llm_provider: str | None = None,
        include_usage: bool = False,
        messages: list | None = None,
    ) -> None:
        self.model = model
        self.llm_provider = llm_provider
        self.include_usage = include_usage
        self.messages = messages
        self.id: str | None = None
        self.created: int | None = None
        self.system_fingerprint: str | None = None
        self.upstream_usage: dict | None = None
        self.choices: dict[int, _ChoiceState] = {}
        self.first_choice: _ChoiceState | None = None
        self.ended = False
        self.ended_at: float | None = None  # when it ended (time.perf_counter())
        self.first_time: float | None = None  # when the first chunk arrived (time.time())
        self._counted: Usage | None = None  # usage counted offline once the stream ended

    # ---------------------------------------------------------------- per chunk
    def process(self, raw: Any) -> ModelResponseStream | None:
        """One upstream chunk (a dict in OpenAI's shape) → the chunk to yield, or None."""
        if type(raw) is not dict:
            raw = _as_dict(raw)
        if self.id is None:
            self._start(raw)
            self.first_time = time.time()
        usage = raw.get("usage")
        if usage:
            self.upstream_usage = usage if type(usage) is dict else _as_dict(usage)
        out = []
        for choice in raw.get("choices") or ():
            c = self._choice(choice)
            if c is not None:
                out.append(c)
        return self._chunk(out) if out else None

    def _start(self, raw: dict) -> None:
        self.id = raw.get("id") or new_completion_id()
        self.created = raw.get("created") or int(time.time())
        self.system_fingerprint = raw.get("system_fingerprint")
        if self.model is None:
            self.model = raw.get("model")

    def _choice(self, choice: Any) -> StreamingChoices | None:
        if type(choice) is not dict:
            choice = _as_dict(choice)
        index = choice.get("index") or 0
        state = self.choices.get(index)
        if state is None:
            state = self.choices[index] = _ChoiceState()
            if self.first_choice is None:
                self.first_choice = state
        reason = choice.get("finish_reason")
        if reason is not None and state.finish is None:
            state.finish = normalize_finish_reason(reason)
        delta_in = choice.get("delta") or {}
        delta: dict[str, Any] = {}
        for key, value in delta_in.items():
            if value is None or key == "role":
                continue
            if key == "content":
                if type(value) is str:
                    if value:
                        self._guard(state, value)
                        state.text.append(value)
                        delta["content"] = value
                    elif not state.role_sent:
                        delta["content"] = value
                    continue
                value, reasoning = self._parts(value)  # typed parts (Mistral's thinking/text…)
                if reasoning:
                    state.reasoning.append(reasoning)
                    delta["reasoning_content"] = delta.get("reasoning_content", "") + reasoning
                if value:
                    self._guard(state, value)
                    state.text.append(value)
                    delta["content"] = value
            elif key == "tool_calls":
                if value:
                    delta["tool_calls"] = self._tool_calls(state, value if type(value) is list else [value])
            elif key in ("reasoning_content", "reasoning"):
                if value:
                    if type(value) is not str:
                        value = "".join(self._parts(value))
                    state.reasoning.append(value)
                    delta["reasoning_content"] = delta.get("reasoning_content", "") + value
            elif key == "function_call":
                delta["function_call"] = self._function_call(state, value)
            elif key == "refusal" and type(value) is not str:
                delta[key] = "".join(self._parts(value))
            elif key == "thinking_blocks" and type(value) is not list:
                delta[key] = [value]
            else:
                delta[key] = value
        logprobs = choice.get("logprobs")
        if not delta and logprobs is None:
            if state.role_sent:
                return None
        if not state.role_sent:
            state.role_sent = True
            delta = {"role": "assistant", **delta}
        fields = {"index": index, "delta": _fast(Delta, delta), "finish_reason": None}
        if logprobs is not None:
            fields["logprobs"] = logprobs
        return _fast(StreamingChoices, fields)

    def _parts(self, value: Any) -> tuple[str, str]:
        """Content sent as typed parts (Mistral's ``thinking``/``text`` parts…): (text, reasoning)."""
        try:
            return content_parts_text(value)
        except ValueError as exc:
            raise self._bad(f"a delta whose content is not text: {exc}") from None

    def _bad(self, what: str) -> APIError:
        return APIError(f"The upstream sent {what}", llm_provider=self.llm_provider, model=self.model,
                        generated_content=self.generated_content())

    def _arguments(self, arguments: Any) -> str:
        """Tool-call arguments are JSON text; some servers send the object itself."""
        if type(arguments) is str:
            return arguments
        return orjson.dumps(arguments).decode()

    def _guard(self, state: _ChoiceState, content: str) -> None:
        """The repeat guard: the same content (longer than 2 characters, not blank) more than
        LIMIT times in a row, counting content deltas only."""
        if content == state.last_content:  # never a chunk of 2 characters or fewer
            state.repeats += 1
            limit = settings.get("REPEATED_STREAMING_CHUNK_LIMIT")
            if limit is not None and state.repeats > limit:
                raise InternalServerError(
                    f"The model repeated the same chunk {state.repeats} times in a row "
                    f"(REPEATED_STREAMING_CHUNK_LIMIT={limit}): {content[:200]!r}",
                    llm_provider=self.llm_provider,
                    model=self.model,
                    generated_content=self.generated_content(),
                )
        elif content.strip():
            if len(content) > 2:
                state.last_content = content
                state.repeats = 1
            else:  # short chunks are not counted (LiteLLM's rule); a different one ends a run
                state.last_content = None
                state.repeats = 0
        # blank content neither counts nor breaks a run

    def _tool_calls(self, state: _ChoiceState, calls: list) -> list:
        out = []
        for position, call in enumerate(calls):
            if type(call) is not dict:
                call = _as_dict(call)
            call_id = call.get("id")
            if call_id and type(call_id) is not str:
                raise self._bad(f"a tool call whose id is not a string: {call_id!r}")
            index = call.get("index")
            if index is None:
                if call_id and call_id in state.tool_index_by_id:
                    index = state.tool_index_by_id[call_id]
                elif call_id:
                    index = len(state.tools)
                else:
                    index = max(state.tools) if state.tools else position
            record = state.tools.get(index)
            if record is None:
                record = state.tools[index] = [None, None, []]
            fields: dict[str, Any] = {"index": index}
            if call_id:
                if record[0] is None:
                    record[0] = call_id
                    state.tool_index_by_id[call_id] = index
                fields["id"] = call_id
                fields["type"] = call.get("type") or "function"
            elif call.get("type"):
                fields["type"] = call["type"]
            function = call.get("function")
            if function:
                if type(function) is not dict:
                    function = _as_dict(function) if isinstance(function, OpenAIObject) else None
                    if function is None:
                        raise self._bad("a tool call whose function is not an object")
                fn: dict[str, Any] = {}
                name = function.get("name")
                if name:
                    if type(name) is not str:
                        raise self._bad(f"a tool call whose name is not a string: {name!r}")
                    if record[1] is None:
                        record[1] = name
                    fn["name"] = name
                    fields.setdefault("type", "function")
                arguments = function.get("arguments")
                if arguments is not None:
                    if type(arguments) is not str:
                        arguments = self._arguments(arguments)
                    record[2].append(arguments)
                    fn["arguments"] = arguments
                fields["function"] = _fast(Function, fn)
            for key, value in call.items():
                if key not in fields and key not in ("index", "id", "type", "function"):
                    fields[key] = value
            out.append(_fast(ChatCompletionDeltaToolCall, fields))
        return out

    def _function_call(self, state: _ChoiceState, call: Any) -> Function:
        if type(call) is not dict:
            call = _as_dict(call)
        if state.function_call is None:
            state.function_call = [None, []]
        name = call.get("name")
        if name is not None and type(name) is not str:
            raise self._bad(f"a function call whose name is not a string: {name!r}")
        if name and state.function_call[0] is None:
            state.function_call[0] = name
        fields = {k: v for k, v in call.items() if v is not None}
        if "arguments" in fields:
            fields["arguments"] = self._arguments(fields["arguments"])
            state.function_call[1].append(fields["arguments"])
        return _fast(Function, fields)

    # ---------------------------------------------------------------- end of stream
    def finish(self, complete: bool) -> list[ModelResponseStream]:
        """The upstream stream ended; ``complete`` is whether it ended properly ([DONE] or its
        provider's terminal event). Returns the closing chunks (finish reasons, usage)."""
        if self.ended:
            return []
        self.ended = True
        self.ended_at = time.perf_counter()
        if self.id is None:
            self._start({})
        if not self.choices:
            self.choices[0] = _ChoiceState()
        if not complete and any(c.finish is None for c in self.choices.values()):
            raise APIConnectionError(
                "The upstream stream ended before it finished (no finish_reason and no end "
                "marker): the connection was probably dropped.",
                llm_provider=self.llm_provider,
                model=self.model,
                generated_content=self.generated_content(),
            )
        out = []
        for index in sorted(self.choices):
            state = self.choices[index]
            if state.finish is None:
                # Documented: a stream that ended properly without a reason finished normally,
                # or with tool calls if it streamed some.
                state.finish = "tool_calls" if state.tools else "stop"
            delta = {} if state.role_sent else {"role": "assistant"}
            state.role_sent = True
            choice = _fast(
                StreamingChoices,
                {"index": index, "delta": _fast(Delta, delta), "finish_reason": state.finish},
            )
            out.append(self._chunk([choice]))
        if self.include_usage:
            chunk = self._chunk([])
            chunk.usage = self.usage()
            out.append(chunk)
        return out

    def _chunk(self, choices: list) -> ModelResponseStream:
        fields = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.system_fingerprint is not None:
            fields["system_fingerprint"] = self.system_fingerprint
        return _fast(ModelResponseStream, fields)

    # ---------------------------------------------------------------- what was streamed
    def generated_content(self) -> str:
        """Text streamed so far (of the first choice)."""
        state = self.first_choice
        return self._text(state) if state is not None else ""

    def _text(self, state: _ChoiceState) -> str:
        """A choice's streamed text. Once the stream has ended it is joined once and kept as the
        only piece (the response, the usage count and the caller may each ask for it)."""
        pieces = state.text
        if len(pieces) < 2:
            return pieces[0] if pieces else ""
        text = "".join(pieces)
        if self.ended:
            pieces[:] = (text,)
        return text

    def response(self) -> ModelResponse:
        """What was streamed so far as one ``chat.completion`` (for callbacks; once per stream)."""
        return self._response(None)

    def response_and_dump(self) -> tuple[ModelResponse, dict[str, Any]]:
        """:meth:`response` and its ``model_dump()``, built together from the same facts (the
        dump is what callbacks get as ``standard_logging_object["response"]``)."""
        dumps: list[Any] = []
        response = self._response(dumps)
        usage = response.usage
        # a counted usage holds three ints; an upstream's may hold nested details
        usage_dump = plain_fields(Usage, dict(usage.__dict__)) if usage is self._counted else _plain(usage)
        fields = {**response.__dict__, "choices": dumps, "usage": usage_dump}
        return response, plain_fields(ModelResponse, fields)

    def _response(self, dumps: list | None) -> ModelResponse:
        choices = []
        for index in sorted(self.choices):
            state = self.choices[index]
            fields: dict[str, Any] = {"content": self._text(state) if state.text else None, "role": "assistant"}
            if state.reasoning:
                fields["reasoning_content"] = "".join(state.reasoning)
            if state.tools or state.function_call:
                if state.tools:
                    fields["tool_calls"] = [
                        {"id": call_id or "", "type": "function",
                         "function": {"name": name or "", "arguments": "".join(args)}}
                        for _, (call_id, name, args) in sorted(state.tools.items())
                    ]
                if state.function_call:
                    fields["function_call"] = {"name": state.function_call[0] or "",
                                               "arguments": "".join(state.function_call[1])}
                message = Message(**fields)
                message_dump = _plain(message) if dumps is not None else None
            else:  # plain text (the common case): no nested objects to build
                message_dump = plain_fields(Message, fields) if dumps is not None else None
                message = _fast(Message, fields)
            choices.append(_fast(Choices, {"index": index, "message": message, "finish_reason": state.finish}))
            if dumps is not None:
                dumps.append(plain_fields(Choices, {"index": index, "message": message_dump,
                                                    "finish_reason": state.finish}))
        return _fast(ModelResponse, {
            "id": self.id or new_completion_id(), "created": self.created or int(time.time()), "model": self.model,
            "choices": choices,
            "system_fingerprint": self.system_fingerprint, "object": "chat.completion", "usage": self.usage(),
        })

    def usage(self) -> Usage:
        """The upstream's usage if it sent one, else counted offline."""
        if self.upstream_usage:
            return Usage(**self.upstream_usage)
        if self._counted is not None:
            return self._counted
        state = self.first_choice
        if (len(self.choices) == 1 and not state.reasoning and not state.tools
                and not state.function_call):  # one choice of text alone (the common case)
            completion = self._text(state)
        else:
            completion = self._all_text()
        counted = _counted_usage(self.model, self.messages, completion)
        if self.ended:  # final: count once (callbacks, cost and the caller may each ask)
            self._counted = counted
        return counted

    def _all_text(self) -> str:
        """What every choice generated (text, reasoning, tool and function calls), joined."""
        texts: list[str] = []
        for state in self.choices.values():
            texts.append(self._text(state))
            texts += state.reasoning
            for _id, name, args in state.tools.values():
                texts.append(name or "")
                texts += args
            if state.function_call:
                texts.append(state.function_call[0] or "")
                texts += state.function_call[1]
        return "".join(texts)


# Imported on first use (``llmrelay.tokens``/``llmrelay.cost`` are not needed by a stream nobody
# prices or counts); each helper then replaces itself with the real function, so later streams
# skip the ``from ... import`` machinery (~10k instructions per call on CPython 3.11).
def _counted_usage(model: str | None, messages: Any, completion: str) -> Usage:
    global _counted_usage
    from .tokens import counted_usage as _counted_usage

    return _counted_usage(model, messages, completion)


def _response_cost(model: Any, provider: Any, usage: Any, prices: dict | None, seconds: float | None) -> float | None:
    global _response_cost
    from .cost import response_cost as _response_cost

    return _response_cost(model, provider, usage, prices, seconds)


def _tokens_cost(model: Any, provider: Any, prompt: int, completion: int, prices: dict | None,
                 seconds: float | None) -> float | None:
    global _tokens_cost
    from .cost import tokens_cost as _tokens_cost

    return _tokens_cost(model, provider, prompt, completion, prices, seconds)


class StreamHiddenParams(dict):
    """A stream's ``_hidden_params``. ``"response_cost"`` is there once the stream has ended:
    priced from the stream's usage when first read, so a stream nobody prices costs nothing
    (no per-chunk work, no token counting). ``prices`` are the deployment's overrides. Reading
    the whole mapping (``dict(...)``, ``{**...}``, iteration, ``keys()``…) after the end includes
    the cost, so a copy carries the deployment's price. Likewise ``"additional_headers"``, when
    ``headers_from`` (the upstream's response) is set: made from its headers when first read, so
    a relay that never reads them does not split and rename the upstream's ~24 headers."""

    __slots__ = ("_state", "prices", "started", "headers_from")

    def __init__(self, values: dict | None, state: StreamState) -> None:
        super().__init__(values or {})
        self._state = state
        self.prices: dict | None = None
        #: ``time.perf_counter()`` when the call was sent (per-second prices: the call's duration)
        self.started: float | None = None
        #: the upstream response (its ``headers``) ``"additional_headers"`` is made from, until it is
        self.headers_from: Any = None

    def fill_headers(self) -> None:
        """Put ``"additional_headers"`` in the mapping now, if it is still to be made."""
        response = self.headers_from
        if response is not None:
            self.headers_from = None
            headers = response.headers
            self["additional_headers"] = _additional_headers(headers) if headers else {}

    def __missing__(self, key: Any) -> Any:
        if key == "additional_headers" and self.headers_from is not None:
            self.fill_headers()
            return dict.__getitem__(self, key)
        state = self._state
        if key != "response_cost" or not state.ended:
            raise KeyError(key)
        model = dict.get(self, "model") or state.model
        started, ended = self.started, state.ended_at
        usage = state.usage()
        seconds = ended - started if started is not None and ended is not None else None
        if usage is state._counted:  # (counted offline: its two counts are all there is to price)
            fields = usage.__dict__
            value = _tokens_cost(model, dict.get(self, "custom_llm_provider"), fields["prompt_tokens"],
                                 fields["completion_tokens"], self.prices, seconds)
        else:
            value = _response_cost(model, dict.get(self, "custom_llm_provider"), usage, self.prices, seconds)
        self["response_cost"] = value
        return value

    def _settle(self) -> None:
        """Price the ended stream now (and make its additional headers), so the mapping's own
        methods see them."""
        if self.headers_from is not None:
            self.fill_headers()
        if self._state.ended and not dict.__contains__(self, "response_cost"):
            self["response_cost"]  # noqa: B018 - __missing__ stores it

    def get(self, key: Any, default: Any = None) -> Any:
        if (key != "response_cost" and key != "additional_headers") or dict.__contains__(self, key):
            return dict.get(self, key, default)  # (no KeyError raised and caught)
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or (key == "response_cost" and self._state.ended) or (
            key == "additional_headers" and self.headers_from is not None)

    def __iter__(self) -> Any:
        self._settle()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._settle()
        return dict.__len__(self)

    def keys(self) -> Any:
        self._settle()
        return dict.keys(self)

    def items(self) -> Any:
        self._settle()
        return dict.items(self)

    def values(self) -> Any:
        self._settle()
        return dict.values(self)

    def copy(self) -> dict:
        self._settle()
        return dict(dict.items(self))

    def __repr__(self) -> str:
        self._settle()
        return dict.__repr__(self)


# ====================================================================== sources
class _IterableSource:
    """A source over any (a)sync iterable of chunks (dicts or chunk objects)."""

    complete = True

    def __init__(self, iterable: Any) -> None:
        self._iterable = iterable
        self._it: Any = None
        self._ait: Any = None

    def next_batch(self) -> list | None:
        if self._it is None:
            self._it = iter(self._iterable)
        for item in self._it:
            return [item]
        return None

    async def anext_batch(self) -> list | None:
        if self._ait is None:
            if hasattr(self._iterable, "__aiter__"):
                self._ait = self._iterable.__aiter__()
            else:
                self._it = self._it or iter(self._iterable)
                return self.next_batch()
        try:
            return [await self._ait.__anext__()]
        except StopAsyncIteration:
            return None

    def close(self) -> None:
        for it in (self._it, self._iterable):
            close = getattr(it, "close", None)
            if close is not None and not hasattr(it, "__aiter__"):
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing must not raise
                    pass
                return

    async def aclose(self) -> None:
        for it in (self._ait, self._iterable):
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001
                    pass
                return
        self.close()


class ModelResponseListIterator:
    """Iterate (sync or async) over a list of ready-made chunks."""

    def __init__(self, model_responses: Iterable[Any], delay: float | None = None) -> None:
        self.model_responses = list(model_responses)
        self.delay = delay
        self._index = 0

    def __iter__(self) -> "ModelResponseListIterator":
        return self

    def __next__(self) -> Any:
        if self._index >= len(self.model_responses):
            raise StopIteration
        item = self.model_responses[self._index]
        self._index += 1
        if self.delay:
            time.sleep(self.delay)
        return item

    def __aiter__(self) -> "ModelResponseListIterator":
        return self

    async def __anext__(self) -> Any:
        if self._index >= len(self.model_responses):
            raise StopAsyncIteration
        item = self.model_responses[self._index]
        self._index += 1
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        return item


# ====================================================================== the stream
class CustomStreamWrapper:
    """The stream ``completion(..., stream=True)`` returns; iterate it (sync or async).

    Also built directly, as in LiteLLM::

        CustomStreamWrapper(completion_stream=iterator_of_chunks, model="gpt-4o",
                            custom_llm_provider="cached_response", logging_obj=Logging(...))

    After the stream is exhausted, ``.usage`` holds the usage (the upstream's or counted).
    The connection is released when the stream ends, on ``close()``/``aclose()``, on leaving a
    ``with``/``async with`` block, on ``break`` followed by garbage collection, and on errors.
    """

    def __init__(
        self,
        completion_stream: Any,
        model: str | None,
        custom_llm_provider: str | None = None,
        logging_obj: Any = None,
        stream_options: dict | None = None,
        messages: list | None = None,
        hidden_params: dict | None = None,
    ) -> None:
        if hasattr(completion_stream, "next_batch"):
            self._source = completion_stream
        else:
            self._source = _IterableSource(completion_stream)
        self.model = model
        self.custom_llm_provider = custom_llm_provider
        self.logging_obj = logging_obj
        if messages is None and logging_obj is not None:
            messages = getattr(logging_obj, "messages", None)
        include_usage = bool(stream_options and stream_options.get("include_usage"))
        self._state = StreamState(model, custom_llm_provider, include_usage, messages)
        self._queue: deque = deque()
        self._finished = False
        self._closed = False
        self._usage: Usage | None = None
        self._pending: BaseException | None = None
        self._hidden_params = StreamHiddenParams(hidden_params, self._state)
        self._hidden_params.setdefault("custom_llm_provider", custom_llm_provider)
        self._end_hooks: list | None = None
        self._observer: Any = None

    def observe(self, observer: Any) -> None:
        """Report the end of this stream to ``observer`` (a :class:`~llmrelay.logging_obj.Logging`):
        ``stream_success``, ``stream_failure`` or ``stream_abandoned``, once; nothing per chunk."""
        self._observer = observer

    # -------------------------------------------------------------- shared logic
    def _take(self, batch: list) -> None:
        process = self._state.process
        queue = self._queue
        for raw in batch:
            try:
                chunk = process(raw)
            except Exception as exc:
                error = exc if isinstance(exc, LLMRelayError) else self._shape_error(exc)
                if not queue:
                    if error is exc:
                        raise
                    raise error from exc
                # Chunks that came before the failing one are delivered first.
                self._pending = error
                return
            if chunk is not None:
                queue.append(chunk)

    def _shape_error(self, exc: Exception) -> APIError:
        """A chunk of valid JSON but an unexpected shape: a typed error, never a bare TypeError."""
        from .providers.base import shape_error

        error = shape_error(exc, self.custom_llm_provider, self.model, "a stream chunk")
        error.generated_content = self._state.generated_content()
        return error

    def _raise_pending(self) -> None:
        exc = self._pending
        if exc is not None:
            self._pending = None
            raise exc

    def _end(self) -> None:
        self._queue.extend(self._state.finish(getattr(self._source, "complete", True)))
        self._finished = True
        if self._end_hooks:
            for hook in self._end_hooks:
                try:
                    hook(self)
                except Exception:  # noqa: BLE001 - a hook must not break the stream
                    log.warning("stream end hook %r failed", hook, exc_info=True)

    def _closing(self) -> None:
        """Tell the observer how the stream ended: read to its end, or abandoned (no-op after a
        failure was reported)."""
        observer = self._observer
        if observer is not None:
            if self._state.ended:
                observer.stream_success(self)
            else:
                observer.stream_abandoned(self)

    def _fail(self, exc: BaseException) -> BaseException:
        self._finished = True
        self._queue.clear()
        if isinstance(exc, StreamUsageError):
            return exc
        error = self._error(exc)
        if self._observer is not None:
            self._observer.stream_failure(self, error)
        return error

    def _error(self, exc: BaseException) -> BaseException:
        """The error the caller sees: typed, with what was generated."""
        if isinstance(exc, APIError):
            if exc.generated_content is None:
                exc.generated_content = self._state.generated_content()
            if exc.llm_provider is None:
                exc.llm_provider = self.custom_llm_provider
            if exc.model is None:
                exc.model = self.model
            return exc
        if isinstance(exc, Exception):
            log.debug("stream failed with an unexpected error", exc_info=exc)
            return APIError(
                f"Unexpected error while streaming: {type(exc).__name__}: {exc}",
                llm_provider=self.custom_llm_provider,
                model=self.model,
                generated_content=self._state.generated_content(),
            )
        return exc

    # -------------------------------------------------------------- sync
    def __iter__(self) -> "CustomStreamWrapper":
        return self

    def __next__(self) -> ModelResponseStream:
        queue = self._queue
        while not queue:
            if self._finished:
                self.close()
                raise StopIteration
            try:
                self._raise_pending()
                batch = self._source.next_batch()
                if batch is None:
                    self._end()
                else:
                    self._take(batch)
            except BaseException as exc:
                error = self._fail(exc)
                self.close()
                if error is exc:
                    raise
                raise error from exc
        return queue.popleft()

    def close(self) -> None:
        """Stop the stream and release its connection (idempotent)."""
        if not self._closed:
            self._closed = True
            self._finished = True
            self._closing()
            self._source.close()

    def __enter__(self) -> "CustomStreamWrapper":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -------------------------------------------------------------- async
    def __aiter__(self) -> "CustomStreamWrapper":
        return self

    async def __anext__(self) -> ModelResponseStream:
        queue = self._queue
        while not queue:
            if self._finished:
                await self.aclose()
                raise StopAsyncIteration
            try:
                self._raise_pending()
                batch = await self._source.anext_batch()
                if batch is None:
                    self._end()
                else:
                    self._take(batch)
            except BaseException as exc:
                error = self._fail(exc)
                await self.aclose()
                if error is exc:
                    raise
                raise error from exc
        return queue.popleft()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        if not self._closed:
            self._closed = True
            self._finished = True
            self._closing()
            await self._source.aclose()

    async def __aenter__(self) -> "CustomStreamWrapper":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self._closed = True
                self._closing()
                self._source.close()
            except Exception:  # noqa: BLE001 - never raise from a finaliser
                pass

    # -------------------------------------------------------------- for layers on top (router, gateway)
    @property
    def source(self) -> Any:
        """Where batches come from; a router may wrap it (one call per batch, none per chunk)."""
        return self._source

    @source.setter
    def source(self, value: Any) -> None:
        self._source = value

    @property
    def state(self) -> StreamState:
        """The stream's state machine (id, usage so far, what was streamed)."""
        return self._state

    @property
    def chunks_ready(self) -> int:
        """How many chunks the next iterations return without waiting for the upstream."""
        return len(self._queue)

    @property
    def exhausted(self) -> bool:
        """Whether the stream has ended (or failed): the next iterations return the chunks still
        queued, then stop, without waiting for the upstream."""
        return self._finished

    def add_end_hook(self, hook: Any) -> None:
        """Call ``hook(stream)`` once, when the stream has ended normally (the upstream finished
        and every closing chunk is decided). Not called for a failed or early-closed stream."""
        if self._end_hooks is None:
            self._end_hooks = []
        self._end_hooks.append(hook)

    def unread(self, chunk: ModelResponseStream) -> None:
        """Put a chunk back at the head of the stream (after peeking at the first one)."""
        self._queue.appendleft(chunk)

    # -------------------------------------------------------------- results
    @property
    def usage(self) -> Usage | None:
        """Token usage, once the stream has ended (None before)."""
        if not self._state.ended:
            return None
        if self._usage is None:
            self._usage = self._state.usage()
        return self._usage

    @property
    def response_id(self) -> str | None:
        return self._state.id

    @property
    def generated_content(self) -> str:
        return self._state.generated_content()

    def __repr__(self) -> str:
        return (
            f"<CustomStreamWrapper model={self.model!r} provider={self.custom_llm_provider!r}"
            f" finished={self._finished}>"
        )
