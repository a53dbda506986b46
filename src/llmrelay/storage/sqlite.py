"""SQLite backend: one file, WAL mode, one connection used from the store's own thread."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from typing import Any, Iterator

from .base import Store, StoreError

__all__ = ["SQLiteStore"]

# sqlite3 binds a None parameter only after looking for an adapter for it; with none registered
# that lookup raises (and clears) an AttributeError with a formatted message, per parameter: a
# spend row binds ~7 NULLs, a quarter of what inserting it costs (~13k of ~80k instructions).
# An adapter for NoneType that returns its argument (``{}.get(None)`` is None: a C call, no
# Python frame) makes it one dict lookup; what is stored is the same NULL.
sqlite3.register_adapter(type(None), {}.get)


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row)}


class SQLiteStore(Store):
    """The default store: a file (created with its directory when missing)."""

    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    numbered_params = True
    returning = sqlite3.sqlite_version_info >= (3, 35, 0)

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.describe = f"sqlite:{path}"
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
            self._conn.row_factory = _dict_row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=10000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SQLite database {path}: {exc}") from None
        self._lock = threading.Lock()
        #: the cursor of :meth:`feed_mark` (plain tuples: no row factory)
        self._version_cursor: sqlite3.Cursor | None = None

    def _open_cursor(self) -> Any:
        try:
            return self._conn.cursor()
        except sqlite3.Error as exc:  # (a closed store)
            raise StoreError(f"SQLite error: {exc}") from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            cur = self._open_cursor()
            try:
                # IMMEDIATE takes the write lock up front: two gateways on one file queue
                # (busy_timeout) instead of failing with "database is locked" mid-transaction.
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK")
                raise StoreError(f"SQLite error: {exc}") from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[Any]:
        """One read-only statement in autocommit mode: its own read transaction, without
        ``BEGIN IMMEDIATE`` … ``COMMIT`` around it — which took the write lock (a second
        gateway's writes waited for a change-feed poll) and were two statements more, each
        letting go of the GIL and taking it back from the busy event loop (the change feed is
        polled 4×/s, the budget sweep reads every 2 s)."""
        with self._lock:
            cur = self._open_cursor()
            try:
                yield cur
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite error: {exc}") from None
            finally:
                cur.close()

    def feed_mark(self) -> Any:
        """``PRAGMA data_version`` of this store's connection — which moves only when another
        connection (another gateway process) committed — with the change-feed rows this store
        wrote itself: a few microseconds on the event loop where a query of the feed through the
        store's thread costs a thread hop each way (the change feed is polled 4×/s). None while
        the store's thread holds the connection (a spend batch being written): never waited for."""
        lock = self._lock
        if not lock.acquire(False):
            return None
        try:
            cur = self._version_cursor
            if cur is None:
                cur = self._version_cursor = self._conn.cursor()
                cur.row_factory = None
            cur.execute("PRAGMA data_version")
            return (cur.fetchone()[0], self.feed_writes)
        except sqlite3.Error:  # (closed, or failing: the feed's query says what is wrong)
            return None
        finally:
            lock.release()

    def close(self) -> None:
        super().close()
        with self._lock:
            self._conn.close()
