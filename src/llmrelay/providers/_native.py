"""Small helpers shared by the native (non-OpenAI wire format) providers.

Pure functions: message text extraction, data-URL images, tool-call ids, JSON bodies.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Iterable

import orjson

from ..exceptions import APIError, BadRequestError
from ..types import ModelResponse

__all__ = [
    "env_first",
    "text_of",
    "parse_data_url",
    "new_tool_call_id",
    "json_arguments",
    "load_json_body",
    "bad_request",
    "chat_response",
]


def env_first(names: Iterable[str]) -> str | None:
    """The first of these environment variables that is set and not empty."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def text_of(content: Any) -> str:
    """The text of an OpenAI message ``content`` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
            parts.append(part.get("text") or "")
        elif isinstance(part, str):
            parts.append(part)
    return "".join(parts)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,XXXX`` → ``("image/png", "XXXX")``; None if not a base64 data URL."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[5:-7] or "application/octet-stream", data


def new_tool_call_id() -> str:
    """An OpenAI-style tool call id for providers that do not send one."""
    return "call_" + uuid.uuid4().hex[:24]


def json_arguments(arguments: Any) -> Any:
    """OpenAI's ``function.arguments`` (a JSON string) as an object; ``{}`` when empty."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, (dict, list)):
        return arguments
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}  # keep a non-JSON value rather than drop it


def load_json_body(body: bytes, provider: str, model: str | None) -> dict:
    """A 200 response body as a JSON object, or an APIError naming what was wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise APIError(
            f"The upstream answered 200 with malformed JSON ({exc}): {body[:300]!r}",
            llm_provider=provider,
            model=model,
            body=body,
        ) from None
    if type(data) is not dict:
        raise APIError(
            f"The upstream answered 200 with JSON that is not an object: {body[:300]!r}",
            llm_provider=provider,
            model=model,
            body=body,
        )
    return data


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
