"""``/v1/messages`` and ``/v1/messages/count_tokens``: Anthropic's Messages API.

Requests become chat-completions calls; answers go back as Anthropic ``message`` objects,
streams as Anthropic's exact event sequence (``message_start``, ``ping``,
``content_block_start``/``delta``/``stop`` per block, ``message_delta`` with the stop reason and
usage, ``message_stop``), errors as ``{"type": "error", "error": {...}}``.

Thinking survives the round trip: the canonical shape carries Anthropic thinking blocks with
their signatures (``thinking_blocks``), which the Anthropic provider sends back unchanged, so a
Claude upstream sees exactly the blocks it produced.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson

from ...exceptions import LLMRelayError
from .. import errors
from . import CanonicalRequest, Ingress, IngressError, Redact, StreamEncoder
from .chat import take_model, take_stream

__all__ = ["MessagesIngress", "CountTokensIngress", "to_chat", "to_message", "MessagesEncoder"]

_dumps = orjson.dumps
log = logging.getLogger("llmrelay.proxy")

#: HTTP status → Anthropic's error type.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                 "function_call": "tool_use", "content_filter": "refusal"}

#: Anthropic request keys → chat-completions keys of the same meaning.
_SAME = ("temperature", "top_p", "thinking", "service_tier")


def anthropic_error_json(status: int, message: str) -> bytes:
    etype = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return _dumps({"type": "error", "error": {"type": etype, "message": message}})


def _fail(message: str, param: str | None = None) -> IngressError:
    return IngressError(message, param=param)


# ====================================================================== request
def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source.get('data') or ''}"
    elif kind == "url":
        url = source.get("url") or ""
    else:
        raise _fail(f"image source type {kind!r} is not supported (use 'base64' or 'url').", "messages")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "text":
        return {"type": "text", "text": source.get("data") or ""}
    if kind == "base64":
        data = f"data:{source.get('media_type') or 'application/pdf'};base64,{source.get('data') or ''}"
        return {"type": "file", "file": {"file_data": data}}
    if kind == "url":
        return {"type": "file", "file": {"file_data": source.get("url") or ""}}
    raise _fail(f"document source type {kind!r} is not supported.", "messages")


def _user_parts(blocks: list[Any], where: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tool messages, content parts) of a user turn's blocks."""
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        if type(block) is not dict:
            raise _fail(f"{where}.content.{i}: a content block must be an object.", "messages")
        btype = block.get("type")
        if btype == "text":
            parts.append({"type": "text", "text": block.get("text") or ""})
        elif btype == "image":
            parts.append(_image_part(block))
        elif btype == "document":
            parts.append(_document_part(block))
        elif btype == "tool_result":
            tools.append(_tool_message(block))
        elif btype in ("thinking", "redacted_thinking"):
            continue  # only meaningful in assistant turns
        else:
            raise _fail(f"{where}.content.{i}: content block type {btype!r} is not supported here.", "messages")
    return tools, parts


def _tool_message(block: dict[str, Any]) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        parts = []
        for item in content:
            if isinstance(item, dict) and item.get("type") == "image":
                parts.append(_image_part(item))
            elif isinstance(item, dict):
                texts.append(item.get("text") or "")
        content = "".join(texts) if not parts else [{"type": "text", "text": "".join(texts)}, *parts]
    elif content is None:
        content = ""
    message: dict[str, Any] = {"role": "tool", "tool_call_id": block.get("tool_use_id") or "", "content": content}
    if block.get("is_error"):
        message["is_error"] = True
    return message


