"""Small translation helpers shared by the non-OpenAI providers (pure functions, no I/O)."""

from __future__ import annotations

import os
import uuid
from typing import Any, Iterable

import orjson

from ..exceptions import APIError, AuthenticationError, BadRequestError
from ..types import ModelResponse
from .base import Call, HttpRequest

__all__ = [
    "parse_data_url",
    "content_text",
    "arguments_dict",
    "first_env",
    "require_key",
    "loads_or_raise",
    "load_object",
    "malformed",
    "post_json",
    "new_tool_call_id",
    "bad_request",
    "chat_response",
    "assistant_message",
    "delta_chunk",
    "REASONING_BUDGETS",
]

#: ``reasoning_effort`` → thinking token budget (the convention LiteLLM users expect).
REASONING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<mime>;base64,<data>`` → ``(mime, data)``; None for any other URL (also for a
    data URL that is not base64: providers take base64 only)."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[:-7].split(";", 1)[0] or "application/octet-stream", data


def content_text(content: Any) -> str:
    """The text of an OpenAI ``content`` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    out = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "input_text", None):
            text = part.get("text")
            if isinstance(text, str):
                out.append(text)
        elif isinstance(part, str):
            out.append(part)
    return "".join(out)


def arguments_dict(arguments: Any) -> Any:
    """A tool call's ``arguments`` (JSON text) → the object providers want (``{}`` when empty)."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}


def first_env(names: Iterable[str]) -> str | None:
    """The first of these environment variables that is set and not empty."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def require_key(key: str | None, provider: str, model: str | None, env: Iterable[str]) -> str:
    if key:
        return key
    # LiteLLM's wording first (code and tests match on it), then how to fix it.
    raise AuthenticationError(
        f"Missing {provider.capitalize()} API Key - A call is being made to {provider} but no key is set either "
        f"in the environment variables or via params. No API key for {provider}: pass api_key= or set "
        f"{' or '.join(env)}.",
        llm_provider=provider,
        model=model,
    )


def malformed(data: Any, provider: str | None, model: str | None, what: str, problem: str) -> APIError:
    """The error for an upstream body or event that is not what the wire format promises."""
    return APIError(
        f"The upstream sent {problem} in {what}: {bytes(data[:300])!r}",
        llm_provider=provider,
        model=model,
        body=data,
    )


def loads_or_raise(data: bytes, provider: str | None, model: str | None, what: str = "a stream event") -> Any:
    """Parse JSON from the upstream; malformed JSON is an :class:`APIError`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise malformed(data, provider, model, what, f"malformed JSON ({exc})") from None


def load_object(data: bytes, provider: str | None, model: str | None, what: str = "the response body") -> dict:
    """Like :func:`loads_or_raise`, and the JSON must be an object."""
    value = loads_or_raise(data, provider, model, what)
    if type(value) is not dict:
        raise malformed(data, provider, model, what, "JSON that is not an object")
    return value


def post_json(call: Call, url: str, auth: dict[str, str], body: Any) -> HttpRequest:
    """A JSON POST with the Accept header the call's mode wants, ``auth`` and the caller's headers."""
    headers = {"Content-Type": "application/json",
               "Accept": "text/event-stream" if call.stream else "application/json"}
    headers.update(auth)
    headers.update(call.extra_headers)
    return HttpRequest("POST", url, headers, orjson.dumps(body))


def new_tool_call_id() -> str:
    """An OpenAI-style tool call id for providers that do not send one."""
    return "call_" + uuid.uuid4().hex[:24]


def bad_request(message: str, provider: str, model: str | None) -> BadRequestError:
    return BadRequestError(message, llm_provider=provider, model=model)


def chat_response(call: Any, fields: dict[str, Any], usage: dict | None) -> ModelResponse:
    """A ``chat.completion`` from its fields; usage counted offline when the upstream sent none."""
    if usage:
        fields["usage"] = usage
    response = ModelResponse(**fields)
    if response.usage is None:
        from .openai import count_usage

        response.usage = count_usage(call, response)
    return response


def assistant_message(
    content: str | None, tool_calls: list[dict], reasoning: list[str], thinking_blocks: list[dict] = ()
) -> dict[str, Any]:
    """A response's assistant message; tool calls, reasoning and thinking blocks only when present."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    return message


def delta_chunk(delta: dict[str, Any]) -> dict[str, Any]:
    """The chunk dict of one delta of choice 0 (stream decoders' most common output)."""
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
