"""A fake Ollama server (``POST /api/chat``), on top of :mod:`servers.loopback`.

Shapes follow Ollama's API reference (docs/api.md, "Generate a chat completion"):

* request: ``model``, ``messages`` (``role``, ``content``, ``images`` base64 list, ``tool_calls``
  with ``function.arguments`` as an object, ``tool_name`` on tool results), ``tools``,
  ``format``, ``options``, ``stream`` (default **true**), ``keep_alive``, ``think``;
* streamed answer: ``application/x-ndjson``, one object per line
  ``{"model", "created_at", "message": {"role": "assistant", "content": "..."}, "done": false}``,
  ``message.thinking`` pieces when thinking, the tool calls as one line with whole
  ``message.tool_calls`` objects, and a last line with ``"done": true``, ``done_reason``,
  ``total_duration``, ``load_duration``, ``prompt_eval_count``, ``prompt_eval_duration``,
  ``eval_count``, ``eval_duration``;
* non-streamed answer: the same object once, with the whole message;
* errors: ``{"error": "..."}`` with the HTTP status (404 ``model "x" not found, try pulling it
  first``); inside a stream an ``{"error": "..."}`` line.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from servers._answers import Answer, Ask, answer
from servers.loopback import Drop, LoopbackServer, Reply, Request
from servers.openai_server import DEFAULT_TEXT

__all__ = [
    "FakeOllamaServer",
    "DEFAULT_OLLAMA_MODEL",
    "ollama_error_reply",
    "ollama_stream_lines",
    "ollama_stream_reply",
    "in_stream_error_reply",
    "dropped_ollama_stream",
]

DEFAULT_OLLAMA_MODEL = "llama3.2"
CREATED_AT = "2024-07-22T20:33:28.123648Z"


def _line(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _base(model: str) -> dict[str, Any]:
    return {"model": model, "created_at": CREATED_AT}


def _final(model: str, done_reason: str, prompt: int, completion: int, message: dict | None = None) -> dict:
    out = _base(model)
    out["message"] = message or {"role": "assistant", "content": ""}
    out.update(
        done=True,
        done_reason=done_reason,
        total_duration=4883583458,
        load_duration=1334875,
        prompt_eval_count=prompt,
        prompt_eval_duration=342546000,
        eval_count=completion,
        eval_duration=4535599000,
    )
    return out


def _tool_calls(ans: Answer, ids: bool) -> list[dict]:
    calls = []
    for i, (name, args) in enumerate(ans.tool_calls):
        call: dict[str, Any] = {"function": {"name": name, "arguments": args}}
        if ids:
            call["id"] = f"call_ollama{i}"
            call["function"]["index"] = i
        calls.append(call)
    return calls


def ollama_stream_lines(ans: Answer, model: str = DEFAULT_OLLAMA_MODEL, prompt: int = 26, ids: bool = False) -> list[bytes]:
    """The NDJSON lines of a streamed answer."""
    lines = []
    for piece in ans.thinking_pieces:
        lines.append(_line({**_base(model), "message": {"role": "assistant", "content": "", "thinking": piece}, "done": False}))
    for piece in ans.pieces:
        lines.append(_line({**_base(model), "message": {"role": "assistant", "content": piece}, "done": False}))
    if ans.tool_calls:
        message = {"role": "assistant", "content": "", "tool_calls": _tool_calls(ans, ids)}
        lines.append(_line({**_base(model), "message": message, "done": False}))
    completion = len(ans.pieces) + len(ans.thinking_pieces) + 5 * len(ans.tool_calls)
    lines.append(_line(_final(model, "length" if ans.truncated else "stop", prompt, completion)))
    return lines


def ollama_stream_reply(lines: Iterable[Any]) -> Reply:
    return Reply.stream(list(lines), content_type="application/x-ndjson")


def ollama_error_reply(status: int, message: str) -> Reply:
    """An HTTP error with Ollama's ``{"error": "..."}`` body."""
    return Reply.json({"error": message}, status=status)


def in_stream_error_reply(message: str = "an error was encountered while running the model", after: int = 2) -> Reply:
    """A 200 NDJSON stream that sends ``after`` content lines, then an ``{"error": ...}`` line."""
    lines = ollama_stream_lines(answer(Ask()))[:after]
    lines.append(_line({"error": message}))
    return ollama_stream_reply(lines)


def dropped_ollama_stream(after: int = 2) -> Reply:
    """A stream whose connection is closed after ``after`` lines (no ``done`` line)."""
    return ollama_stream_reply([*ollama_stream_lines(answer(Ask()))[:after], Drop()])


class FakeOllamaServer(LoopbackServer):
    """Answers ``POST /api/chat`` by the shared rules in :mod:`servers._answers`."""

    def __init__(self, text: str = DEFAULT_TEXT, *, models: Iterable[str] = (DEFAULT_OLLAMA_MODEL, "qwen3"), tool_call_ids: bool = False) -> None:
        super().__init__(self.route)
        self.text = text
        self.models = set(models)
        self.tool_call_ids = tool_call_ids

    def route(self, request: Request) -> Reply:
        if request.method == "POST" and request.path == "/api/chat":
            return self.chat(request)
        return Reply.text("404 page not found", status=404)

    def chat(self, request: Request) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return ollama_error_reply(400, "invalid character 'x' looking for beginning of value")
        model = body.get("model")
        if not model:
            return ollama_error_reply(400, "model is required")
        if model.split(":")[0] not in self.models:
            return ollama_error_reply(404, f'model "{model}" not found, try pulling it first')
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        ask = Ask(
            tools=[t["function"]["name"] for t in body.get("tools") or []],
            tool_result=last.get("content") if last.get("role") == "tool" else None,
            images=len(last.get("images") or []) if last.get("role") == "user" else 0,
            thinking=bool(body.get("think")),
            max_tokens=(body.get("options") or {}).get("num_predict"),
        )
        ans = answer(ask, self.text)
        prompt = sum(len(str(m.get("content", "")).split()) for m in messages) + 10
        if body.get("stream", True):
            return ollama_stream_reply(ollama_stream_lines(ans, model, prompt, self.tool_call_ids))
        message: dict[str, Any] = {"role": "assistant", "content": ans.text}
        if ans.thinking:
            message["thinking"] = ans.thinking
        if ans.tool_calls:
            message["tool_calls"] = _tool_calls(ans, self.tool_call_ids)
        completion = len(ans.pieces) + len(ans.thinking_pieces) + 5 * len(ans.tool_calls)
        return Reply.json(_final(model, "length" if ans.truncated else "stop", prompt, completion, message))
