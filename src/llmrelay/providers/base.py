"""The provider interface: pure translation between OpenAI's shapes and a provider's wire format.

A provider never does I/O. ``build_request`` turns a :class:`Call` into an :class:`HttpRequest`;
``parse_response`` turns a response body into a ``ModelResponse``; ``stream_decoder`` returns an
object that turns the bytes of a streamed response into OpenAI-shaped chunk dicts; ``error``
turns an HTTP error response into the typed exception. The transport (sync or async) does the
sending, so both share every line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

import orjson

from ..exceptions import (
    APIError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    UnsupportedParamsError,
    exception_for_status,
)
from ..types import ModelResponse

__all__ = [
    "HttpRequest",
    "Call",
    "StreamDecoder",
    "Provider",
    "OPENAI_PARAMS",
    "error_from_openai_body",
    "decode_json_body",
    "ChunkDecoder",
    "SHAPE_ERRORS",
    "shape_error",
    "error_class_for_message",
]

#: The OpenAI chat-completions parameters llmrelay knows (forwarded when given).
OPENAI_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "seed",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "stream_options",
        "functions",
        "function_call",
        "modalities",
        "audio",
        "prediction",
        "service_tier",
        "store",
        "web_search_options",
        "verbosity",
        "thinking",
    }
)


@dataclass(slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass(slots=True)
class Call:
    """Everything one completion call needs, already validated."""

    provider: str  # the resolved provider name ("openai", "anthropic", …)
    model: str  # the model name the provider sees (prefix removed)
    messages: list[dict[str, Any]]
    params: dict[str, Any]  # OpenAI parameters the caller gave (only those)
    stream: bool = False
    api_base: str | None = None
    api_key: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    drop_params: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # provider-specific keyword arguments
    user_model: str | None = None  # the name chunks and responses carry

    @property
    def include_usage(self) -> bool:
        opts = self.params.get("stream_options")
        return bool(opts and opts.get("include_usage"))


class StreamDecoder(Protocol):
    """Bytes of a streamed response → OpenAI-shaped chunk dicts (pure, incremental)."""

    #: True once the provider's end-of-stream marker was seen ([DONE], message_stop, …).
    done: bool
    #: An error found in a read after good chunks of the same read: those chunks are returned
    #: first and the error parked here; the transport raises it before reading on.
    error: APIError | None

    def feed(self, data: bytes) -> list[dict]: ...

    def close(self) -> list[dict]:
        """End of the bytes: return what is left, raise if a partial message remains."""
        ...


class Provider:
    """Base class of every provider; subclasses override what differs."""

    name: str = "base"
    #: OpenAI parameters this provider accepts; ``None`` means all of them.
    supported_params: frozenset[str] | None = None
    #: In-process providers (a local model) implement ``complete``/``acomplete`` and
    #: ``stream_source`` instead of the HTTP methods.
    in_process: bool = False

    def complete(self, call: Call) -> ModelResponse:
        raise NotImplementedError

    async def acomplete(self, call: Call) -> ModelResponse:
        raise NotImplementedError

    def stream_source(self, call: Call) -> Any:
        """A chunk source (``next_batch``/``anext_batch``/``close``/``aclose``/``complete``)."""
        raise NotImplementedError

    def public_model(self, model: str) -> str:
        """The model name responses and chunks carry (a provider may drop a route segment)."""
        return model

    def build_request(self, call: Call) -> HttpRequest:
        raise NotImplementedError

    def parse_response(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> ModelResponse:
        raise NotImplementedError

    def stream_decoder(self, call: Call) -> StreamDecoder:
        raise NotImplementedError

    def error(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> APIError:
        """The typed exception for an HTTP error response (OpenAI's error body by default)."""
        return error_from_openai_body(status, headers, body, call.provider, call.user_model or call.model)

    # ------------------------------------------------------------ helpers for subclasses
    def check_params(self, call: Call) -> dict[str, Any]:
        """The call's params with unsupported ones dropped (drop_params) or refused."""
        if self.supported_params is None:
            return call.params
        unsupported = [k for k in call.params if k not in self.supported_params]
        if not unsupported:
            return call.params
        if call.drop_params:
            import logging

            logging.getLogger("llmrelay").debug(
                "dropping parameters %s unsupported by %s", unsupported, call.provider
            )
            return {k: v for k, v in call.params.items() if k in self.supported_params}
        raise UnsupportedParamsError(
            f"{call.provider} does not support the parameter(s) {', '.join(sorted(unsupported))}."
            " Pass drop_params=True (or set llmrelay.drop_params = True) to drop them.",
            llm_provider=call.provider,
            model=call.user_model or call.model,
        )


class ChunkDecoder:
    """Base of the providers' stream decoders: wire messages → OpenAI-shaped chunk dicts.

    ``wire`` is the pure codec (SSE, NDJSON, eventstream); subclasses implement ``_translate``
    (wire messages → chunk dicts appended to ``out``). An error found after chunks of the same
    read is parked in ``error`` and those chunks are returned first, so a read boundary never
    changes what the caller sees; the transport raises the parked error before reading on.
    """

    __slots__ = ("_wire", "done", "error", "_provider", "_model")

    def __init__(self, wire: Any, provider: str, model: str | None) -> None:
        self._wire = wire
        self.done = False
        self.error: APIError | None = None
        self._provider = provider
        self._model = model

    def feed(self, data: bytes) -> list[dict]:
        return self._run(self._wire.feed(data))

    def close(self) -> list[dict]:
        return self._run(self._wire.close() or ())

    def _run(self, messages: Any) -> list[dict]:
        out: list[dict] = []
        try:
            self._translate(messages, out)
        except APIError as exc:
            if not out:
                raise
            self.error = exc
        except SHAPE_ERRORS as exc:  # valid JSON of an unexpected shape: typed, not a traceback
            error = shape_error(exc, self._provider, self._model, "a stream event")
            if not out:
                raise error from exc
            self.error = error
        return out

    def _translate(self, messages: Any, out: list[dict]) -> None:
        raise NotImplementedError


#: What translating valid JSON of an unexpected shape raises (``"x".get``, ``None["k"]``, …).
SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError)


