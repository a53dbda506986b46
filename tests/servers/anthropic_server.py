"""A fake Anthropic Messages API server on top of :mod:`servers.loopback`.

Shapes follow Anthropic's public API reference: ``POST /v1/messages`` with ``x-api-key`` and
``anthropic-version`` headers; a ``message`` object with ``content`` blocks (``text``,
``tool_use``, ``thinking``), ``stop_reason`` and ``usage``; streams as named SSE events
(``event: message_start`` … ``event: message_stop``, ``event: ping``, ``event: error``); error
bodies ``{"type": "error", "error": {"type", "message"}}``.

The fake validates what the real API rejects (missing ``max_tokens``, non-alternating roles, a
``tool_result`` without its ``tool_use``, ``system`` inside ``messages``) with a 400, so a
translation bug fails a test instead of passing silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from servers.loopback import Drop, Hang, LoopbackServer, Reply, Request
from servers.openai_server import DEFAULT_TEXT, split_text

__all__ = [
    "FakeAnthropicServer",
    "DEFAULT_THINKING",
    "anthropic_error_body",
    "anthropic_error_reply",
    "message_dict",
    "message_events",
    "event_frame",
    "anthropic_stream_reply",
    "stream_error_events",
]

DEFAULT_THINKING = "The user greets me. I should greet back."
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxsig=="
MESSAGES_PATH = "/v1/messages"

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def anthropic_error_body(message: str, type: str = "invalid_request_error") -> dict[str, Any]:  # noqa: A002
    return {"type": "error", "error": {"type": type, "message": message}, "request_id": "req_fake0001"}


def anthropic_error_reply(
    status: int, message: str | None = None, *, type: str | None = None, retry_after: float | None = None  # noqa: A002
) -> Reply:
    headers = {"request-id": "req_fake0001"}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    etype = type or _TYPES.get(status, "api_error")
    return Reply.json(anthropic_error_body(message or f"Fake {etype}", etype), status=status, headers=headers)


def _usage(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_creation: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output_tokens,
    }


def message_dict(
    content: list[dict[str, Any]],
    *,
    model: str,
    stop_reason: str = "end_turn",
    input_tokens: int = 10,
    output_tokens: int = 8,
    cache_read: int = 0,
    id: str = "msg_fake0001",  # noqa: A002
) -> dict[str, Any]:
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(input_tokens, output_tokens, cache_read),
    }


def event_frame(data: dict[str, Any]) -> bytes:
    """One named SSE event, as Anthropic sends them (``event:`` line = the data's ``type``)."""
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def message_events(
    content: list[dict[str, Any]],
    *,
    model: str,
    stop_reason: str = "end_turn",
    input_tokens: int = 10,
    output_tokens: int = 8,
    cache_read: int = 0,
    id: str = "msg_fake0001",  # noqa: A002
    json_fragment: int = 7,
) -> list[dict[str, Any]]:
    """The event sequence that streams ``content`` (text by word, tool input by fragments)."""
    start = message_dict([], model=model, stop_reason=None, input_tokens=input_tokens, output_tokens=1,  # type: ignore[arg-type]
                         cache_read=cache_read, id=id)
    start["stop_reason"] = None
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(content):
        btype = block["type"]
        if btype == "text":
            events.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            for piece in split_text(block["text"])[0]:
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": piece}})
        elif btype == "tool_use":
            events.append({"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
            text = json.dumps(block["input"], separators=(",", ":"))
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": ""}})
            for i in range(0, len(text), json_fragment):
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": text[i:i + json_fragment]}})
        elif btype == "thinking":
            events.append({"type": "content_block_start", "index": index,
                           "content_block": {"type": "thinking", "thinking": ""}})
            for piece in split_text(block["thinking"])[0]:
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "thinking_delta", "thinking": piece}})
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "signature_delta", "signature": block["signature"]}})
        elif btype == "redacted_thinking":
            events.append({"type": "content_block_start", "index": index, "content_block": block})
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                   "usage": {"output_tokens": output_tokens}})
    events.append({"type": "message_stop"})
    return events


def anthropic_stream_reply(events: Iterable[Any], *, interval: float = 0.0) -> Reply:
    """An SSE reply; dict events become named event frames, bytes and actions pass through."""
    parts = [event_frame(e) if isinstance(e, dict) else e for e in events]
    return Reply.stream(parts, content_type="text/event-stream; charset=utf-8", interval=interval,
                        headers={"Cache-Control": "no-cache", "request-id": "req_fake0001"})


def stream_error_events(
    etype: str = "overloaded_error", message: str = "Overloaded", *, after_text: str = "Hello there",
    model: str = "claude-sonnet-4-5",
) -> list[Any]:
    """A stream that starts a text block, then sends ``event: error``."""
    events = message_events([{"type": "text", "text": after_text}], model=model)
    head = events[: 3 + len(split_text(after_text)[0])]
    return [*head, {"type": "error", "error": {"type": etype, "message": message}}]


