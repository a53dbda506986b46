"""The Responses API's conversation state in the gateway's database (write-behind, read-through).

With a database (the key store: ``database_url``, or the default SQLite file once it exists),
every :class:`~llmrelay.response_store.ResponseStore` put and delete is queued here (never
waits) and a background task writes the queue every ``interval`` seconds, one transaction per
batch, each row with its expiry as a Unix time. A ``previous_response_id`` (or ``GET``/``DELETE
/v1/responses/{id}``) missing from memory is read from the database into memory, so another
instance or a restarted gateway continues the conversation. Expired rows are never read and are
pruned every ``PRUNE_INTERVAL`` seconds. Without a database the state stays in memory only.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ..response_store import ResponseStore
from ..storage import StoreError
from .write_behind import WriteBehind

if TYPE_CHECKING:
    from .keys import KeyManager

__all__ = ["ResponseDB", "responses_db", "MAX_QUEUED", "PRUNE_INTERVAL"]

log = logging.getLogger("llmrelay.proxy.response_db")

#: Most changes held while the database is unreachable (the oldest are dropped beyond).
MAX_QUEUED = 50_000
#: Most changes per write.
BATCH = 500
#: Seconds between deletions of expired rows.
PRUNE_INTERVAL = 600.0


class ResponseDB(WriteBehind):
    """Persists one :class:`ResponseStore` in the database of a :class:`KeyManager`."""

    what = "Responses API state"
    idle_wake = PRUNE_INTERVAL  # (after_flush prunes expired rows)

    def __init__(self, keys: "KeyManager", memory: ResponseStore, interval: float = 0.5) -> None:
        super().__init__(interval)
        self.keys = keys
        self.memory = memory
        self.ops: deque[tuple] = deque(maxlen=MAX_QUEUED)
        self._last_prune = float("-inf")
        #: Bumped by every delete: a read in flight then may hold the deleted response.
        self._deletes = 0
        memory.persist = self

    # ------------------------------------------------------------------ ResponseStore.persist
    def put(self, response_id: str, conversation: list, response: dict | None, expires_at: float) -> None:
        self.ops.append(("put", response_id, conversation, response, expires_at))
        if self.waiter is not None:
            self.wake()

    def delete(self, response_id: str) -> None:
        self._deletes += 1
        self.ops.append(("delete", response_id))
        if self.waiter is not None:
            self.wake()

    def has_work(self) -> bool:
        return bool(self.ops)

    # ------------------------------------------------------------------ WriteBehind
    def lost(self, exc: BaseException) -> None:
        log.warning("%d Responses API state changes not written at shutdown (%s)", len(self.ops), exc)

    def failed(self, exc: StoreError) -> None:
        if self._failing == 1:
            log.error("Responses API state not written to the database (kept queued): %s", exc)

    async def _store(self) -> Any:
        return self.keys.store or await self.keys._try_open()

    async def after_flush(self) -> None:
        self._failing = 0
        now = time.monotonic()
        # (the store the key manager has open: opening one is its maintenance loop's job, not
        # worth a look for a database file every interval here when there is none)
        if now - self._last_prune >= PRUNE_INTERVAL and (store := self.keys.store) is not None:
            self._last_prune = now
            await store.run(store.prune_responses, time.time())

    async def flush(self) -> None:
        """Write every queued change; :class:`StoreError` (changes kept) if the database fails."""
        ops = self.ops
        while ops:
            store = await self._store()
            if store is None:
                if self.keys.url is None:  # no database (yet): memory only
                    ops.clear()
                    return
                raise StoreError("the database is unavailable")
            await self.write_batch(ops, store, store.write_responses, BATCH)

    # ------------------------------------------------------------------ read-through
    async def load(self, response_id: Any) -> None:
        """Bring a response missing from memory back from the database (if it is there and
        not expired); a database failure only logs (the caller answers "not found")."""
        if not isinstance(response_id, str) or self.memory.get(response_id) is not None \
                or ("delete", response_id) in self.ops:  # deleted here, not written yet
            return
        deletes = self._deletes
        try:
            store = await self._store()
            if store is None:
                return
            found = await store.run(store.read_response, response_id, time.time())
        except StoreError as exc:
            log.error("Responses API state could not be read from the database: %s", exc)
            return
        if found is not None and deletes == self._deletes:  # (a delete meanwhile: it may be this one)
            conversation, response, expires_at = found
            self.memory.restore(response_id, conversation, response, expires_at - time.time())


def responses_db(keys: "KeyManager | None", ingress: Any) -> ResponseDB | None:
    """The persistence of the Responses ingress's store, for a gateway with a key manager
    (written at its spend interval, ``proxy_batch_write_at``); None without one."""
    if keys is None:
        return None
    return ResponseDB(keys, ingress.store, keys.spend.interval)
