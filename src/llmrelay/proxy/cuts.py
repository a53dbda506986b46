"""Requests the gateway ends itself (a deadline, a client that stops reading, shutdown).

The server marks such a request in its ASGI scope under :data:`SCOPE_CUT` as ``(status,
reason)`` so the app's log line says why; a request cut at shutdown is answered with
:func:`cut_error` (a 503, or an error frame when its stream had started).
"""

from __future__ import annotations

from ..exceptions import ServiceUnavailableError

__all__ = ["SCOPE_CUT", "cut_error"]

#: ASGI scope key: ``(status, reason)`` of a request the server cut.
SCOPE_CUT = "llmrelay.cut"


def cut_error(reason: str | None) -> ServiceUnavailableError:
    """The error a client sees for a request the gateway ended (``reason`` says why)."""
    return ServiceUnavailableError(f"The request was ended by the gateway: {reason or 'shutting down'}.")