class FakeAnthropicServer(LoopbackServer):
    """Answers ``POST /v1/messages``; ``api_key`` (when set) is required as ``x-api-key``.

    The answer: a ``tool_use`` of the forced or first tool when tools are given (input
    ``tool_input``), else ``text``; a thinking block first when ``thinking`` is enabled.
    Every request is validated as the real API does.
    """

    def __init__(
        self,
        text: str = DEFAULT_TEXT,
        *,
        api_key: str | None = "sk-ant-test",
        tool_input: Any = None,
        thinking: str = DEFAULT_THINKING,
    ) -> None:
        super().__init__(self.route)
        self.text = text
        self.api_key = api_key
        self.tool_input = {"location": "Paris, France", "unit": "celsius"} if tool_input is None else tool_input
        self.thinking = thinking

    def route(self, request: Request) -> Reply:
        if request.path != MESSAGES_PATH or request.method != "POST":
            return anthropic_error_reply(404, f"Not found: {request.method} {request.path}")
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return anthropic_error_reply(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return anthropic_error_reply(400, "anthropic-version: header is required")
        try:
            body = request.json()
        except ValueError:
            return anthropic_error_reply(400, "There was an error parsing the body of your request")
        problem = validate(body)
        if problem:
            return anthropic_error_reply(400, problem)
        content, stop_reason = self.answer(body)
        input_tokens = max(1, len(json.dumps(body["messages"])) // 4)
        output_tokens = sum(len(split_text(b.get("text") or b.get("thinking") or json.dumps(b.get("input")))[0])
                            for b in content)
        if body.get("stream"):
            return anthropic_stream_reply(message_events(content, model=body["model"], stop_reason=stop_reason,
                                                         input_tokens=input_tokens, output_tokens=output_tokens))
        return Reply.json(message_dict(content, model=body["model"], stop_reason=stop_reason,
                                       input_tokens=input_tokens, output_tokens=output_tokens))

    def answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        content: list[dict[str, Any]] = []
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            content.append({"type": "thinking", "thinking": self.thinking, "signature": SIGNATURE})
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {"type": "auto"}
        if tools and choice.get("type") != "none":
            name = choice.get("name") if choice.get("type") == "tool" else tools[0]["name"]
            tool_input = self.tool_input
            if name == "json_tool_call":
                tool_input = {"answer": self.text}
            content.append({"type": "tool_use", "id": "toolu_fake0001", "name": name, "input": tool_input})
            return content, "tool_use"
        pieces, cut = split_text(self.text, body["max_tokens"])
        content.append({"type": "text", "text": "".join(pieces)})
        return content, "max_tokens" if cut else "end_turn"


def validate(body: Any) -> str | None:
    """What the real Messages API would reject (a 400 message), or None."""
    if not isinstance(body, dict):
        return "body: Input should be an object"
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            return f"{field}: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: Input should be a positive integer"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    tool_ids: set[str] = set()
    previous = None
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if role == previous:
            return f"messages: roles must alternate between \"user\" and \"assistant\" (messages.{i})"
        previous = role
        content = message.get("content")
        if isinstance(content, str):
            if not content and role == "user":
                return f"messages.{i}: user messages must have non-empty content"
            continue
        if not isinstance(content, list) or not content:
            return f"messages.{i}.content: must be a string or a non-empty list"
        for j, block in enumerate(content):
            btype = block.get("type")
            if btype == "text" and not block.get("text"):
                return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
            if btype == "tool_use":
                if role != "assistant" or not isinstance(block.get("input"), dict):
                    return f"messages.{i}.content.{j}: invalid tool_use block"
                tool_ids.add(block.get("id"))
            if btype == "tool_result":
                if role != "user" or block.get("tool_use_id") not in tool_ids:
                    return f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks"
            if btype == "image":
                source = block.get("source") or {}
                if source.get("type") not in ("base64", "url"):
                    return f"messages.{i}.content.{j}.image.source: invalid"
                if source["type"] == "base64" and not source.get("media_type", "").startswith("image/"):
                    return f"messages.{i}.content.{j}.image.source.media_type: invalid"
    if body.get("tool_choice") and body["tool_choice"].get("type") in ("tool", "any"):
        if not body.get("tools"):
            return "tool_choice may only be specified while providing tools"
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            return "Thinking may not be enabled when tool_choice forces tool use."
    for tool in body.get("tools") or ():
        if "input_schema" not in tool and "type" not in tool:
            return "tools.0.input_schema: Field required"
    return None


__all__ += ["Drop", "Hang", "validate", "SIGNATURE"]
