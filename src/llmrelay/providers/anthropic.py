"""Anthropic's Messages API (``anthropic/<model>``).

``api_base`` follows LiteLLM: the host (``https://api.anthropic.com``), optionally ending in
``/v1`` or in the full ``/v1/messages``; whatever is missing is appended.

Translation notes (from Anthropic's API reference):

* system and developer messages become the top-level ``system`` (a list of text blocks when a
  part carries ``cache_control``, so the marker survives);
* ``role: tool`` messages become ``tool_result`` blocks of a user message, and consecutive
  messages of the same role are merged, since the API wants user/assistant turns;
* ``max_tokens`` is required by the API: :data:`DEFAULT_MAX_TOKENS` when the caller gave none;
* ``response_format`` (json_object / json_schema) is honoured by forcing a tool whose input
  schema is the requested schema; its input comes back as the message content;
* thinking blocks come back as ``reasoning_content`` plus ``thinking_blocks`` (with their
  signatures), and ``thinking_blocks`` on an assistant message are sent back as they are.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from ..codecs.sse import SSEDecoder
from ..exceptions import APIError
from ..types import ModelResponse
from .base import Call, HttpRequest, Provider, decode_json_body, ChunkDecoder, error_from_openai_body
from .common import (REASONING_BUDGETS, arguments_dict, assistant_message, chat_response, first_env, load_object,
                     loads_or_raise, parse_data_url, post_json, require_key)

__all__ = [
    "AnthropicProvider",
    "AnthropicStreamDecoder",
    "anthropic_error",
    "anthropic_usage",
    "build_body",
    "DEFAULT_MAX_TOKENS",
]

DEFAULT_API_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
#: The forced tool that carries a ``response_format`` answer.
JSON_TOOL = "json_tool_call"

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_SUPPORTED = frozenset(
    {
        "temperature",
        "top_p",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "thinking",
        "user",
        "stream_options",
    }
)


# ============================================================================ errors
def anthropic_error(
    status: int, headers: Mapping[str, str] | None, body: Any, provider: str, model: str | None
) -> APIError:
    """Anthropic's ``{"type": "error", "error": {"type", "message"}}`` → the typed exception.

    ``status`` 0 means the error came inside a 200 stream: the error type gives the status.
    """
    data = decode_json_body(body) if isinstance(body, (bytes, bytearray)) else body
    error = data.get("error") if isinstance(data, dict) else None
    etype = error.get("type") if isinstance(error, dict) else None
    if not status:
        status = _STATUS_BY_TYPE.get(str(etype), 500)
    return error_from_openai_body(status, headers, data if data is not None else body, provider, model)


# ============================================================================ requests
def _image_block(url: str, extra: dict | None = None) -> dict:
    parsed = parse_data_url(url)
    if parsed is not None:
        mime, data = parsed
        kind = "document" if mime == "application/pdf" else "image"
        block = {"type": kind, "source": {"type": "base64", "media_type": mime, "data": data}}
    else:
        kind = "document" if url.lower().split("?", 1)[0].endswith(".pdf") else "image"
        block = {"type": kind, "source": {"type": "url", "url": url}}
    if extra and extra.get("cache_control"):
        block["cache_control"] = extra["cache_control"]
    return block


def _blocks(content: Any) -> list[dict]:
    """OpenAI content (str or parts) → Anthropic content blocks (empty text dropped)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out = []
    for part in content:
        if isinstance(part, str):
            if part:
                out.append({"type": "text", "text": part})
            continue
        ptype = part.get("type")
        if ptype in ("text", "input_text"):
            if not part.get("text"):
                continue
            block = {"type": "text", "text": part["text"]}
            if part.get("cache_control"):
                block["cache_control"] = part["cache_control"]
            out.append(block)
        elif ptype == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            out.append(_image_block(str(url), part))
        elif ptype == "file":
            file = part.get("file") or {}
            data = file.get("file_data") or file.get("url")
            if data:
                out.append(_image_block(str(data), part))
        else:  # Anthropic-native blocks (document, tool_result, …) pass through
            out.append(part)
    return out


def _tool_result(message: dict) -> dict:
    content = message.get("content")
    if isinstance(content, list):
        blocks = _blocks(content)
        result: Any = blocks
    else:
        result = "" if content is None else str(content)
    block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id") or "", "content": result}
    if message.get("is_error"):
        block["is_error"] = True
    if message.get("cache_control"):
        block["cache_control"] = message["cache_control"]
    return block


