"""Streams under the router: end-of-stream bookkeeping and first-chunk peeking.

The router returns the very ``CustomStreamWrapper`` that ``completion`` made. Before returning
it, the router reads the first chunk (so anything that fails before it — an HTTP error, a
dropped connection, a time-to-first-token timeout, an error event as the first event — can
still be retried or fall back), then puts that chunk back at the head of the wrapper's queue:
the caller sees an untouched stream and no per-chunk work is added.

:class:`TrackedSource` sits between the wrapper and its source to learn when the stream ends:
it releases the deployment's in-flight slot, adds the tokens to its tpm window, and records a
failure that happens after the first chunk (cooldown accounting; the error itself reaches the
caller with the text so far and the router's ``attempts``).
"""

from __future__ import annotations

import time
from typing import Any

from ..exceptions import APIError
from .policy import attempt_record

__all__ = ["TrackedSource"]


class TrackedSource:
    """Wraps a stream source; one extra call per batch, nothing per chunk."""

    __slots__ = ("inner", "_router", "_deployment", "_state", "_closed", "delivered", "attempts",
                 "_count_tokens", "_group", "_start")

    def __init__(self, inner: Any, router: Any, deployment: Any, state: Any, attempts: list,
                 count_tokens: bool, group: str, start: float) -> None:
        self.inner = inner
        self._router = router
        self._deployment = deployment
        self._state = state
        self._closed = False
        #: Set once the first chunk has been handed to the caller: later failures are final.
        self.delivered = False
        self.attempts = attempts
        self._count_tokens = count_tokens
        self._group = group
        self._start = start

    @property
    def complete(self) -> bool:
        return getattr(self.inner, "complete", True)

    def set_read_timeout(self, seconds: float | None) -> None:
        setter = getattr(self.inner, "set_read_timeout", None)
        if setter is not None:
            setter(seconds)

    def next_batch(self) -> list | None:
        try:
            return self.inner.next_batch()
        except BaseException as exc:
            if self.delivered:
                self._late_failure(exc)
            raise

    async def anext_batch(self) -> list | None:
        try:
            return await self.inner.anext_batch()
        except BaseException as exc:
            if self.delivered:
                self._late_failure(exc)
            raise

    def _late_failure(self, exc: BaseException) -> None:
        self._router._record_failure(self._deployment, exc, None, True)
        if isinstance(exc, APIError) and not exc.attempts:
            record = attempt_record(self._group, self._deployment, exc, time.monotonic() - self._start)
            record["after_first_chunk"] = True
            exc.attempts = [*self.attempts, record]

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._deployment.done()
        if self._count_tokens and self._state.ended:
            try:
                self._deployment.add_tokens(self._state.usage().total_tokens or 0)
            except Exception:  # noqa: BLE001 - bookkeeping must not break the caller
                pass
        budgets = self._router.budgets
        if budgets.windows and self._state.ended:
            from .budget_limits import stream_cost

            try:
                budgets.charge(self._deployment, stream_cost(self._deployment, self._state.usage()))
            except Exception:  # noqa: BLE001 - bookkeeping must not break the caller
                pass

    def close(self) -> None:
        self._finish()
        self.inner.close()

    async def aclose(self) -> None:
        self._finish()
        await self.inner.aclose()
