"""Ingress translators: each API the gateway speaks, mapped onto one canonical call.

An :class:`Ingress` is pure (no I/O): it turns a client's request JSON into a
:class:`CanonicalRequest` (a chat-completions call, or an embeddings call), and the canonical
answer (a ``ModelResponse``, a stream of ``chat.completion.chunk`` objects, an exception) back
into that API's bytes. The gateway runs every ingress through the same request path (auth,
Router, fallbacks and every later step), so nothing downstream knows which API a client spoke.

One module per API: :mod:`.chat` (identity), :mod:`.anthropic`, :mod:`.responses`,
:mod:`.embeddings`, :mod:`.completions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .. import errors
from ..client_params import CHAT_PARAMS

__all__ = ["IngressError", "CanonicalRequest", "Ingress", "StreamEncoder", "Redact"]

Redact = Callable[[str], str]


class IngressError(Exception):
    """A client request the ingress cannot translate: answered with ``status`` in its shape."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code


@dataclass(slots=True)
class CanonicalRequest:
    """What the gateway calls: ``kind`` ``"chat"`` (``messages``) or ``"embedding"`` (``input``).

    ``params`` are chat-completions (or embeddings) keyword arguments as a client could have
    sent them to ``/v1/chat/completions``; they pass the same client-key policy. ``state`` is
    whatever the ingress needs to answer (the original request, a stored conversation…).
    """

    model: str
    messages: Any = None
    stream: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "chat"
    input: Any = None
    state: Any = None


class StreamEncoder:
    """Canonical chunks → the ingress's stream bytes; one per streamed request.

    The gateway calls :meth:`start` once (before the first chunk), :meth:`chunk` per chunk,
    :meth:`error` at most once (an exception after the response started), and :meth:`end`
    once when the stream is over (also after an error).
    """

    def start(self) -> bytes:
        return b""

    def chunk(self, chunk: Any) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def error(self, exc: BaseException, redact: Redact, **options: Any) -> bytes:
        """``options``: ``request_id``, ``max_retry_after`` (see errors.status_and_body)."""
        return errors.error_frame(exc, redact, **options)

    def end(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError


class Ingress:
    """One API: request parsing, answer rendering, error shape. Subclasses override."""

    #: Name in logs and in the 404 listing.
    name = "chat"
    #: The request paths this ingress answers (POST).
    paths: frozenset[str] = frozenset()
    #: One line for the OpenAPI document.
    summary = ""
    #: The parameters a canonical request of this ingress may carry; the gateway screens
    #: ``CanonicalRequest.params`` with the client-key policy against them.
    known_params: frozenset[str] = CHAT_PARAMS

    def parse(self, data: dict[str, Any]) -> CanonicalRequest:  # pragma: no cover - abstract
        """The canonical call for a request body (a JSON object); raises :class:`IngressError`."""
        raise NotImplementedError

    def error_body(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                   type: str | None = None) -> bytes:  # noqa: A002 - the field's name
        """An error response body in this API's shape (OpenAI's by default)."""
        return errors.error_json(message, status, param=param, code=code, type=type)

    def exception(self, exc: BaseException, redact: Redact, **options: Any) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """(status, body, extra headers) for an exception from the library (``options``: see
        errors.status_and_body)."""
        return errors.status_and_body(exc, redact, **options)

    def response_body(self, result: Any, request: CanonicalRequest) -> bytes:  # pragma: no cover - abstract
        """The JSON body for a non-streamed answer."""
        raise NotImplementedError

    def encoder(self, request: CanonicalRequest) -> StreamEncoder:  # pragma: no cover - abstract
        """A fresh encoder for one streamed answer."""
        raise NotImplementedError
