"""OpenAI-shaped error responses: ``{"error": {"message", "type", "param", "code"}}``.

Maps llmrelay's exceptions onto the HTTP status a gateway should answer with, and removes any
secret (upstream API keys, the master key) from messages before they leave the process.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable

import orjson

from ..exceptions import APIConnectionError, APIError, LLMRelayError, Timeout
from ..retry_after import DEFAULT_MAX_RETRY_AFTER, capped

__all__ = ["error_json", "status_and_body", "status_of", "error_frame", "make_redactor", "client_message",
           "retry_after_header", "upstream_hosts", "ERROR_TYPES"]

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


def upstream_hosts(config: Any) -> list[str]:
    """The configured upstream base URLs and their ``host:port`` (for redacting client answers)."""
    from urllib.parse import urlsplit

    out: list[str] = []
    params = [d.litellm_params for d in config.deployments] + [config.litellm_settings]
    for p in params:
        for key in ("api_base", "base_url"):
            url = p.get(key)
            if isinstance(url, str) and url:
                out.append(url.rstrip("/"))
                try:
                    netloc = urlsplit(url).netloc.rpartition("@")[2]
                except ValueError:
                    continue
                if netloc:
                    out.append(netloc)
    return out


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


def client_message(exc: BaseException, request_id: str | None = None, *, prefix: bool = True) -> str:
    """What a client is told about a library exception: never the upstream's URL or host.

    A connection error or timeout is described generically (which timeout fired, and its
    value); the details are in the gateway's log under the request id. ``prefix``: start with
    the exception's class name (OpenAI-shaped answers do).
    """
    text = _client_message(exc, request_id)
    return text if prefix else text.split(": ", 1)[-1]


def _client_message(exc: BaseException, request_id: str | None) -> str:
    rid = f" (request id {request_id})" if request_id else ""
    # An error the upstream answered with (it has a body or headers) is passed on, redacted.
    local = getattr(exc, "body", None) is None and not getattr(exc, "headers", None)
    if isinstance(exc, Timeout) and local:
        setting = getattr(exc, "timeout_setting", None)
        seconds = getattr(exc, "timeout_seconds", None)
        if setting and seconds is not None:
            what = _TIMEOUT_WHAT.get(setting, "answer")
            return f"Timeout: the upstream did not {what} within {setting}={seconds:g}s{rid}."
        return (f"Timeout: the upstream sent nothing for longer than the read timeout "
                f"(stream_idle_timeout, else timeout){rid}.")
    if isinstance(exc, APIConnectionError) and local:
        return f"APIConnectionError: the upstream could not be reached or the connection broke{rid}."
    message = getattr(exc, "message", None) or str(exc)
    status = status_of(exc)
    return f"{type(exc).__name__}: {message}" + (rid if status >= 500 else "")


_TIMEOUT_WHAT = {
    "timeout": "answer",
    "stream_timeout": "send the first chunk",
    "stream_idle_timeout": "send the next chunk",
}


def retry_after_header(exc: BaseException, cap: float = DEFAULT_MAX_RETRY_AFTER) -> bytes:
    """Whole seconds for a 429/503's Retry-After: the upstream's (read defensively), at most
    ``cap``; 1 when there is no usable value."""
    seconds = capped(getattr(exc, "retry_after", None), cap)
    if seconds is None:
        seconds = 1.0
    return str(max(0, min(math.ceil(seconds), math.floor(cap)))).encode()


def status_and_body(exc: BaseException, redact: Callable[[str], str], *, request_id: str | None = None,
                    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """(status, error JSON body, extra headers) for an exception."""
    status = status_of(exc)
    headers: list[tuple[bytes, bytes]] = []
    if isinstance(exc, LLMRelayError):
        message = client_message(exc, request_id)
        param = getattr(exc, "param", None)
        code = getattr(exc, "code", None)
        if code == str(getattr(exc, "status_code", None)):
            code = None  # the class's default (LiteLLM's ``.code``), not the upstream's: use the gateway's status
        etype = getattr(exc, "type", None)
        if etype is not None and etype == getattr(exc, "_default_type", None):
            etype = None  # likewise LiteLLM's class default (``throttling_error``): OpenAI's type for the status
    else:
        rid = f" (request id {request_id})" if request_id else ""
        message, param, code, etype = f"Internal error in the gateway (see its log){rid}.", None, None, None
    if status in (429, 503):
        headers.append((b"retry-after", retry_after_header(exc, max_retry_after)))
    body = error_json(
        redact(message),
        status,
        param=param if isinstance(param, str) else None,
        code=str(code) if code is not None else None,
        type=etype if isinstance(etype, str) and etype else None,
    )
    return status, body, headers


def error_frame(exc: BaseException, redact: Callable[[str], str], **kwargs: Any) -> bytes:
    """The ``data: {"error": …}`` SSE frame for an error after the first chunk (``kwargs`` as
    for :func:`status_and_body`)."""
    _, body, _ = status_and_body(exc, redact, **kwargs)
    return b"data: " + body + b"\n\n"


