"""Conversation state for the Responses API's ``previous_response_id``, kept in memory.

Each stored response maps to the conversation it ends (chat messages, without
``instructions``). Entries expire ``ttl`` seconds after they were stored (default one hour) and
the oldest go first beyond ``max_entries``; a lookup of an unknown or expired id returns None.
One store per process. A gateway with a database also writes every change behind to it
(:attr:`ResponseStore.persist`, see :mod:`llmrelay.proxy.response_db`) and looks a miss up
there, so other workers, instances and a restarted gateway continue the conversation.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

__all__ = ["ResponseStore", "DEFAULT_TTL", "DEFAULT_MAX_ENTRIES"]

DEFAULT_TTL = 3600.0
DEFAULT_MAX_ENTRIES = 10_000


class ResponseStore:
    """Response id → conversation, with expiry. Thread-safe (the sync SDK may use threads)."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[float, list[dict[str, Any]], dict[str, Any] | None]] = OrderedDict()
        self._lock = threading.Lock()
        #: Told of every put (``put(id, conversation, response, expires_at)``, Unix time) and
        #: delete (``delete(id)``); must not block. None: memory only.
        self.persist: Any = None

    def put(self, response_id: str, conversation: list[dict[str, Any]], response: dict[str, Any] | None = None) -> None:
        """Keep the conversation a response ends (and the response object, for retrieval)."""
        if self.persist is not None:
            self.persist.put(response_id, conversation, response, time.time() + self.ttl)
        self.restore(response_id, conversation, response, self.ttl)

    def restore(self, response_id: str, conversation: list[dict[str, Any]], response: dict[str, Any] | None,
                ttl: float) -> None:
        """Keep an entry for ``ttl`` more seconds without telling :attr:`persist` (read back)."""
        with self._lock:
            self._items[response_id] = (time.monotonic() + ttl, conversation, response)
            self._items.move_to_end(response_id)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def _entry(self, response_id: str) -> tuple[float, list[dict[str, Any]], dict[str, Any] | None] | None:
        entry = self._items.get(response_id)
        if entry is not None and entry[0] < time.monotonic():
            del self._items[response_id]
            return None
        return entry

    def get(self, response_id: str) -> list[dict[str, Any]] | None:
        """The conversation ``response_id`` ends, or None (unknown or expired)."""
        with self._lock:
            entry = self._entry(response_id)
            return None if entry is None else list(entry[1])

    def response(self, response_id: str) -> dict[str, Any] | None:
        """The stored response object, or None."""
        with self._lock:
            entry = self._entry(response_id)
            return None if entry is None else entry[2]

    def delete(self, response_id: str) -> bool:
        """Forget a response; whether it was there."""
        with self._lock:
            found = self._items.pop(response_id, None) is not None
        if found and self.persist is not None:
            self.persist.delete(response_id)
        return found

    def __len__(self) -> int:
        return len(self._items)
