"""Where cache entries live: in memory, on disk, or in Redis. One small interface:

``get(key) -> bytes | None``, ``set(key, value, ttl)`` and their async twins ``aget``/``aset``.
A backend that cannot answer (Redis down) behaves as a miss and drops the write: the cache never
fails a call.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from typing import Any

from ..redis_link import RedisLink, RedisUnavailable

__all__ = ["LocalBackend", "DiskBackend", "RedisBackend"]


class LocalBackend:
    """In-process LRU with per-entry expiry (``max_size`` entries; thread-safe)."""

    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max(1, int(max_size))
        self._data: OrderedDict[str, tuple[float | None, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            expires, value = item
            if expires is not None and expires <= time.monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        expires = None if ttl is None else time.monotonic() + ttl
        with self._lock:
            self._data[key] = (expires, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_size:
                self._data.popitem(last=False)

    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        self.set(key, value, ttl)

    def clear(self, namespace: str | None = None) -> None:
        with self._lock:
            self._data.clear()


class DiskBackend:
    """A SQLite file (``disk_cache_dir``/cache.sqlite3); survives restarts, shared by the
    processes of one machine. Async calls run in a worker thread."""

    def __init__(self, directory: str | None = None) -> None:
        directory = directory or os.path.join(os.getcwd(), ".llmrelay_cache")
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "cache.sqlite3")
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, expires REAL, value BLOB)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> bytes | None:
        row = self._conn().execute("SELECT expires, value FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        expires, value = row
        if expires is not None and expires <= time.time():
            self._conn().execute("DELETE FROM entries WHERE key = ? AND expires <= ?", (key, time.time()))
            return None
        return bytes(value)

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        expires = None if ttl is None else time.time() + ttl
        self._conn().execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", (key, expires, value))

    async def aget(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        await asyncio.to_thread(self.set, key, value, ttl)

    def clear(self, namespace: str | None = None) -> None:
        self._conn().execute("DELETE FROM entries")


class RedisBackend:
    """Entries as Redis strings under ``prefix``, expiring by Redis itself (``SET … PX``)."""

    def __init__(self, link: RedisLink, prefix: str = "llmrelay:cache:") -> None:
        self.link = link
        self.prefix = prefix

    @staticmethod
    def _ms(ttl: float | None) -> int | None:
        return None if ttl is None else max(1, int(ttl * 1000))

    def get(self, key: str) -> bytes | None:
        try:
            return self.link.run_sync(lambda r: r.get(self.prefix + key))
        except RedisUnavailable:
            return None

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        try:
            self.link.run_sync(lambda r: r.set(self.prefix + key, value, px=self._ms(ttl)))
        except RedisUnavailable:
            pass

    async def aget(self, key: str) -> bytes | None:
        try:
            return await self.link.execute("GET", self.prefix + key)
        except RedisUnavailable:
            return None

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        ms = self._ms(ttl)
        try:
            await self.link.execute("SET", self.prefix + key, value, *(("PX", ms) if ms is not None else ()))
        except RedisUnavailable:
            pass

    def clear(self, namespace: str | None = None) -> None:
        pattern = self.prefix + (f"{namespace}:" if namespace else "") + "*"

        def scan_delete(r: Any) -> None:
            for name in r.scan_iter(match=pattern, count=500):
                r.delete(name)

        try:
            self.link.run_sync(scan_delete)
        except RedisUnavailable:
            pass
