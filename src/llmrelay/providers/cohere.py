"""Cohere's Chat API v2: ``cohere/<model>`` and ``cohere_chat/<model>`` (same thing).

``POST {api_base}/v2/chat`` with ``Authorization: Bearer`` (``api_key=``, ``COHERE_API_KEY`` or
``CO_API_KEY``). ``api_base`` (or ``COHERE_API_BASE``) may be the host
(``https://api.cohere.com``, the default), end in ``/v2``, or be the full ``…/chat`` URL.
LiteLLM's v1 URL (``…/v1/chat``) is rewritten to ``/v2/chat``: the body we send is v2's.

Streams are SSE with a JSON ``type`` per event: ``message-start`` (id), ``content-start`` /
``content-delta`` / ``content-end`` (text, or ``thinking`` for reasoning models),
``tool-plan-delta`` (the model's plan before its tool calls; streamed as content, as OpenAI
models put such text), ``tool-call-start`` / ``tool-call-delta`` / ``tool-call-end``,
``citation-start`` / ``citation-end`` (passed on as ``delta.citations``) and ``message-end``
(``finish_reason`` COMPLETE / STOP_SEQUENCE / MAX_TOKENS / TOOL_CALL / ERROR, and usage).
``finish_reason: ERROR`` raises the error from the iteration.

Usage: Cohere reports ``tokens`` (what the model saw, prompt template included) and
``billed_units``; ``tokens`` is used, ``billed_units`` when it is missing.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..codecs.sse import SSEDecoder
from ..exceptions import APIError, ContentPolicyViolationError
from ..types import ModelResponse
from .base import Call, ChunkDecoder, HttpRequest, Provider, error_from_openai_body
from .common import (assistant_message, chat_response, content_text, delta_chunk, first_env, load_object, loads_or_raise,
                     post_json, require_key)

__all__ = ["CohereProvider", "CohereStreamDecoder", "make_provider"]

DEFAULT_API_BASE = "https://api.cohere.com"
_KEY_ENV = ("COHERE_API_KEY", "CO_API_KEY")

_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "ERROR_LIMIT": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR_TOXIC": "content_filter",
}
_THINKING_BUDGET = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
#: Cohere-specific keyword arguments passed through to the body.
_PASS_THROUGH = ("documents", "citation_options", "safety_mode", "strict_tools", "k", "priority", "logprobs")


def _usage(usage: dict | None) -> dict | None:
    if not usage:
        return None
    counts = usage.get("tokens") or usage.get("billed_units") or {}
    prompt = int(counts.get("input_tokens") or 0)
    completion = int(counts.get("output_tokens") or 0)
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    cached = usage.get("cached_tokens")
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def _tool_calls(calls: list[dict]) -> list[dict]:
    """Tool calls in the shape both OpenAI and Cohere v2 use (arguments JSON text, ``{}`` if none)."""
    out = []
    for tc in calls:
        fn = tc.get("function") or {}
        out.append({"id": tc.get("id"), "type": "function",
                    "function": {"name": fn.get("name"), "arguments": fn.get("arguments") or "{}"}})
    return out


def _finish_error(delta: dict, provider: str, model: str | None) -> APIError:
    message = delta.get("error") or "Cohere ended the stream with finish_reason ERROR"
    return error_from_openai_body(500, None, {"error": {"message": str(message)}}, provider, model)


class CohereStreamDecoder(ChunkDecoder):
    """SSE events of ``/v2/chat`` → OpenAI chunk dicts."""

    __slots__ = ("_tools",)

    def __init__(self, provider: str, model: str | None) -> None:
        super().__init__(SSEDecoder(), provider, model)
        self._tools: dict[Any, int] = {}  # Cohere's tool-call index -> ours

    def _translate(self, events: list, out: list) -> None:
        for sse in events:
            data = sse.data
            if self.done or not data or data == b"[DONE]":
                continue
            event = loads_or_raise(data, self._provider, self._model)
            kind = event.get("type") or sse.event
            if kind == "content-delta" or kind == "content-start":
                content = ((event.get("delta") or {}).get("message") or {}).get("content") or {}
                delta = self._content(content)
                if delta:
                    out.append(delta_chunk(delta))
            elif kind == "tool-call-delta":
                call = ((event.get("delta") or {}).get("message") or {}).get("tool_calls") or {}
                arguments = (call.get("function") or {}).get("arguments")
                if arguments:
                    index = self._tools.get(event.get("index"), len(self._tools) - 1)
                    tool = {"index": index, "function": {"arguments": arguments}}
                    out.append(delta_chunk({"tool_calls": [tool]}))
            elif kind == "tool-plan-delta":
                plan = ((event.get("delta") or {}).get("message") or {}).get("tool_plan")
                if plan:
                    out.append(delta_chunk({"content": plan}))
            elif kind == "tool-call-start":
                call = ((event.get("delta") or {}).get("message") or {}).get("tool_calls") or {}
                index = self._tools[event.get("index")] = len(self._tools)
                fn = call.get("function") or {}
                tool = {
                    "index": index,
                    "id": call.get("id"),
                    "type": "function",
                    "function": {"name": fn.get("name"), "arguments": fn.get("arguments") or ""},
                }
                out.append(delta_chunk({"tool_calls": [tool]}))
            elif kind == "citation-start":
                citation = ((event.get("delta") or {}).get("message") or {}).get("citations")
                if citation:
                    out.append(delta_chunk({"citations": [citation]}))
            elif kind == "message-start":
                if event.get("id"):
                    out.append({"id": event["id"], "choices": []})
            elif kind == "message-end":
                delta = event.get("delta") or {}
                reason = delta.get("finish_reason")
                if reason == "ERROR" or delta.get("error"):
                    raise _finish_error(delta, self._provider, self._model)
                self.done = True
                chunk: dict[str, Any] = {
                    "choices": [{"index": 0, "delta": {}, "finish_reason": _FINISH.get(reason, "stop")}]
                }
                usage = _usage(delta.get("usage"))
                if usage:
                    chunk["usage"] = usage
                out.append(chunk)
            # content-end, tool-call-end, citation-end: nothing to pass on

    @staticmethod
    def _content(content: dict) -> dict:
        text = content.get("text")
        if text:
            return {"content": text}
        thinking = content.get("thinking")
        if thinking:
            return {"reasoning_content": thinking}
        return {}


class CohereProvider(Provider):
    """Cohere Chat v2."""

    name = "cohere"
    supported_params = frozenset(
        {
            "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
            "frequency_penalty", "presence_penalty", "tools", "tool_choice", "response_format",
            "reasoning_effort", "thinking", "stream_options", "logprobs",
        }
    )

    def __init__(self, name: str = "cohere") -> None:
        self.name = name

    def url(self, call: Call) -> str:
        base = (call.api_base or first_env(("COHERE_API_BASE",)) or DEFAULT_API_BASE).rstrip("/")
        if base.endswith("/v1/chat"):
            return base[: -len("/v1/chat")] + "/v2/chat"
        if base.endswith("/chat"):
            return base
        if base.endswith("/v2"):
            return base + "/chat"
        return base + "/v2/chat"

    def build_request(self, call: Call) -> HttpRequest:
        params = self.check_params(call)
        url = self.url(call)
        key = call.api_key or first_env(_KEY_ENV)
        if url.startswith(DEFAULT_API_BASE):  # a self-hosted or proxied Cohere may need none
            key = require_key(key, call.provider, call.user_model or call.model, _KEY_ENV)
        return post_json(call, url, {"Authorization": f"Bearer {key}"} if key else {}, self.build_body(call, params))

    def build_body(self, call: Call, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": call.model, "messages": self.messages(call.messages), "stream": call.stream}
        simple = {"temperature": "temperature", "top_p": "p", "seed": "seed",
                  "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty", "logprobs": "logprobs"}
        for key, target in simple.items():
            if key in params:
                body[target] = params[key]
        max_tokens = params.get("max_completion_tokens", params.get("max_tokens"))
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        stop = params.get("stop")
        if stop:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if params.get("tools"):
            body["tools"] = params["tools"]  # v2 takes OpenAI's tool shape
            choice = params.get("tool_choice")
            if choice == "required" or isinstance(choice, dict):
                body["tool_choice"] = "REQUIRED"
            elif choice == "none":
                body["tool_choice"] = "NONE"
        fmt = params.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
            out: dict[str, Any] = {"type": "json_object"}
            schema = (fmt.get("json_schema") or {}).get("schema")
            if schema:
                out["json_schema"] = schema
            body["response_format"] = out
        effort = params.get("reasoning_effort")
        thinking = params.get("thinking")
        if isinstance(thinking, dict):
            budget = thinking.get("budget_tokens") or thinking.get("token_budget")
            body["thinking"] = {"type": thinking.get("type", "enabled")}
            if budget:
                body["thinking"]["token_budget"] = budget
        elif effort is not None:
            if effort == "none":
                body["thinking"] = {"type": "disabled"}
            else:
                body["thinking"] = {"type": "enabled", "token_budget": _THINKING_BUDGET.get(effort, 4096)}
        for key in _PASS_THROUGH:
            if call.extra.get(key) is not None:
                body[key] = call.extra[key]
        if call.extra.get("top_k") is not None:
            body["k"] = call.extra["top_k"]
        if call.extra_body:
            body.update(call.extra_body)
        return body

    @staticmethod
    def messages(messages: list[dict]) -> list[dict]:
        """OpenAI messages → Cohere v2 messages (mostly the same shape)."""
        out = []
        for message in messages:
            role = message.get("role")
            content = message.get("content")
            if role in ("system", "developer"):
                out.append({"role": "system", "content": content_text(content)})
            elif role == "user":
                if isinstance(content, list):
                    parts = []
                    for part in content:
                        kind = part.get("type") if isinstance(part, dict) else None
                        if kind in ("text", "input_text"):
                            parts.append({"type": "text", "text": part.get("text") or ""})
                        elif kind == "image_url":
                            image = part.get("image_url")
                            url = image.get("url") if isinstance(image, dict) else image
                            parts.append({"type": "image_url", "image_url": {"url": url}})
                    out.append({"role": "user", "content": parts})
                else:
                    out.append({"role": "user", "content": content or ""})
            elif role == "assistant":
                item: dict[str, Any] = {"role": "assistant"}
                text = content_text(content)
                calls = message.get("tool_calls")
                if calls:
                    item["tool_calls"] = _tool_calls(calls)
                    if text:
                        item["tool_plan"] = text
                else:
                    item["content"] = text
                out.append(item)
            elif role in ("tool", "function"):
                out.append({"role": "tool", "tool_call_id": message.get("tool_call_id"), "content": content_text(content)})
        return out

    def parse_response(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> ModelResponse:
        model = call.user_model or call.model
        data = load_object(body, call.provider, model)
        reason = data.get("finish_reason")
        if reason == "ERROR":
            raise _finish_error(data, call.provider, model)
        message = data.get("message") or {}
        texts, thinking = [], []
        for part in message.get("content") or ():
            if part.get("type") == "thinking":
                thinking.append(part.get("thinking") or "")
            elif part.get("text") is not None:
                texts.append(part["text"])
        calls = message.get("tool_calls") or []
        content = "".join(texts) or message.get("tool_plan") or ("" if not calls else None)
        out = assistant_message(content, _tool_calls(calls), thinking)
        if message.get("citations"):
            out["citations"] = message["citations"]
        fields: dict[str, Any] = {
            "id": data.get("id"),
            "model": model,
            "choices": [{"index": 0, "message": out, "finish_reason": _FINISH.get(reason, "stop")}],
        }
        return chat_response(call, fields, _usage(data.get("usage")))

    def stream_decoder(self, call: Call) -> CohereStreamDecoder:
        return CohereStreamDecoder(call.provider, call.user_model or call.model)

    def error(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> APIError:
        # Cohere's error body is {"id": ..., "message": "..."}; the OpenAI mapper reads it.
        error = super().error(call, status, headers, body)
        if status == 422 and "safety" in error.message.lower():
            return ContentPolicyViolationError(error.message, status_code=status, llm_provider=call.provider,
                                               model=error.model, headers=headers, body=error.body)
        return error


def make_provider(prefix: str) -> CohereProvider:
    return CohereProvider(prefix)
