"""Real databases for tests: PostgreSQL from ``LLMRELAY_TEST_DATABASE_URL``, else a server at
127.0.0.1:5432 (db ``test``), else a throwaway one started with ``initdb``/``pg_ctl``; each test
run works in its own schema so parallel runs never collide."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

HOW_TO = ("PostgreSQL tests need a server: set LLMRELAY_TEST_DATABASE_URL=postgresql://user@host:port/db, "
          "run one at 127.0.0.1:5432 with a database 'test', or install the PostgreSQL server binaries "
          "(initdb, pg_ctl) and psycopg (pip install 'llmrelay[postgres]').")

_throwaway: tuple[str, str] | None = None  # (data dir, url)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _start_throwaway() -> str | None:
    global _throwaway
    if _throwaway is not None:
        return _throwaway[1]
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or [shutil.which("pg_ctl") or ""]
    pg_ctl = bins[-1]
    if not pg_ctl or not os.path.exists(pg_ctl) or os.geteuid() == 0:  # the server refuses to run as root
        return None
    initdb = os.path.join(os.path.dirname(pg_ctl), "initdb")
    data = tempfile.mkdtemp(prefix="llmrelay-pg-")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    try:
        subprocess.run([initdb, "-D", data, "-A", "trust", "-U", "postgres"], check=True, capture_output=True, timeout=120)
        subprocess.run([pg_ctl, "-D", data, "-w", "-l", os.path.join(data, "log"), "-o",
                        f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    import atexit

    atexit.register(lambda: subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True))
    _throwaway = (data, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    return _throwaway[1]


def postgres_url() -> str | None:
    """A PostgreSQL server URL to test against, or None (then skip with ``HOW_TO``)."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return None
    url = os.environ.get("LLMRELAY_TEST_DATABASE_URL")
    if url:
        return url
    if _answers("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/test"
    return _start_throwaway()


def with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@contextlib.contextmanager
def postgres_schema(url: str, prefix: str = "llmrelay_t") -> Iterator[str]:
    """A fresh schema for this test run; yields a URL whose tables live in it (dropped after)."""
    import psycopg

    schema = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def database_for(backend: str, directory: str, prefix: str = "llmrelay_t") -> Iterator[str]:
    """A database URL for ``backend`` ("sqlite": a file in ``directory``; "postgres": a fresh
    schema), or ``pytest.skip`` with how to run the PostgreSQL tests."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/llmrelay.db"
        return
    url = postgres_url()
    if url is None:
        import pytest

        pytest.skip(HOW_TO)
    with postgres_schema(url, prefix) as schema_url:
        yield schema_url


class _HeldReads:
    """Store mixin: the next call of one store method with given leading arguments
    (:meth:`hold`) runs, then its return waits until :attr:`release` is set; :attr:`read` is set
    once it has run (a database read still in flight, deterministically)."""

    _hold: tuple | None = None

    def hold(self, method: str, *args: Any) -> None:
        import asyncio

        self._hold = (method, args)
        self.read = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, fn: Any, *args: Any) -> Any:
        result = await super().run(fn, *args)
        hold = self._hold
        if hold is not None and getattr(fn, "__name__", None) == hold[0] and args[:len(hold[1])] == hold[1]:
            self._hold = None
            self.read.set()
            await self.release.wait()
        return result


def held_store(url: str) -> Any:
    """An opened, migrated store for ``url`` (from :func:`database_for`) that can hold a read
    open: ``store.hold("get_effective", "key", token)``, then ``await store.read.wait()``, change
    something, ``store.release.set()``."""
    if url.startswith("sqlite:///"):
        from llmrelay.storage.sqlite import SQLiteStore

        store = type("HeldSQLiteStore", (_HeldReads, SQLiteStore), {})(url[len("sqlite:///"):])
    else:
        from llmrelay.storage.postgres import PostgresStore

        store = type("HeldPostgresStore", (_HeldReads, PostgresStore), {})(url)
    store.migrate()
    return store