def _assistant_blocks(message: dict) -> list[dict]:
    blocks: list[dict] = []
    for tb in message.get("thinking_blocks") or ():
        if isinstance(tb, dict) and tb.get("type") in ("thinking", "redacted_thinking"):
            blocks.append({k: v for k, v in tb.items() if k in ("type", "thinking", "signature", "data")})
    blocks.extend(_blocks(message.get("content")))
    for tc in message.get("tool_calls") or ():
        fn = tc.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": tc.get("id") or "",
                "name": fn.get("name") or "",
                "input": arguments_dict(fn.get("arguments")),
            }
        )
    fc = message.get("function_call")
    if fc:
        blocks.append({"type": "tool_use", "id": fc.get("name") or "call", "name": fc.get("name") or "",
                       "input": arguments_dict(fc.get("arguments"))})
    return blocks


def _mark_cache(message: dict, blocks: list[dict]) -> list[dict]:
    """A message-level ``cache_control`` (LiteLLM's convention) goes on the message's last block."""
    cache = message.get("cache_control")
    if cache and blocks and "cache_control" not in blocks[-1]:
        blocks[-1] = {**blocks[-1], "cache_control": cache}
    return blocks


def convert_messages(messages: list[dict]) -> tuple[list[dict] | None, list[dict]]:
    """OpenAI messages → (system blocks or None, Anthropic messages with merged turns)."""
    system: list[dict] = []
    out: list[dict] = []
    for message in messages:
        role = message["role"]
        if role in ("system", "developer"):
            system.extend(_mark_cache(message, _blocks(message.get("content"))))
            continue
        if role in ("tool", "function"):
            if role == "function":
                message = {"tool_call_id": message.get("name"), "content": message.get("content")}
            role, blocks = "user", [_tool_result(message)]
        elif role == "assistant":
            blocks = _assistant_blocks(message)
            if not blocks:
                continue  # the API rejects empty assistant turns
        else:
            role, blocks = "user", _blocks(message.get("content"))
            if not blocks:
                blocks = [{"type": "text", "text": "."}]  # the API rejects empty user turns
        blocks = _mark_cache(message, blocks)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for m in out:  # plain single-text turns as strings: smaller requests, same meaning
        content = m["content"]
        if len(content) == 1 and content[0].get("type") == "text" and len(content[0]) == 2:
            m["content"] = content[0]["text"]
    return (system or None), out


def _tools(tools: list[dict]) -> list[dict]:
    out = []
    for tool in tools:
        if tool.get("type", "function") != "function":
            out.append(tool)  # an Anthropic server tool (web_search, …): as given
            continue
        fn = tool.get("function") or tool
        spec = {
            "name": fn.get("name"),
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        cache = tool.get("cache_control") or fn.get("cache_control")
        if cache:
            spec["cache_control"] = cache
        out.append(spec)
    return out


def _tool_choice(choice: Any) -> dict | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"},
                "any": {"type": "any"}}.get(choice, {"type": "auto"})
    if isinstance(choice, dict):
        if choice.get("type") == "function":
            return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
        return dict(choice)  # already Anthropic-shaped
    return None


def build_body(call: Call, params: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The Messages API body; also whether ``response_format`` is carried by the JSON tool."""
    system, messages = convert_messages(call.messages)
    body: dict[str, Any] = {"model": call.model, "messages": messages}
    if system:
        if any(len(b) != 2 or b.get("type") != "text" for b in system):
            body["system"] = system
        else:
            body["system"] = "\n".join(b["text"] for b in system)
    max_tokens = params.get("max_completion_tokens") or params.get("max_tokens")
    thinking = params.get("thinking")
    effort = params.get("reasoning_effort")
    if thinking is None and effort in REASONING_BUDGETS:
        thinking = {"type": "enabled", "budget_tokens": REASONING_BUDGETS[effort]}
    if thinking is not None:
        body["thinking"] = thinking
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if max_tokens is None and isinstance(budget, int) and budget >= DEFAULT_MAX_TOKENS:
            max_tokens = budget + DEFAULT_MAX_TOKENS  # the budget must stay below max_tokens
    body["max_tokens"] = max_tokens or DEFAULT_MAX_TOKENS
    for key in ("temperature", "top_p"):
        if key in params:
            body[key] = params[key]
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = _tools(params["tools"]) if params.get("tools") else []
    choice = _tool_choice(params.get("tool_choice"))
    json_mode = False
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        if fmt["type"] == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        else:
            schema = {"type": "object", "additionalProperties": True}
        if not any(t.get("name") == JSON_TOOL for t in tools):
            tools.append({"name": JSON_TOOL, "description": "Respond with the JSON object.",
                          "input_schema": schema})
            # Extended thinking refuses a forced tool_choice ("any"/"tool"): with thinking on, the
            # JSON tool is offered with "auto" (and the only tool unless the caller gave others).
            thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
            choice = {"type": "auto"} if thinking_on else {"type": "tool", "name": JSON_TOOL}
            json_mode = True
    if tools:
        body["tools"] = tools
    if params.get("parallel_tool_calls") is False and (tools or choice):
        choice = dict(choice or {"type": "auto"})
        choice["disable_parallel_tool_use"] = True
    if choice is not None and tools:
        body["tool_choice"] = choice
    if params.get("user"):
        body["metadata"] = {"user_id": params["user"]}
    if call.stream:
        body["stream"] = True
    if call.extra_body:
        body.update(call.extra_body)
    return body, json_mode


# ============================================================================ responses
def anthropic_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic ``usage`` → OpenAI's shape; cache reads and writes count as prompt tokens."""
    read = usage.get("cache_read_input_tokens") or 0
    created = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + read + created
    completion = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_creation_tokens": created},
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": created,
    }


