"""Where the gateway keeps keys, teams, users, budgets and spend: SQLite or PostgreSQL.

``open_store(url)`` picks the backend from the URL: ``postgresql://`` / ``postgres://`` →
:class:`~llmrelay.storage.postgres.PostgresStore`; ``sqlite:///path`` or no URL →
:class:`~llmrelay.storage.sqlite.SQLiteStore` (by default ``llmrelay.db`` in the gateway's
data directory, see :func:`data_dir`). Both implement :class:`~llmrelay.storage.base.Store`.
Not imported by ``import llmrelay``.
"""

from __future__ import annotations

import os

from .base import ENTITIES, Store, StoreConflict, StoreError

__all__ = ["open_store", "data_dir", "default_sqlite_path", "database_url", "Store", "StoreError",
           "StoreConflict", "ENTITIES"]

#: Environment variable naming the gateway's data directory.
DATA_DIR_ENV = "LLMRELAY_DATA_DIR"


def data_dir() -> str:
    """``$LLMRELAY_DATA_DIR``, else ``$XDG_DATA_HOME/llmrelay``, else ``~/.local/share/llmrelay``."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return explicit
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "llmrelay")


def default_sqlite_path() -> str:
    return os.path.join(data_dir(), "llmrelay.db")


def database_url(configured: str | None) -> str | None:
    """The configured ``database_url``, else ``$DATABASE_URL``, else None (SQLite default)."""
    return configured or os.environ.get("DATABASE_URL") or None


def open_store(url: str | None = None) -> Store:
    """Open (not migrate) the store a URL names; :class:`StoreError` if it cannot be opened."""
    if url is None or url == "":
        from .sqlite import SQLiteStore

        return SQLiteStore(default_sqlite_path())
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore(url[len("sqlite:///"):])  # sqlite:////abs/path or sqlite:///relative
    raise StoreError(
        f"unsupported database_url scheme in {url.split('://', 1)[0]!r}: use postgresql://… "
        "or sqlite:///path (or leave it out for SQLite in the data directory)"
    )
