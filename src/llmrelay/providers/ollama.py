"""Ollama's native API: ``ollama/<model>`` and ``ollama_chat/<model>``, both on ``/api/chat``.

``api_base`` is the Ollama server (default ``http://localhost:11434``, or ``OLLAMA_API_BASE``);
``/api/chat`` is appended. A key (``api_key=`` or ``OLLAMA_API_KEY``, e.g. for ollama.com) is
sent as a bearer token.

Why both prefixes use ``/api/chat`` (LiteLLM sends ``ollama/`` to ``/api/generate``):
``/api/generate`` takes one flattened ``prompt``, so a conversation loses its roles and the
model's own chat template, and it has no tools, no tool results and no ``thinking`` field.
``/api/chat`` does everything ``/api/generate`` does for a chat model and more, and answers in
the same NDJSON framing, so one translation serves both prefixes. (A raw prompt completion on
``/api/generate`` is a text-completion job, not a chat completion.)

Streams are NDJSON (one JSON object per line, the last with ``"done": true``). Ollama sends a
tool call as a whole object, usually in a line before the ``done`` line; it is turned into one
proper tool-call delta (id generated if Ollama sent none, arguments as a JSON string) and the
stream finishes with ``finish_reason: "tool_calls"`` (Ollama itself says ``"stop"``).
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from ..codecs.ndjson import NDJSONDecoder
from ..exceptions import APIError
from ..types import ModelResponse
from .base import Call, ChunkDecoder, HttpRequest, Provider, error_from_openai_body
from .common import (arguments_dict, bad_request, chat_response, content_text, delta_chunk, first_env, load_object,
                     new_tool_call_id, parse_data_url)

__all__ = ["OllamaProvider", "OllamaStreamDecoder", "make_provider"]

DEFAULT_API_BASE = "http://localhost:11434"

#: Keyword arguments that are Ollama model options (sent inside ``options``).
OLLAMA_OPTIONS = frozenset(
    {
        "num_ctx", "num_keep", "num_predict", "num_batch", "num_gpu", "num_thread", "top_k",
        "min_p", "typical_p", "repeat_last_n", "repeat_penalty", "mirostat", "mirostat_tau",
        "mirostat_eta", "tfs_z", "penalize_newline", "numa", "main_gpu", "use_mmap",
    }
)
#: Keyword arguments sent at the top level of the request body.
OLLAMA_TOP_LEVEL = ("keep_alive", "format", "think")

_PARAM_TO_OPTION = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}

_DONE_REASONS = {"stop": "stop", "length": "length"}


def _finish(done_reason: Any, tool_calls: bool) -> str:
    if tool_calls:
        return "tool_calls"
    return _DONE_REASONS.get(done_reason, "stop")


def _usage(obj: dict) -> dict | None:
    prompt = obj.get("prompt_eval_count")
    completion = obj.get("eval_count")
    if prompt is None and completion is None:
        return None
    prompt = prompt or 0
    completion = completion or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _openai_tool_call(call: dict, position: int) -> dict:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return {
        "index": position,
        "id": call.get("id") or new_tool_call_id(),
        "type": "function",
        "function": {"name": function.get("name"), "arguments": arguments},
    }


def in_stream_error(obj: dict, provider: str, model: str | None) -> APIError:
    """The typed exception for an ``{"error": "..."}`` object (a body or a stream line)."""
    message = obj.get("error")
    text = str(message).lower()
    status = 404 if "not found" in text else 500
    return error_from_openai_body(status, None, {"error": {"message": str(message)}}, provider, model)


class OllamaStreamDecoder(ChunkDecoder):
    """NDJSON lines of ``/api/chat`` → OpenAI chunk dicts."""

    __slots__ = ("_tools",)

    def __init__(self, provider: str, model: str | None) -> None:
        super().__init__(NDJSONDecoder(), provider, model)
        self._tools = 0  # tool calls streamed so far (their indexes)

    def _translate(self, objs: list, out: list) -> None:
        for obj in objs:
            if self.done:
                continue
            if type(obj) is not dict:
                raise APIError(
                    f"Ollama sent a stream line that is not a JSON object: {obj!r:.300}",
                    llm_provider=self._provider,
                    model=self._model,
                )
            if "error" in obj:
                raise in_stream_error(obj, self._provider, self._model)
            delta: dict[str, Any] = {}
            message = obj.get("message")
            if message:
                content = message.get("content")
                if content:
                    delta["content"] = content
                thinking = message.get("thinking")
                if thinking:
                    delta["reasoning_content"] = thinking
                calls = message.get("tool_calls")
                if calls:
                    tool_deltas = []
                    for call in calls:
                        tool_deltas.append(_openai_tool_call(call, self._tools))
                        self._tools += 1
                    delta["tool_calls"] = tool_deltas
            if obj.get("done"):
                self.done = True
                chunk: dict[str, Any] = {
                    "choices": [
                        {
                            "index": 0,
                            "delta": delta,
                            "finish_reason": _finish(obj.get("done_reason"), self._tools > 0),
                        }
                    ]
                }
                usage = _usage(obj)
                if usage:
                    chunk["usage"] = usage
                out.append(chunk)
            elif delta:
                out.append(delta_chunk(delta))


class OllamaProvider(Provider):
    """``ollama/<model>`` and ``ollama_chat/<model>`` over Ollama's ``/api/chat``."""

    name = "ollama"
    supported_params = frozenset(
        {
            "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
            "frequency_penalty", "presence_penalty", "tools", "tool_choice", "response_format",
            "reasoning_effort", "stream_options", "thinking",
        }
    )

    def __init__(self, name: str = "ollama") -> None:
        self.name = name

    # ---------------------------------------------------------------- request
    def build_request(self, call: Call) -> HttpRequest:
        params = self.check_params(call)
        base = (call.api_base or first_env(("OLLAMA_API_BASE", "OLLAMA_HOST")) or DEFAULT_API_BASE).rstrip("/")
        if not base.startswith(("http://", "https://")):
            base = "http://" + base  # OLLAMA_HOST is often host:port
        url = base if base.endswith("/api/chat") else base + "/api/chat"
        headers = {"Content-Type": "application/json"}
        key = call.api_key or first_env(("OLLAMA_API_KEY",))
        if key:
            headers["Authorization"] = f"Bearer {key}"
        headers.update(call.extra_headers)
        body = orjson.dumps(self.build_body(call, params))
        return HttpRequest("POST", url, headers, body)

    def build_body(self, call: Call, params: dict[str, Any]) -> dict[str, Any]:
        """The ``/api/chat`` JSON body."""
        model = call.user_model or call.model
        body: dict[str, Any] = {
            "model": call.model,
            "messages": self.messages(call.messages, call.provider, model),
            "stream": call.stream,  # Ollama streams unless told not to
        }
        options: dict[str, Any] = {}
        for key, value in params.items():
            option = _PARAM_TO_OPTION.get(key)
            if option is not None:
                options[option] = value
        stop = params.get("stop")
        if stop is not None:
            options["stop"] = [stop] if isinstance(stop, str) else list(stop)
        tools = params.get("tools")
        choice = params.get("tool_choice")
        if choice not in (None, "auto", "none") and not call.drop_params:
            raise bad_request(
                f"Ollama cannot force a tool choice (tool_choice={choice!r}); use 'auto' or "
                "'none', or pass drop_params=True to ignore it.",
                call.provider,
                model,
            )
        if tools and choice != "none":
            body["tools"] = tools
        fmt = self._format(params.get("response_format"))
        if fmt is not None:
            body["format"] = fmt
        effort = params.get("reasoning_effort")
        if effort is not None:
            body["think"] = effort if effort in ("low", "medium", "high") else effort not in ("none", "minimal")
        thinking = params.get("thinking")
        if isinstance(thinking, dict):
            body["think"] = thinking.get("type") == "enabled"
        for key, value in call.extra.items():
            if key in OLLAMA_TOP_LEVEL:
                body[key] = value
            elif key in OLLAMA_OPTIONS:
                options[key] = value
            elif key == "options" and isinstance(value, dict):
                options.update(value)
        if options:
            body["options"] = options
        if call.extra_body:
            body.update(call.extra_body)
        return body

    @staticmethod
    def _format(response_format: Any) -> Any:
        if not isinstance(response_format, dict):
            return None
        kind = response_format.get("type")
        if kind == "json_object":
            return "json"
        if kind == "json_schema":
            schema = response_format.get("json_schema") or {}
            return schema.get("schema", schema)
        return None

    def messages(self, messages: list[dict], provider: str, model: str | None) -> list[dict]:
        """OpenAI messages → Ollama messages."""
        out = []
        names: dict[str, str] = {}  # tool call id -> function name, for tool results
        for message in messages:
            role = message.get("role")
            content = message.get("content")
            if role in ("system", "developer"):
                out.append({"role": "system", "content": content_text(content)})
            elif role == "user":
                item: dict[str, Any] = {"role": "user", "content": content_text(content)}
                images = self._images(content, provider, model)
                if images:
                    item["images"] = images
                out.append(item)
            elif role == "assistant":
                item = {"role": "assistant", "content": content_text(content)}
                reasoning = message.get("reasoning_content")
                if reasoning:
                    item["thinking"] = reasoning
                calls = message.get("tool_calls")
                if calls:
                    item["tool_calls"] = []
                    for tc in calls:
                        fn = tc.get("function") or {}
                        if tc.get("id"):
                            names[tc["id"]] = fn.get("name")
                        item["tool_calls"].append(
                            {"function": {"name": fn.get("name"), "arguments": arguments_dict(fn.get("arguments"))}}
                        )
                out.append(item)
            elif role in ("tool", "function"):
                item = {"role": "tool", "content": content_text(content)}
                name = message.get("name") or names.get(message.get("tool_call_id") or "")
                if name:
                    item["tool_name"] = name
                out.append(item)
        return out

    @staticmethod
    def _images(content: Any, provider: str, model: str | None) -> list[str]:
        if not isinstance(content, list):
            return []
        images = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                continue
            parsed = parse_data_url(url)
            if parsed is not None:
                images.append(parsed[1])
            elif url.startswith(("http://", "https://")):
                raise bad_request(
                    "Ollama takes images as base64 data, not URLs: pass a "
                    "'data:image/...;base64,...' URL (llmrelay does not download images).",
                    provider,
                    model,
                )
            else:
                images.append(url)  # already bare base64
        return images

    # ---------------------------------------------------------------- response
    def parse_response(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> ModelResponse:
        model = call.user_model or call.model
        data = load_object(body, call.provider, model)
        if "error" in data:
            raise in_stream_error(data, call.provider, model)
        message = data.get("message") or {}
        out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("thinking"):
            out["reasoning_content"] = message["thinking"]
        calls = message.get("tool_calls")
        if calls:
            out["tool_calls"] = []
            for i, c in enumerate(calls):
                tc = _openai_tool_call(c, i)
                del tc["index"]
                out["tool_calls"].append(tc)
        fields: dict[str, Any] = {
            "model": model,
            "choices": [
                {"index": 0, "message": out, "finish_reason": _finish(data.get("done_reason"), bool(calls))}
            ],
        }
        return chat_response(call, fields, _usage(data))

    def stream_decoder(self, call: Call) -> OllamaStreamDecoder:
        return OllamaStreamDecoder(call.provider, call.user_model or call.model)

    # error(): Provider's default, the OpenAI mapper, reads Ollama's {"error": "message"} too.


def make_provider(prefix: str) -> OllamaProvider:
    return OllamaProvider(prefix)