def parse_message(call: Call, data: dict, json_mode: bool) -> ModelResponse:
    text: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict] = []
    tool_calls: list[dict] = []
    for block in data.get("content") or ():
        btype = block.get("type")
        if btype == "text":
            text.append(block.get("text") or "")
        elif btype == "tool_use":
            if json_mode and block.get("name") == JSON_TOOL:
                text.append(orjson.dumps(block.get("input") or {}).decode())
                continue
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"),
                                 "arguments": orjson.dumps(block.get("input") or {}).decode()},
                }
            )
        elif btype == "thinking":
            reasoning.append(block.get("thinking") or "")
            thinking_blocks.append({"type": "thinking", "thinking": block.get("thinking") or "",
                                    "signature": block.get("signature")})
        elif btype == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data")})
    message = assistant_message("".join(text) if text else None, tool_calls, reasoning, thinking_blocks)
    reason = data.get("stop_reason")
    finish = _FINISH.get(reason, "stop") if reason else "stop"
    if json_mode and finish == "tool_calls" and not tool_calls:
        finish = "stop"
    fields = {
        "id": data.get("id"),
        "model": call.user_model or data.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    return chat_response(call, fields, anthropic_usage(data.get("usage") or {}))


# ============================================================================ streams
class AnthropicStreamDecoder(ChunkDecoder):
    """Messages API SSE events → OpenAI chunk dicts (pure, incremental)."""

    __slots__ = ("_id", "_usage", "_kinds", "_tool_index", "_tools", "_thinking", "_signature", "_json_mode",
                 "_tool_args")

    def __init__(self, provider: str, model: str | None, json_mode: bool = False) -> None:
        super().__init__(SSEDecoder(), provider, model)
        self._id: str | None = None
        self._usage: dict[str, Any] = {}
        self._kinds: dict[int, str] = {}  # content block index → "text" | "tool" | "json" | "thinking"
        self._tool_index: dict[int, int] = {}  # content block index → tool call index
        self._tools = 0
        self._thinking: list[str] = []
        self._signature: str | None = None
        self._json_mode = json_mode
        self._tool_args: set[int] = set()  # content blocks of tool calls that streamed arguments

    def _chunk(self, delta: dict) -> dict:
        return {"id": self._id, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}

    def _translate(self, events: list, out: list) -> None:
        for event in events:
            if self.done:
                continue
            data = loads_or_raise(event.data, self._provider, self._model)
            etype = data.get("type") if type(data) is dict else None
            if etype == "content_block_delta":
                delta = data.get("delta") or {}
                dtype = delta.get("type")
                if dtype == "text_delta":
                    out.append(self._chunk({"content": delta.get("text") or ""}))
                elif dtype == "input_json_delta":
                    partial = delta.get("partial_json") or ""
                    index = data.get("index", 0)
                    if self._kinds.get(index) == "json":
                        if partial:
                            out.append(self._chunk({"content": partial}))
                    elif partial:
                        self._tool_args.add(index)
                        out.append(self._tool_arguments(index, partial))
                elif dtype == "thinking_delta":
                    thinking = delta.get("thinking") or ""
                    self._thinking.append(thinking)
                    out.append(self._chunk({"reasoning_content": thinking}))
                elif dtype == "signature_delta":
                    self._signature = (self._signature or "") + (delta.get("signature") or "")
                continue
            if etype == "message_start":
                message = data.get("message") or {}
                self._id = message.get("id")
                self._usage = dict(message.get("usage") or {})
            elif etype == "content_block_start":
                self._start_block(data, out)
            elif etype == "content_block_stop":
                kind = self._kinds.get(data.get("index", 0))
                if kind == "tool" and data.get("index", 0) not in self._tool_args:
                    # a tool_use with empty input streams no input_json_delta: its arguments are {}
                    out.append(self._tool_arguments(data.get("index", 0), "{}"))
                elif kind == "thinking":
                    block = {"type": "thinking", "thinking": "".join(self._thinking),
                             "signature": self._signature}
                    self._thinking = []
                    self._signature = None
                    out.append(self._chunk({"thinking_blocks": [block]}))
            elif etype == "message_delta":
                delta = data.get("delta") or {}
                usage = data.get("usage")
                if usage:
                    self._usage.update({k: v for k, v in usage.items() if v is not None})
                reason = delta.get("stop_reason")
                chunk: dict[str, Any] = {"id": self._id, "usage": anthropic_usage(self._usage)}
                if reason:
                    finish = _FINISH.get(reason, "stop")
                    if finish == "tool_calls" and self._json_mode and not self._tools:
                        finish = "stop"
                    chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": finish}]
                out.append(chunk)
            elif etype == "message_stop":
                self.done = True
            elif etype == "error" or event.event == "error":
                raise anthropic_error(0, None, data, self._provider, self._model)
            # ping and event types added later are ignored, as Anthropic's versioning asks

    def _tool_arguments(self, index: int, arguments: str) -> dict:
        return self._chunk({"tool_calls": [
            {"index": self._tool_index.get(index, 0), "function": {"arguments": arguments}}
        ]})

    def _start_block(self, data: dict, out: list[dict]) -> None:
        index = data.get("index", 0)
        block = data.get("content_block") or {}
        btype = block.get("type")
        if btype == "text":
            self._kinds[index] = "text"
            if block.get("text"):
                out.append(self._chunk({"content": block["text"]}))
        elif btype == "tool_use":
            if self._json_mode and block.get("name") == JSON_TOOL:
                self._kinds[index] = "json"
                return
            self._kinds[index] = "tool"
            tool_index = self._tool_index[index] = self._tools
            self._tools += 1
            start = block.get("input")
            arguments = orjson.dumps(start).decode() if isinstance(start, dict) and start else ""
            if arguments:
                self._tool_args.add(index)
            out.append(self._chunk({"tool_calls": [{
                "index": tool_index, "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": arguments},
            }]}))
        elif btype == "thinking":
            self._kinds[index] = "thinking"
            self._thinking = [block["thinking"]] if block.get("thinking") else []
            self._signature = block.get("signature") or None
        elif btype == "redacted_thinking":
            self._kinds[index] = "redacted"
            out.append(self._chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": block.get("data")}]}))


# ============================================================================ provider
class AnthropicProvider(Provider):
    """``anthropic/<model>``: Anthropic's Messages API."""

    name = "anthropic"
    supported_params = _SUPPORTED
    default_api_base = DEFAULT_API_BASE
    api_key_env = ("ANTHROPIC_API_KEY",)
    api_base_env = ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL")

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name

    def check_params(self, call: Call) -> dict[str, Any]:
        # n=1 is accepted (and not sent); any other n is unsupported, refused or dropped by the base.
        if call.params.get("n") == 1:
            call.params = {k: v for k, v in call.params.items() if k != "n"}
        return super().check_params(call)

    def url(self, call: Call) -> str:
        base = (call.api_base or first_env(self.api_base_env) or self.default_api_base).rstrip("/")
        if base.endswith("/v1/messages"):
            return base
        if base.endswith("/v1"):
            return base + "/messages"
        return base + "/v1/messages"

    def build_request(self, call: Call) -> HttpRequest:
        params = self.check_params(call)
        key = require_key(call.api_key or first_env(self.api_key_env), call.provider, call.user_model,
                          self.api_key_env)
        body, json_mode = build_body(call, params)
        call.extra["_json_mode"] = json_mode
        return post_json(call, self.url(call), {"x-api-key": key, "anthropic-version": API_VERSION}, body)

    def parse_response(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> ModelResponse:
        data = load_object(body, call.provider, call.user_model)
        if data.get("type") == "error":
            raise anthropic_error(0, headers, data, call.provider, call.user_model)
        return parse_message(call, data, bool(call.extra.get("_json_mode")))

    def stream_decoder(self, call: Call) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(call.provider, call.user_model, bool(call.extra.get("_json_mode")))

    def error(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> APIError:
        return anthropic_error(status, headers, body, call.provider, call.user_model)
