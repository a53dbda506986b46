"""A fake Cohere Chat API v2 (``POST /v2/chat``), on top of :mod:`servers.loopback`.

Shapes follow Cohere's v2 reference and streaming guides:

* request: ``model``, ``messages`` (``system``/``user``/``assistant``/``tool``; user content a
  string or parts ``{"type": "text"}`` / ``{"type": "image_url"}``; assistant ``tool_plan`` and
  ``tool_calls``; tool results ``{"role": "tool", "tool_call_id", "content"}``), ``tools``
  (OpenAI's shape), ``stream``, ``max_tokens``, ``thinking``;
* answer: ``{"id", "finish_reason": "COMPLETE" | "MAX_TOKENS" | "TOOL_CALL", "message":
  {"role": "assistant", "content": [{"type": "text", "text"}, {"type": "thinking", "thinking"}],
  "tool_plan", "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}]},
  "usage": {"billed_units": {"input_tokens", "output_tokens"}, "tokens": {...}}}``;
* stream: SSE, ``event: <type>`` + ``data: {"type": <type>, ...}`` for message-start,
  content-start/delta/end, tool-plan-delta, tool-call-start/delta/end, citation-start/end and
  message-end (``delta.finish_reason``, ``delta.usage``);
* errors: ``{"id": "...", "message": "..."}`` with the HTTP status.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from servers._answers import Answer, Ask, answer
from servers.loopback import Drop, LoopbackServer, Reply, Request
from servers.openai_server import DEFAULT_TEXT

__all__ = [
    "FakeCohereServer",
    "DEFAULT_COHERE_MODEL",
    "cohere_events",
    "cohere_sse",
    "cohere_error_reply",
    "dropped_cohere_stream",
]

DEFAULT_COHERE_MODEL = "command-a-03-2025"
MESSAGE_ID = "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
TOOL_PLAN = "I will look up the weather."


def cohere_sse(events: Iterable[Any]) -> Reply:
    frames = []
    for event in events:
        if isinstance(event, dict):
            frames.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        else:
            frames.append(event)
    return Reply.stream(frames, content_type="text/event-stream")


def _usage(input_tokens: int, output_tokens: int) -> dict:
    return {
        "billed_units": {"input_tokens": input_tokens - 5, "output_tokens": output_tokens},
        "tokens": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def _reason(ans: Answer) -> str:
    return "TOOL_CALL" if ans.tool_calls else "MAX_TOKENS" if ans.truncated else "COMPLETE"


def cohere_events(ans: Answer, input_tokens: int = 30, finish_reason: str | None = None, citations: bool = False) -> list[dict]:
    """The stream events of an answer."""
    events: list[dict] = [{"id": MESSAGE_ID, "type": "message-start", "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}]
    index = 0
    if ans.thinking:
        events.append({"type": "content-start", "index": index, "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}})
        for piece in ans.thinking_pieces:
            events.append({"type": "content-delta", "index": index, "delta": {"message": {"content": {"thinking": piece}}}})
        events.append({"type": "content-end", "index": index})
        index += 1
    if ans.text:
        events.append({"type": "content-start", "index": index, "delta": {"message": {"content": {"type": "text", "text": ""}}}})
        for piece in ans.pieces:
            events.append({"type": "content-delta", "index": index, "delta": {"message": {"content": {"text": piece}}}})
        events.append({"type": "content-end", "index": index})
    if citations:
        citation = {"start": 0, "end": 5, "text": ans.text[:5], "sources": [{"type": "document", "id": "doc:0", "document": {"id": "doc:0", "text": "x"}}], "type": "TEXT_CONTENT"}
        events.append({"type": "citation-start", "index": 0, "delta": {"message": {"citations": citation}}})
        events.append({"type": "citation-end", "index": 0})
    if ans.tool_calls:
        for word in TOOL_PLAN.split(" "):
            events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": word + " "}}})
    for i, (name, args) in enumerate(ans.tool_calls):
        events.append({"type": "tool-call-start", "index": i, "delta": {"message": {"tool_calls": {
            "id": f"{name}_{i}k3vbcf2x", "type": "function", "function": {"name": name, "arguments": ""}}}}})
        text = json.dumps(args)
        for j in range(0, len(text), 6):
            events.append({"type": "tool-call-delta", "index": i, "delta": {"message": {"tool_calls": {"function": {"arguments": text[j : j + 6]}}}}})
        events.append({"type": "tool-call-end", "index": i})
    output = len(ans.pieces) + len(ans.thinking_pieces) + 5 * len(ans.tool_calls)
    events.append({"type": "message-end", "delta": {"finish_reason": finish_reason or _reason(ans), "usage": _usage(input_tokens, output)}})
    return events


def cohere_error_reply(status: int, message: str) -> Reply:
    return Reply.json({"id": "a1b2c3d4-0000-4000-8000-000000000000", "message": message}, status=status)


def dropped_cohere_stream(after: int = 4) -> Reply:
    return cohere_sse([*cohere_events(answer(Ask()))[:after], Drop()])


class FakeCohereServer(LoopbackServer):
    """Answers ``POST /v2/chat`` by the shared rules in :mod:`servers._answers`."""

    def __init__(self, text: str = DEFAULT_TEXT, *, api_key: str | None = "co-test-key",
                 models: Iterable[str] = (DEFAULT_COHERE_MODEL, "command-r-plus-08-2024", "command-a-vision-07-2025", "command-a-reasoning-08-2025")) -> None:
        super().__init__(self.route)
        self.text = text
        self.api_key = api_key
        self.models = set(models)

    def route(self, request: Request) -> Reply:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return cohere_error_reply(401, "invalid api token")
        if request.method != "POST" or request.path != "/v2/chat":
            return cohere_error_reply(404, f"{request.path} not found")
        body = request.json()
        if body.get("model") not in self.models:
            return cohere_error_reply(404, f"model '{body.get('model')}' not found, make sure the correct model ID was used and that you have access to the model.")
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        content = last.get("content")
        ask = Ask(
            tools=[t["function"]["name"] for t in body.get("tools") or []],
            tool_result=content if last.get("role") == "tool" else None,
            images=sum(1 for p in content if p.get("type") == "image_url") if isinstance(content, list) else 0,
            thinking=(body.get("thinking") or {}).get("type") == "enabled",
            max_tokens=body.get("max_tokens"),
        )
        ans = answer(ask, self.text)
        input_tokens = sum(len(json.dumps(m).split()) for m in messages) + 20
        if body.get("stream"):
            return cohere_sse(cohere_events(ans, input_tokens))
        message: dict[str, Any] = {"role": "assistant", "content": []}
        if ans.thinking:
            message["content"].append({"type": "thinking", "thinking": ans.thinking})
        if ans.text:
            message["content"].append({"type": "text", "text": ans.text})
        if ans.tool_calls:
            message["tool_plan"] = TOOL_PLAN
            message["tool_calls"] = [
                {"id": f"{name}_{i}k3vbcf2x", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for i, (name, args) in enumerate(ans.tool_calls)
            ]
        output = len(ans.pieces) + len(ans.thinking_pieces) + 5 * len(ans.tool_calls)
        return Reply.json({"id": MESSAGE_ID, "finish_reason": _reason(ans), "message": message, "usage": _usage(input_tokens, output)})