def shape_error(exc: Exception, provider: str | None, model: str | None, what: str) -> APIError:
    """The :class:`APIError` for an upstream body or event whose JSON has an unexpected shape."""
    return APIError(
        f"The upstream sent {what} of an unexpected shape ({type(exc).__name__}: {exc})",
        llm_provider=provider,
        model=model,
    )


_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}
_CONTEXT_PHRASES = (
    "context length",
    "context_length",
    "maximum context",
    "context window",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "reduce the length",
    "exceed context limit",
)
_POLICY_CODES = {"content_policy_violation", "content_filter", "content_policy"}
_POLICY_PHRASES = (
    "content policy",
    "content_policy",
    "content management policy",
    "safety system",
    "content filter",
)


def error_class_for_message(status: int, message: str, code: Any = None, etype: Any = None) -> type[APIError]:
    """The exception class for an error with this status, message and (OpenAI-style) code and
    type: the status's class, made :class:`ContextWindowExceededError` or
    :class:`ContentPolicyViolationError` when a 400-ish error's code or wording says so."""
    cls = exception_for_status(status)
    if status in (400, 413, 422) or cls is APIError or status < 400:
        code_s = str(code).lower() if code is not None else ""
        lowered = message.lower()
        if code_s in _CONTEXT_CODES or any(p in lowered for p in _CONTEXT_PHRASES):
            return ContextWindowExceededError
        if code_s in _POLICY_CODES or str(etype).lower() in _POLICY_CODES or any(p in lowered for p in _POLICY_PHRASES):
            return ContentPolicyViolationError
    return cls


def decode_json_body(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def error_from_openai_body(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes | Any,
    provider: str | None,
    model: str | None,
) -> APIError:
    """Map an OpenAI-style error (``{"error": {"message", "type", "param", "code"}}``)."""
    data = decode_json_body(body) if isinstance(body, (bytes, bytearray)) else body
    error = data.get("error", data) if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        code = error.get("code")
        etype = error.get("type")
        param = error.get("param")
    else:
        if isinstance(error, str):
            message = error
        elif isinstance(body, (bytes, bytearray)):
            message = body[:500].decode("utf-8", "replace") or f"HTTP {status}"
        else:
            message = str(body)
        code = etype = param = None
    cls = error_class_for_message(status, message, code, etype)
    return cls(
        message,
        status_code=status if status >= 400 else None,
        llm_provider=provider,
        model=model,
        headers=dict(headers or {}),
        body=data if data is not None else body,
        code=None if code is None else str(code),
        param=param,
        error_type=etype,
    )
