"""OpenAI-shaped error responses: ``{"error": {"message", "type", "param", "code"}}``.

Maps llmrelay's exceptions onto the HTTP status a gateway should answer with, and removes any
secret (upstream API keys, the master key) from messages before they leave the process.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Iterable

import orjson

from ..exceptions import APIConnectionError, APIError, LLMRelayError, Timeout

__all__ = ["error_json", "status_and_body", "status_of", "error_frame", "make_redactor", "ERROR_TYPES"]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
}

#: Key-looking tokens (OpenAI ``sk-…``, partially masked ones included, Anthropic, Google).
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|sk-ant-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{20,})")


def error_json(message: str, status: int, *, param: str | None = None, code: str | None = None,
               type: str | None = None) -> bytes:  # noqa: A002 - OpenAI's field name
    """The body of an error response."""
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": type or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"),
                "param": param,
                "code": code if code is not None else str(status),
            }
        }
    )


def make_redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function that blanks every secret (and anything key-shaped) in a text."""
    values = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def redact(text: str) -> str:
        if pattern is not None:
            text = pattern.sub("[REDACTED]", text)
        return _KEYLIKE.sub("[REDACTED]", text)

    return redact


def status_of(exc: BaseException) -> int:
    """The gateway's status for an exception from the library."""
    if isinstance(exc, Timeout):
        return 504
    if isinstance(exc, APIConnectionError):
        return 502
    if isinstance(exc, APIError):
        status = exc.status_code
        if isinstance(status, int) and 400 <= status <= 599:
            return status
    return 500


def status_and_body(exc: BaseException, redact: Callable[[str], str]) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """(status, error JSON body, extra headers) for an exception."""
    status = status_of(exc)
    headers: list[tuple[bytes, bytes]] = []
    if isinstance(exc, LLMRelayError):
        message = getattr(exc, "message", None) or str(exc)
        param = getattr(exc, "param", None)
        code = getattr(exc, "code", None)
        etype = getattr(exc, "type", None)
        where = "/".join(p for p in (getattr(exc, "llm_provider", None), getattr(exc, "model", None)) if p)
        message = f"{type(exc).__name__}: {message}" + (f" (upstream {where})" if where and status >= 500 else "")
    else:
        message, param, code, etype = "Internal error in the gateway (see its log).", None, None, None
    retry_after = getattr(exc, "retry_after", None)
    if status in (429, 503):
        seconds = 1 if retry_after is None else max(0, math.ceil(retry_after))
        headers.append((b"retry-after", str(seconds).encode()))
    body = error_json(
        redact(message),
        status,
        param=param if isinstance(param, str) else None,
        code=str(code) if code is not None else None,
        type=etype if isinstance(etype, str) and etype else None,
    )
    return status, body, headers


def error_frame(exc: BaseException, redact: Callable[[str], str]) -> bytes:
    """The ``data: {"error": …}`` SSE frame for an error after the first chunk."""
    _, body, _ = status_and_body(exc, redact)
    return b"data: " + body + b"\n\n"


