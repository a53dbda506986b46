"""A fake OpenAI Chat Completions server on top of :mod:`servers.loopback`.

Shapes follow OpenAI's public API reference: ``chat.completion`` and ``chat.completion.chunk``
objects, SSE frames ``data: {json}\\n\\n`` ending with ``data: [DONE]``, the usage-only chunk
(``choices: []``) sent when ``stream_options.include_usage`` is true, and error bodies
``{"error": {"message", "type", "param", "code"}}``.

Default behaviour (``FakeOpenAIServer``): a deterministic answer (``text``) echoing the request's
``model``; ``stream``, ``n``, ``max_tokens``/``max_completion_tokens``, ``tools``/``tool_choice``
and ``stream_options.include_usage`` are honoured. Fault scenarios are plain functions returning
a :class:`~servers.loopback.Reply`, to be queued with ``srv.enqueue(...)``::

    with FakeOpenAIServer() as srv:
        srv.enqueue(error_reply(429, retry_after=1), dropped_stream(after_chunks=2))
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="k", max_retries=0)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from servers.loopback import Drop, Hang, LoopbackServer, Reply, Request, Sleep

__all__ = [
    "Sleep",
    "Drop",
    "Hang",
    "Reply",
    "DEFAULT_TEXT",
    "DEFAULT_MODEL",
    "DEFAULT_TOOL_ARGUMENTS",
    "CREATED",
    "FakeOpenAIServer",
    "ChunkFactory",
    "split_text",
    "usage_dict",
    "error_body",
    "completion_dict",
    "text_stream_events",
    "tool_call_stream_events",
    "error_reply",
    "context_length_exceeded_reply",
    "content_policy_reply",
    "rate_limit_reply",
    "completion_reply",
    "stream_reply",
    "slow_headers_reply",
    "slow_stream_reply",
    "in_band_error_stream",
    "dropped_stream",
    "hanging_stream",
    "malformed_chunk_stream",
    "no_finish_stream",
    "no_done_stream",
    "repeated_chunk_stream",
    "reasoning_stream",
    "usage_stream",
    "crlf_stream",
    "ping_stream",
    "tool_call_stream",
]

DEFAULT_TEXT = "Hello! How can I help you today?"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TOOL_ARGUMENTS: dict[str, Any] = {"location": "Paris, France", "unit": "celsius"}
CREATED = 1_700_000_000
SYSTEM_FINGERPRINT = "fp_fake0001"
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
MODELS_PATHS = ("/v1/models", "/models")

_PIECE = re.compile(r"\s*\S+|\s+")

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
    504: ("server_error", None),
}


# --------------------------------------------------------------------------- pure builders


def split_text(text: str, max_tokens: int | None = None) -> tuple[list[str], bool]:
    """Split ``text`` into word-sized "tokens"; return (pieces, truncated_by_max_tokens)."""
    pieces = _PIECE.findall(text)
    if max_tokens is not None and len(pieces) > max_tokens:
        return pieces[:max_tokens], True
    return pieces, False


def usage_dict(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
    """An OpenAI ``usage`` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def error_body(
    message: str,
    type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """An OpenAI error body ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _tool_call_id(name: str, index: int) -> str:
    return "call_" + hashlib.sha1(f"{name}:{index}".encode()).hexdigest()[:24]


def _arguments_json(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, separators=(",", ":"))


def _fragments(s: str, size: int) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)] or [""]


@dataclass
class ChunkFactory:
    """Builds ``chat.completion.chunk`` dicts that share one id/model/created.

    With ``include_usage`` every chunk carries ``"usage": null`` as OpenAI does, and
    :meth:`usage_chunk` builds the final ``choices: []`` chunk.
    """

    model: str = DEFAULT_MODEL
    id: str = "chatcmpl-fake0000"
    created: int = CREATED
    include_usage: bool = False
    system_fingerprint: str | None = SYSTEM_FINGERPRINT

    def chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
        """A chunk with these choices (each from :meth:`choice`)."""
        out: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
            "choices": choices,
        }
        if self.include_usage or usage is not None:
            out["usage"] = usage
        return out

    @staticmethod
    def choice(delta: dict[str, Any], index: int = 0, finish_reason: str | None = None) -> dict[str, Any]:
        """One streamed choice."""
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def delta(self, delta: dict[str, Any], index: int = 0, finish_reason: str | None = None) -> dict[str, Any]:
        """A one-choice chunk."""
        return self.chunk([self.choice(delta, index, finish_reason)])

    def role(self, index: int = 0) -> dict[str, Any]:
        """The opening chunk: ``{"role": "assistant", "content": ""}``."""
        return self.delta({"role": "assistant", "content": "", "refusal": None}, index)

    def content(self, text: str, index: int = 0) -> dict[str, Any]:
        """A content piece."""
        return self.delta({"content": text}, index)

    def reasoning(self, text: str, index: int = 0) -> dict[str, Any]:
        """A reasoning piece (``delta.reasoning_content``, as DeepSeek/vLLM-style servers send)."""
        return self.delta({"reasoning_content": text}, index)

    def finish(self, finish_reason: str = "stop", index: int = 0) -> dict[str, Any]:
        """The closing chunk of a choice: empty delta, finish_reason set."""
        return self.delta({}, index, finish_reason)

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
        """The usage-only chunk (``choices: []``) sent before ``[DONE]``."""
        return self.chunk([], usage_dict(prompt_tokens, completion_tokens, reasoning_tokens))


def completion_dict(
    text: str | None = DEFAULT_TEXT,
    *,
    model: str = DEFAULT_MODEL,
    id: str = "chatcmpl-fake0000",  # noqa: A002 - OpenAI's field name
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    n: int = 1,
    usage: dict[str, Any] | None = None,
    reasoning_content: str | None = None,
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object (``n`` identical choices)."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning_content is not None:
        message["reasoning_content"] = reasoning_content
    if usage is None:
        completion_tokens = n * len(split_text(text or "")[0])
        usage = usage_dict(10, completion_tokens)
    return {
        "id": id,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {"index": i, "message": dict(message), "logprobs": None, "finish_reason": finish_reason}
            for i in range(n)
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def text_stream_events(
    text: str = DEFAULT_TEXT,
    *,
    factory: ChunkFactory | None = None,
    n: int = 1,
    max_tokens: int | None = None,
    prompt_tokens: int = 10,
    finish: bool = True,
    done: bool = True,
) -> list[Any]:
    """The events of a normal text stream: role, pieces (interleaved over ``n``), finish, [usage], [DONE]."""
    f = factory or ChunkFactory()
    pieces, cut = split_text(text, max_tokens)
    events: list[Any] = [f.role(i) for i in range(n)]
    for piece in pieces:
        events.extend(f.content(piece, i) for i in range(n))
    if finish:
        events.extend(f.finish("length" if cut else "stop", i) for i in range(n))
    if f.include_usage:
        events.append(f.usage_chunk(prompt_tokens, n * len(pieces)))
    if done:
        events.append("[DONE]")
    return events


def tool_call_stream_events(
    calls: list[tuple[str, Any]],
    *,
    factory: ChunkFactory | None = None,
    n: int = 1,
    prompt_tokens: int = 10,
    fragment_size: int = 8,
) -> list[Any]:
    """A streamed tool-call answer, the OpenAI way.

    The first delta of each call carries index, id, type, function.name and empty arguments
    (the very first also carries the role); continuation deltas carry only index and an
    argument fragment. Ends with finish_reason ``tool_calls``.
    """
    f = factory or ChunkFactory()
    events: list[Any] = []
    completion_tokens = 0
    for choice in range(n):
        for call_index, (name, arguments) in enumerate(calls):
            head = {
                "index": call_index,
                "id": _tool_call_id(name, call_index),
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            delta: dict[str, Any] = {"tool_calls": [head]}
            if call_index == 0:
                delta = {"role": "assistant", "content": None, "refusal": None, **delta}
            events.append(f.delta(delta, choice))
            for frag in _fragments(_arguments_json(arguments), fragment_size):
                events.append(f.delta({"tool_calls": [{"index": call_index, "function": {"arguments": frag}}]}, choice))
                completion_tokens += 1
        events.append(f.finish("tool_calls", choice))
    if f.include_usage:
        events.append(f.usage_chunk(prompt_tokens, completion_tokens))
    events.append("[DONE]")
    return events


def _tool_calls_message(calls: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": _tool_call_id(name, i),
            "type": "function",
            "function": {"name": name, "arguments": _arguments_json(args)},
        }
        for i, (name, args) in enumerate(calls)
    ]


# --------------------------------------------------------------------------- the server


class FakeOpenAIServer(LoopbackServer):
    """A loopback server answering ``POST /v1/chat/completions`` and ``GET /v1/models``.

    ``text`` is the answer (or a function of the request JSON returning it). ``tool_calls``
    lists ``(name, arguments)`` to answer with when the request has tools; by default one call
    to the forced or first tool with ``tool_arguments``. ``interval`` sleeps between stream
    chunks. ``api_key``, when set, is required as ``Authorization: Bearer <key>`` (401 otherwise).
    """

    def __init__(
        self,
        text: str | Callable[[dict[str, Any]], str] = DEFAULT_TEXT,
        *,
        models: Iterable[str] = (DEFAULT_MODEL, "gpt-4o"),
        tool_calls: list[tuple[str, Any]] | None = None,
        tool_arguments: Any = None,
        interval: float = 0.0,
        api_key: str | None = None,
    ) -> None:
        super().__init__(self.route)
        self.text = text
        self.models = list(models)
        self.tool_calls = tool_calls
        self.tool_arguments = DEFAULT_TOOL_ARGUMENTS if tool_arguments is None else tool_arguments
        self.interval = interval
        self.api_key = api_key

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """JSON bodies of every chat-completions request, in order."""
        return [r.json() for r in self.requests if r.path in CHAT_PATHS]

    # -- routing --------------------------------------------------------------------------

    def route(self, request: Request) -> Reply:
        """The default handler."""
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return error_reply(401, "Incorrect API key provided.", code="invalid_api_key")
        if request.path in CHAT_PATHS and request.method == "POST":
            return self.chat(request)
        if request.path in MODELS_PATHS and request.method == "GET":
            return Reply.json({"object": "list", "data": [self._model(m) for m in self.models]})
        for prefix in MODELS_PATHS:
            if request.method == "GET" and request.path.startswith(prefix + "/"):
                name = request.path[len(prefix) + 1 :]
                if name in self.models:
                    return Reply.json(self._model(name))
                return error_reply(404, f"The model '{name}' does not exist", code="model_not_found", param="model")
        return error_reply(404, f"Unknown request URL: {request.method} {request.path}", code="unknown_url")

    @staticmethod
    def _model(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": CREATED, "owned_by": "system"}

    def chat(self, request: Request) -> Reply:
        """Answer a chat-completions request from its JSON."""
        try:
            body = request.json()
        except ValueError:
            return error_reply(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return error_reply(400, "Request body must be a JSON object.")
        if not body.get("model"):
            return error_reply(400, "you must provide a model parameter", param="model")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return error_reply(400, "'messages' must be a non-empty array", param="messages")
        model = body["model"]
        n = int(body.get("n") or 1)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        prompt_tokens = _count_prompt_tokens(body["messages"])
        stream_options = body.get("stream_options") or {}
        factory = ChunkFactory(
            model=model,
            id=f"chatcmpl-fake{request.index:04d}",
            include_usage=bool(stream_options.get("include_usage")),
        )
        calls = self._tool_calls_for(body)
        if body.get("stream"):
            if calls:
                events = tool_call_stream_events(calls, factory=factory, n=n, prompt_tokens=prompt_tokens)
            else:
                text = self._text_for(body)
                events = text_stream_events(
                    text, factory=factory, n=n, max_tokens=max_tokens, prompt_tokens=prompt_tokens
                )
            return Reply.sse(events, interval=self.interval)
        if calls:
            tool_calls = _tool_calls_message(calls)
            completion_tokens = n * sum(len(c["function"]["arguments"]) // 4 + 1 for c in tool_calls)
            return Reply.json(
                completion_dict(
                    None,
                    model=model,
                    id=factory.id,
                    finish_reason="tool_calls",
                    tool_calls=tool_calls,
                    n=n,
                    usage=usage_dict(prompt_tokens, completion_tokens),
                )
            )
        pieces, cut = split_text(self._text_for(body), max_tokens)
        return Reply.json(
            completion_dict(
                "".join(pieces),
                model=model,
                id=factory.id,
                finish_reason="length" if cut else "stop",
                n=n,
                usage=usage_dict(prompt_tokens, n * len(pieces)),
            )
        )

    def _text_for(self, body: dict[str, Any]) -> str:
        return self.text(body) if callable(self.text) else self.text

    def _tool_calls_for(self, body: dict[str, Any]) -> list[tuple[str, Any]]:
        tools = body.get("tools") or []
        choice = body.get("tool_choice")
        if not tools or choice == "none":
            return []
        if self.tool_calls is not None:
            return list(self.tool_calls)
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
        else:
            name = (tools[0].get("function") or {}).get("name")
        return [(name or "tool", self.tool_arguments)]


def _count_prompt_tokens(messages: list[Any]) -> int:
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(split_text(content)[0])
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(split_text(part["text"])[0])
        total += 3  # per-message overhead, like OpenAI's accounting
    return max(total, 1)


# --------------------------------------------------------------------------- fault scenarios


def error_reply(
    status: int,
    message: str | None = None,
    *,
    type: str | None = None,  # noqa: A002 - OpenAI's field name
    code: str | None = None,
    param: str | None = None,
    retry_after: float | str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """An HTTP error with an OpenAI error body; ``retry_after`` sets the Retry-After header."""
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
    default_type, default_code = _ERROR_TYPES.get(status, fallback)
    hdrs = dict(headers or {})
    if retry_after is not None:
        hdrs["Retry-After"] = str(retry_after)
    body = error_body(message or f"Fake error {status}", type or default_type, param, code or default_code)
    return Reply.json(body, status=status, headers=hdrs)


def context_length_exceeded_reply(max_context: int = 128000, requested: int = 200000) -> Reply:
    """400 ``context_length_exceeded``, worded as OpenAI does."""
    message = (
        f"This model's maximum context length is {max_context} tokens. However, your messages "
        f"resulted in {requested} tokens. Please reduce the length of the messages."
    )
    return error_reply(400, message, code="context_length_exceeded", param="messages")


def content_policy_reply() -> Reply:
    """400 ``content_policy_violation``."""
    message = "Your request was rejected as a result of our safety system."
    return error_reply(400, message, code="content_policy_violation")


def rate_limit_reply(retry_after: float | str | None = 1, message: str | None = None) -> Reply:
    """429 ``rate_limit_exceeded`` with a Retry-After header."""
    message = message or "Rate limit reached for requests. Please try again in 1s."
    return error_reply(429, message, retry_after=retry_after)


def completion_reply(text: str = DEFAULT_TEXT, model: str = DEFAULT_MODEL, **kwargs: Any) -> Reply:
    """A fixed non-streaming answer (kwargs go to :func:`completion_dict`)."""
    return Reply.json(completion_dict(text, model=model, **kwargs))


def stream_reply(events: Iterable[Any], *, interval: float = 0.0, newline: str = "\n", delay_headers: float = 0.0) -> Reply:
    """An SSE reply from events (dicts, raw str/bytes, "[DONE]", actions)."""
    return Reply.sse(events, interval=interval, newline=newline, delay_headers=delay_headers)


def _default_events(model: str, text: str = DEFAULT_TEXT, include_usage: bool = False, **kwargs: Any) -> list[Any]:
    return text_stream_events(text, factory=ChunkFactory(model=model, include_usage=include_usage), **kwargs)


def slow_headers_reply(delay: float, *, stream: bool = True, model: str = DEFAULT_MODEL) -> Reply:
    """Sleep ``delay`` seconds before the status line, then a normal answer."""
    reply = stream_reply(_default_events(model)) if stream else completion_reply(model=model)
    reply.delay_headers = delay
    return reply


def slow_stream_reply(interval: float, *, text: str = DEFAULT_TEXT, model: str = DEFAULT_MODEL) -> Reply:
    """A normal stream with ``interval`` seconds between chunks."""
    return stream_reply(_default_events(model, text), interval=interval)


def in_band_error_stream(
    message: str = "The server had an error while processing your request.",
    *,
    after_chunks: int = 1,
    type: str = "server_error",  # noqa: A002 - OpenAI's field name
    code: str | None = None,
    done: bool = False,
    model: str = DEFAULT_MODEL,
) -> Reply:
    """A 200 stream that sends ``after_chunks`` chunks, then ``data: {"error": {...}}``."""
    events = _default_events(model)[:after_chunks]
    events.append(error_body(message, type, None, code))
    if done:
        events.append("[DONE]")
    return stream_reply(events)


def dropped_stream(after_chunks: int = 2, *, reset: bool = False, model: str = DEFAULT_MODEL) -> Reply:
    """A stream whose connection is closed abruptly after ``after_chunks`` chunks."""
    return stream_reply([*_default_events(model)[:after_chunks], Drop(reset=reset)])


def hanging_stream(after_chunks: int = 2, *, model: str = DEFAULT_MODEL) -> Reply:
    """A stream that goes silent (socket open) after ``after_chunks`` chunks."""
    return stream_reply([*_default_events(model)[:after_chunks], Hang()])


def malformed_chunk_stream(
    after_chunks: int = 1, *, garbage: bytes = b'data: {"id": "chatcmpl-broken", "choices": [{\n\n', model: str = DEFAULT_MODEL
) -> Reply:
    """A stream with a frame whose JSON is invalid after ``after_chunks`` chunks, then the rest."""
    events = _default_events(model)
    return stream_reply([*events[:after_chunks], garbage, *events[after_chunks:]])


def no_finish_stream(*, done: bool = True, model: str = DEFAULT_MODEL) -> Reply:
    """Content chunks but no chunk with a finish_reason (``[DONE]`` still sent if ``done``)."""
    return stream_reply(_default_events(model, finish=False, done=done))


def no_done_stream(*, model: str = DEFAULT_MODEL) -> Reply:
    """A complete stream (finish_reason included) whose body ends without ``data: [DONE]``."""
    return stream_reply(_default_events(model, done=False))


def repeated_chunk_stream(k: int, piece: str = "Hello", *, finish: bool = True, model: str = DEFAULT_MODEL) -> Reply:
    """The same content chunk (identical bytes) ``k`` times, then finish and ``[DONE]``."""
    f = ChunkFactory(model=model)
    events: list[Any] = [f.role(), *[f.content(piece) for _ in range(k)]]
    if finish:
        events.append(f.finish())
    events.append("[DONE]")
    return stream_reply(events)


def reasoning_stream(
    reasoning: str = "The user greets me. I should greet back.",
    text: str = DEFAULT_TEXT,
    *,
    include_usage: bool = True,
    model: str = DEFAULT_MODEL,
) -> Reply:
    """``delta.reasoning_content`` pieces first, then content pieces, finish, usage, ``[DONE]``."""
    f = ChunkFactory(model=model, include_usage=include_usage)
    r_pieces, c_pieces = split_text(reasoning)[0], split_text(text)[0]
    events: list[Any] = [f.role()]
    events += [f.reasoning(p) for p in r_pieces]
    events += [f.content(p) for p in c_pieces]
    events.append(f.finish())
    if include_usage:
        events.append(f.usage_chunk(10, len(r_pieces) + len(c_pieces), reasoning_tokens=len(r_pieces)))
    events.append("[DONE]")
    return stream_reply(events)


def usage_stream(
    prompt_tokens: int = 10, *, text: str = DEFAULT_TEXT, model: str = DEFAULT_MODEL
) -> Reply:
    """A normal stream with ``usage: null`` on every chunk and a final usage chunk."""
    return stream_reply(_default_events(model, text, include_usage=True, prompt_tokens=prompt_tokens))


def crlf_stream(*, model: str = DEFAULT_MODEL) -> Reply:
    """A normal stream framed with ``\\r\\n`` line endings."""
    return stream_reply(_default_events(model), newline="\r\n")


def ping_stream(every: int = 1, *, comment: str = ": ping\n\n", model: str = DEFAULT_MODEL) -> Reply:
    """A normal stream with an SSE comment before the first chunk and after every ``every`` chunks."""
    events: list[Any] = [comment]
    for i, event in enumerate(_default_events(model), 1):
        events.append(event)
        if i % every == 0 and event != "[DONE]":
            events.append(comment)
    return stream_reply(events)


def tool_call_stream(
    calls: list[tuple[str, Any]] | None = None, *, include_usage: bool = False, model: str = DEFAULT_MODEL
) -> Reply:
    """A streamed tool-call answer (default: one ``get_weather`` call)."""
    calls = calls or [("get_weather", DEFAULT_TOOL_ARGUMENTS)]
    return stream_reply(tool_call_stream_events(calls, factory=ChunkFactory(model=model, include_usage=include_usage)))

