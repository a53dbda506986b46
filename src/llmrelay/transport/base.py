"""What the sync and async transports share; they differ only in how they wait.

A response wraps the HTTP client's response (status, headers, body on demand) and maps the
client's exceptions onto ours. A stream source turns a streamed response and the provider's
decoder into batches of chunk dicts for :class:`~llmrelay.streaming.CustomStreamWrapper`.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from ..codecs.errors import CodecError
from ..exceptions import APIConnectionError, APIError, Timeout
from ..providers.base import HttpRequest, StreamDecoder

__all__ = ["transport_error", "ResponseBase", "StreamSourceBase", "ssl_context", "upstream_headers", "HeaderLines"]

#: Headers the current task adds to every request it sends through the async transport
#: (``{lowercase name: value}``, or None): the gateway's ``traceparent`` for the upstream call.
#: A side channel beside the call's own headers, so that a request's other headers (and the
#: lean client's request head made of them, cached per deployment) stay the same from call to
#: call; a call's own header of the same name is replaced.
upstream_headers: ContextVar[dict[str, str] | None] = ContextVar("llmrelay_upstream_headers", default=None)


class HeaderLines(dict):
    """:data:`upstream_headers` whose request-head lines are written already: ``lines``, the
    bytes ``name: value\\r\\n`` of each (valid) header, which the lean client adds to its
    cached head as they are (the gateway's ``traceparent``, prepared for many requests at once)."""

    __slots__ = ("lines",)


def ssl_context(ssl_verify: bool | str) -> Any:
    """The TLS context for ``ssl_verify`` False (no verification) or a CA bundle path (cached)."""
    context = _contexts.get(ssl_verify)
    if context is None:
        import ssl

        if ssl_verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=ssl_verify)
        _contexts[ssl_verify] = context
    return context


_contexts: dict[Any, Any] = {}


def transport_error(
    exc: BaseException, request: HttpRequest, provider: str | None, model: str | None, timed_out: bool
) -> APIError:
    """``Timeout`` or ``APIConnectionError`` for an HTTP client's exception."""
    where = request.url.split("?", 1)[0]
    if timed_out:
        detail = f": {exc}" if str(exc) else ""
        return Timeout(f"Timed out talking to {where}{detail}", llm_provider=provider, model=model)
    return APIConnectionError(
        f"Connection error talking to {where}: {type(exc).__name__}: {exc}",
        llm_provider=provider,
        model=model,
    )


class ResponseBase:
    """Status and headers of a sent request; the body is read on demand."""

    __slots__ = ("status", "headers", "_raw", "_request", "_provider", "_model")

    def __init__(self, raw: Any, request: HttpRequest, provider: str | None, model: str | None) -> None:
        self._raw = raw
        self.status: int = raw.status
        self.headers: dict[str, str] = dict(raw.headers)
        self._request = request
        self._provider = provider
        self._model = model

    @staticmethod
    def _timed_out(exc: BaseException) -> bool:
        raise NotImplementedError

    def _error(self, exc: BaseException) -> APIError:
        return transport_error(exc, self._request, self._provider, self._model, self._timed_out(exc))

    def _detach(self) -> Any:
        """The client's response, once: later calls get None (close/release are idempotent)."""
        raw, self._raw = self._raw, None
        return raw

    def close(self) -> None:
        """Drop the connection (it may be mid-body, so it is not reused)."""
        raw = self._detach()
        if raw is not None:
            raw.close()

    def release(self) -> None:
        """The body was read to its end: the connection may be reused."""
        raw = self._detach()
        if raw is not None:
            raw.release()


class StreamSourceBase:
    __slots__ = ("_response", "_decoder", "_eof", "_provider", "_model")

    def __init__(self, response: Any, decoder: StreamDecoder, provider: str | None, model: str | None) -> None:
        self._response = response
        self._decoder = decoder
        self._eof = False
        self._provider = provider
        self._model = model

    @property
    def complete(self) -> bool:
        """Whether the provider's end-of-stream marker was seen."""
        return self._decoder.done

    def _ready(self) -> bool:
        """Before a read: raise an error parked behind delivered chunks; False at the end."""
        error = self._decoder.error
        if error is not None:
            self._decoder.error = None
            raise error
        return not self._eof

    def _took(self, data: bytes) -> list:
        """One read's bytes (``b""`` at the end of the body) → the chunks they completed."""
        try:
            if data:
                return self._decoder.feed(data)
            self._eof = True
            self._response.release()
            return self._decoder.close()
        except CodecError as exc:
            raise APIError(
                f"The upstream sent bytes that could not be decoded: {exc}",
                llm_provider=self._provider,
                model=self._model,
            ) from exc

    def close(self) -> None:
        self._response.close()

    async def aclose(self) -> None:
        self._response.close()