def _assistant_message(blocks: list[Any], where: str) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for i, block in enumerate(blocks):
        if type(block) is not dict:
            raise _fail(f"{where}.content.{i}: a content block must be an object.", "messages")
        btype = block.get("type")
        if btype == "text":
            text.append(block.get("text") or "")
        elif btype == "tool_use":
            calls.append({"id": block.get("id") or "", "type": "function",
                          "function": {"name": block.get("name") or "",
                                       "arguments": _dumps(block.get("input") or {}).decode()}})
        elif btype == "thinking":
            thinking.append({"type": "thinking", "thinking": block.get("thinking") or "",
                             "signature": block.get("signature")})
            reasoning.append(block.get("thinking") or "")
        elif btype == "redacted_thinking":
            thinking.append({"type": "redacted_thinking", "data": block.get("data")})
        else:
            raise _fail(f"{where}.content.{i}: content block type {btype!r} is not supported here.", "messages")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["thinking_blocks"] = thinking
        message["reasoning_content"] = "".join(reasoning)
    return message


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(b.get("text") or "" for b in system if isinstance(b, dict))
    raise _fail("system: must be a string or an array of text blocks.", "system")


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _fail("tools: must be an array.", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _fail(f"tools.{i}: a tool needs a 'name'.", "tools")
        if tool.get("type") not in (None, "custom"):
            # Anthropic's server tools (web search, code execution…) run on Anthropic's side; a
            # chat upstream has none, so the model simply does not get them (Claude Code copes).
            log.debug("dropping Anthropic server tool %r (no chat-completions equivalent)", tool.get("type"))
            continue
        function = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, params: dict[str, Any]) -> None:
    if not isinstance(choice, dict):
        raise _fail("tool_choice: must be an object like {\"type\": \"auto\"}.", "tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        params["tool_choice"] = "auto"
    elif kind == "any":
        params["tool_choice"] = "required"
    elif kind == "none":
        params["tool_choice"] = "none"
    elif kind == "tool":
        params["tool_choice"] = {"type": "function", "function": {"name": choice.get("name") or ""}}
    else:
        raise _fail(f"tool_choice.type: {kind!r} is not one of auto, any, tool, none.", "tool_choice")
    if choice.get("disable_parallel_tool_use") and kind != "none":
        params["parallel_tool_calls"] = False


def to_chat(data: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(messages, params) of the chat-completions call for a Messages request body.

    ``data`` is consumed: keys Anthropic defines are translated, unknown keys refused.
    """
    messages_in = data.pop("messages", None)
    if not isinstance(messages_in, list) or not messages_in:
        raise _fail("messages: Field required (a non-empty array).", "messages")
    messages: list[dict[str, Any]] = []
    system = data.pop("system", None)
    if system:
        messages.append({"role": "system", "content": _system_text(system)})
    for i, message in enumerate(messages_in):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise _fail(f"{where}: must be an object.", "messages")
        role = message.get("role")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise _fail(f"{where}.content: must be a string or an array of content blocks.", "messages")
        if role == "user":
            tools, parts = _user_parts(blocks, where)
            messages.extend(tools)
            if parts:
                only_text = all(p["type"] == "text" for p in parts)
                messages.append({"role": "user",
                                 "content": "".join(p["text"] for p in parts) if only_text else parts})
        elif role == "assistant":
            messages.append(_assistant_message(blocks, where))
        else:
            raise _fail(f"{where}.role: Input should be 'user' or 'assistant'.", "messages")
    params: dict[str, Any] = {}
    max_tokens = data.pop("max_tokens", None)
    if max_tokens is None:
        raise _fail("max_tokens: Field required.", "max_tokens")
    params["max_tokens"] = max_tokens
    for key in _SAME:
        value = data.pop(key, None)
        if value is not None:
            params[key] = value
    stop = data.pop("stop_sequences", None)
    if stop:
        params["stop"] = stop
    # metadata.user_id (Claude Code always sends one) is not made OpenAI's ``user``: several
    # providers refuse that parameter, and it is only the client's tracking id.
    tools = data.pop("tools", None)
    tools = _tools(tools) if tools else None
    if tools:
        params["tools"] = tools
    choice = data.pop("tool_choice", None)
    if choice is not None and tools:
        _tool_choice(choice, params)
    # Whatever else a client sends (context_management, container, …) has no chat equivalent
    # and is left out: lenient with the client, strict with what goes upstream.
    return messages, params


# ====================================================================== answer
def _usage(usage: Any) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    get = usage.get if isinstance(usage, dict) else usage.__dict__.get
    details = get("prompt_tokens_details")
    cached = 0
    if details is not None:
        cached = (details.get if isinstance(details, dict) else details.__dict__.get)("cached_tokens") or 0
    out = {"input_tokens": max((get("prompt_tokens") or 0) - cached, 0), "output_tokens": get("completion_tokens") or 0}
    if cached:
        out["cache_read_input_tokens"] = cached
    created = get("cache_creation_input_tokens")
    if created:
        out["cache_creation_input_tokens"] = created
    return out


def _arguments(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"_raw": text}


def _message_id(response_id: Any) -> str:
    return "msg_" + (response_id.removeprefix("chatcmpl-") if isinstance(response_id, str) and response_id
                     else uuid.uuid4().hex)


def to_message(result: Any, model: str) -> dict[str, Any]:
    """A ``message`` object for a non-streamed chat completion."""
    choice = result.choices[0]
    message = choice.message
    content: list[dict[str, Any]] = []
    blocks = message.__dict__.get("thinking_blocks")
    if blocks:
        for block in blocks:
            content.append(dict(block))
    elif message.__dict__.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": message.reasoning_content, "signature": ""})
    if message.content:
        content.append({"type": "text", "text": message.content})
    for call in message.__dict__.get("tool_calls") or ():
        function = call.function
        content.append({"type": "tool_use", "id": call.id, "name": function.name,
                        "input": _arguments(function.arguments)})
    return {
        "id": _message_id(result.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _STOP_REASONS.get(choice.finish_reason or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": _usage(result.__dict__.get("usage")),
    }


def _event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + _dumps(data) + b"\n\n"


class MessagesEncoder(StreamEncoder):
    """Chat chunks → Anthropic stream events; one open content block at a time."""

    __slots__ = ("model", "index", "open", "tool_blocks", "stop_reason", "usage", "failed", "started")

    def __init__(self, model: str) -> None:
        self.model = model
        self.index = -1
        self.open: str | None = None  # "text" | "thinking" | "tool:<n>"
        self.tool_blocks: dict[int, int] = {}
        self.stop_reason = "end_turn"
        self.usage: Any = None
        self.failed = False
        self.started = False

    def _start(self, chunk: Any) -> bytes:
        self.started = True
        message = {"id": _message_id(chunk.id), "type": "message", "role": "assistant", "model": self.model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0}}
        return (_event(b"message_start", {"type": "message_start", "message": message})
                + _event(b"ping", {"type": "ping"}))

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return _event(b"content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index += 1
        self.open = kind
        return out + _event(b"content_block_start", {"type": "content_block_start", "index": self.index,
                                                      "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event(b"content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def chunk(self, chunk: Any) -> bytes:
        out = b"" if self.started else self._start(chunk)
        usage = chunk.__dict__.get("usage")
        if usage is not None:
            self.usage = usage
        for choice in chunk.choices:
            delta = choice.delta.__dict__
            reasoning = delta.get("reasoning_content")
            if reasoning:
                if self.open != "thinking":
                    out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                out += self._delta({"type": "thinking_delta", "thinking": reasoning})
            for block in delta.get("thinking_blocks") or ():
                out += self._thinking_block(block)
            text = delta.get("content")
            if text:
                if self.open != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                out += self._delta({"type": "text_delta", "text": text})
            for call in delta.get("tool_calls") or ():
                out += self._tool_delta(call)
            if choice.finish_reason:
                self.stop_reason = _STOP_REASONS.get(choice.finish_reason, "end_turn")
        return out

    def _thinking_block(self, block: dict[str, Any]) -> bytes:
        """A finished thinking block (its signature), or a redacted one."""
        if block.get("type") == "redacted_thinking":
            out = self._open("redacted", {"type": "redacted_thinking", "data": block.get("data") or ""})
            return out + self._close()
        out = b""
        if self.open != "thinking":  # the whole block arrived at once
            out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if block.get("thinking"):
                out += self._delta({"type": "thinking_delta", "thinking": block["thinking"]})
        if block.get("signature"):
            out += self._delta({"type": "signature_delta", "signature": block["signature"]})
        return out + self._close()

    def _tool_delta(self, call: Any) -> bytes:
        index = call.index or 0
        function = call.function
        out = b""
        if index not in self.tool_blocks or self.open != f"tool:{index}":
            if index not in self.tool_blocks:
                out += self._open(f"tool:{index}", {"type": "tool_use", "id": call.id or f"toolu_{uuid.uuid4().hex[:24]}",
                                                    "name": (function.name if function else None) or "", "input": {}})
                self.tool_blocks[index] = self.index
            else:  # interleaved with another block: Anthropic cannot reopen a block
                return b""
        arguments = function.arguments if function is not None else None
        if arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": arguments})
        return out

    def error(self, exc: BaseException, redact: Redact, **options: Any) -> bytes:
        self.failed = True
        status = errors.status_of(exc)
        message = redact(errors.client_message(exc, options.get("request_id"), prefix=False)) \
            if isinstance(exc, LLMRelayError) else "Internal error in the gateway (see its log)."
        etype = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return _event(b"error", {"type": "error", "error": {"type": etype, "message": message}})

    def end(self) -> bytes:
        if self.failed:
            return b""
        out = b"" if self.started else self._start(_Empty)
        out += self._close()
        usage = _usage(self.usage)
        out += _event(b"message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                                         "usage": usage})
        return out + _event(b"message_stop", {"type": "message_stop"})


class _Empty:
    id = None


class MessagesIngress(Ingress):
    """Anthropic's ``POST /v1/messages``."""

    name = "anthropic messages"
    summary = "Anthropic Messages API (translated; stream=true gives Anthropic's event stream)"
    paths = frozenset({"/v1/messages", "/messages"})

    def parse(self, data: dict[str, Any]) -> CanonicalRequest:
        model = take_model(data)
        stream = take_stream(data)
        messages, params = to_chat(data)
        if stream:
            params["stream_options"] = {"include_usage": True}
        return CanonicalRequest(model, messages, stream, params)

    def error_body(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                   type: str | None = None) -> bytes:  # noqa: A002
        return anthropic_error_json(status, message)

    def exception(self, exc: BaseException, redact: Redact, **options: Any) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        status, _, headers = errors.status_and_body(exc, redact, **options)
        if isinstance(exc, LLMRelayError):
            message = redact(errors.client_message(exc, options.get("request_id"), prefix=False))
        else:
            message = "Internal error in the gateway (see its log)."
        return status, anthropic_error_json(status, message), headers

    def response_body(self, result: Any, request: CanonicalRequest) -> bytes:
        return _dumps(to_message(result, request.model))

    def encoder(self, request: CanonicalRequest) -> StreamEncoder:
        return MessagesEncoder(request.model)


class CountTokensIngress(MessagesIngress):
    """``POST /v1/messages/count_tokens``: counted offline, no upstream call."""

    name = "anthropic count_tokens"
    summary = "Anthropic token counting (offline, no upstream call)"
    paths = frozenset({"/v1/messages/count_tokens", "/messages/count_tokens"})

    def parse(self, data: dict[str, Any]) -> CanonicalRequest:
        model = take_model(data)
        data.setdefault("max_tokens", 1)
        messages, params = to_chat(data)
        return CanonicalRequest(model, messages, False, {}, kind="count_tokens",
                                input={"tools": params.get("tools")})

    def response_body(self, result: Any, request: CanonicalRequest) -> bytes:
        return _dumps({"input_tokens": result})
