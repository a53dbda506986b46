"""PostgreSQL backend: psycopg 3 with a small connection pool (``pip install 'llmrelay[postgres]'``)."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Iterator, Sequence

from .base import Store, StoreError

__all__ = ["PostgresStore", "safe_url"]

_MIGRATION_LOCK = 0x6C6C6D72  # "llmr": one advisory lock id for schema migrations


def safe_url(url: str) -> str:
    """The URL without its password (for logs and messages)."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class _Cursor:
    """psycopg's cursor with ``?`` placeholders."""

    __slots__ = ("_cur",)

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cur.executemany(sql.replace("?", "%s"), rows)

    def fetchall(self) -> list[dict[str, Any]]:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount


class PostgresStore(Store):
    """A PostgreSQL database named by a ``postgresql://`` URL (libpq's URI format)."""

    serial = "BIGSERIAL PRIMARY KEY"
    threads = 4

    def __init__(self, url: str, pool_size: int = 4, connect_timeout: float = 3.0) -> None:
        super().__init__()
        try:
            import psycopg
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise StoreError(
                f"a postgresql:// database_url needs psycopg 3 and psycopg-pool "
                f"(pip install 'llmrelay[postgres]'): {exc}"
            ) from None
        self._psycopg = psycopg
        # The pool logs every failed connection attempt; the gateway logs one clear line instead.
        logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
        self.describe = safe_url(url)
        self.threads = pool_size
        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, timeout=connect_timeout,
            kwargs={"row_factory": dict_row, "connect_timeout": max(1, int(connect_timeout))},
            name="llmrelay",
        )
        self._pool.open(wait=False)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        psycopg = self._psycopg
        try:
            with self._pool.connection() as conn:
                with conn.cursor() as cur:
                    yield _Cursor(cur)
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL error: {type(exc).__name__}: {str(exc).strip()[:300]}") from None
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg_pool"):
                raise StoreError(f"PostgreSQL unavailable: {exc}") from None
            raise

    def _migration_lock(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def close(self) -> None:
        super().close()
        self._pool.close(timeout=2.0)
