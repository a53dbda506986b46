"""One Redis server as seen by this process: clients, short timeouts, and whether it is up.

Every feature that uses Redis (the response cache, shared rate limits, shared router state,
broadcasts) goes through a :class:`RedisLink`, so they share one connection pool per event loop
and one view of Redis's health:

* every command has a short timeout (``timeout``, default 0.5 s; connecting: 4× that, at least
  2 s), connections come from a pool (warmed at startup), and redis-py's own retries are
  off: a slow or dead Redis costs a request at most one timeout;
* a failure marks the link *down*: callers get their fallback at once (no network) and one
  warning is logged; after a pause (0.5 s, doubling up to 5 s) the next call probes Redis
  again, and the first success marks it *up* with one more log line. Nothing else is needed
  for recovery;
* ``listeners`` are called with ``True``/``False`` on each change (a metric hook), and
  ``state`` gives the counters (``up``, ``failures``, ``transitions``).

The request path's commands (the limiter's script, budget counters, the cache's ``GET``) go
through :meth:`RedisLink.execute` / :meth:`RedisLink.pipeline`: redis-py's own connections
(``make_connection``, ``connect``, ``pack_command(s)``, ``read_response``: its hiredis parser,
socket timeouts and disconnect-on-cancel), but not its client layer. Why: for every command,
``redis.asyncio.Redis.execute_command`` (redis-py 8.1) takes the pool's ``asyncio.Lock`` twice
(``get_connection``, ``release``), runs ``ensure_connection`` (a ``connect()`` check and a
``can_read()`` probe of the socket, there because a pooled connection may have been given back
with a reply unread), awaits four ``record_connection_count`` calls, an after-release event
dispatch and ``record_operation_duration`` (observability hooks: a coroutine each, awaited
even when nothing collects) and wraps the call in ``Retry.call_with_retry``; its ``Pipeline``
adds its own object and stack on top. What replaces it here: a list of idle connections per
event loop, no lock (one loop, one thread), a connection owned by one call from the write to
the last reply and closed, not given back, when that call fails or is cancelled (so nothing
unread is ever pooled and no probe is needed), the command written straight to the transport
(redis-py's private ``_writer``; without it, its ``send_packed_command``).

Measured (``RedisLink`` against ``redis.asyncio`` with the same pool settings, C=1, medians of
9 rounds, load ≈5): the limiter's ``EVALSHA`` 82 against 110 µs (×1.33), a 2-command pipeline
93 against 134 µs (×1.44), ``GET`` 51 against 68 µs; through the gateway
(bench/bench_shared.py part 1, 7 interleaved rounds): shared limits add 0.251 ms at p50 over
per-instance ones, and redis-py's client layer would add 0.034 ms more — most of what is left
under the 0.3 ms target, which on this loaded machine is not met in every run
(docs/scaling.md). The failure behaviour (at most one timeout, the state-change log lines, the
fallback) is this module's either way; :meth:`RedisLink.run` keeps the client layer for the
commands off the request path (router state, broadcasts, ``PING``).

The ``redis`` package (``pip install 'llmrelay[redis]'``) is imported only when a link is used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import quote

__all__ = ["RedisLink", "get_link", "redis_settings_from_env", "RedisUnavailable"]

log = logging.getLogger("llmrelay.redis")

T = TypeVar("T")

_FIRST_PAUSE = 0.5
_MAX_PAUSE = 5.0


class RedisUnavailable(Exception):
    """Redis is down (or was a moment ago); the caller uses its per-instance fallback."""


def _errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.exceptions.RedisError, OSError, asyncio.TimeoutError, TimeoutError)


class RedisLink:
    """A Redis server: ``url`` or ``host``/``port``/``password``/``db``; see the module docstring."""

    def __init__(self, url: str | None = None, *, host: str | None = None, port: int | str | None = None,
                 password: str | None = None, db: int | None = None, username: str | None = None,
                 timeout: float = 0.5, ssl: bool = False, max_connections: int = 256) -> None:
        if not url:
            host = host or "127.0.0.1"
            port = int(port or 6379)
            auth = ""
            if password:
                auth = f"{quote(username or '', safe='')}:{quote(str(password), safe='')}@"
            scheme = "rediss" if ssl else "redis"
            url = f"{scheme}://{auth}{host}:{port}/{int(db or 0)}"
            db = None
        self.url = url
        self.db = None if db is None else int(db)
        self.timeout = float(timeout)
        # Connecting gets more time than a command: a burst of requests opens connections while
        # the event loop is at its busiest, and a local connect is never slow otherwise.
        self.connect_timeout = max(2.0, 4 * self.timeout)
        self.max_connections = int(max_connections)
        self.listeners: list[Callable[[bool], None]] = []
        self.up = True
        self.failures = 0
        self.transitions = 0
        self._retry_at = 0.0
        #: Failures so far: a success only marks the link up again if its call started after
        #: the last failure (a reply to an older command may still arrive while Redis is down).
        self._epoch = 0
        self._pause = _FIRST_PAUSE
        self._clients: dict[Any, Any] = {}  # event loop -> redis.asyncio.Redis
        self._idle: dict[Any, list[Any]] = {}  # event loop -> idle connections of execute()
        self._scripts: dict[str, str] = {}  # sha1 -> script source (loaded again after a restart)
        self._sync: Any = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ description
    @property
    def where(self) -> str:
        """host:port/db, without credentials (for log lines)."""
        rest = self.url.split("://", 1)[-1]
        return rest.rsplit("@", 1)[-1]

    @property
    def state(self) -> dict[str, Any]:
        return {"up": self.up, "where": self.where, "failures": self.failures, "transitions": self.transitions}

    def __repr__(self) -> str:
        return f"<RedisLink {self.where} {'up' if self.up else 'down'}>"

    # ------------------------------------------------------------------ clients
    def _db(self) -> dict[str, int]:
        return {} if self.db is None else {"db": self.db}

    def client(self) -> Any:
        """The ``redis.asyncio.Redis`` for the running event loop (one pool per loop)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            from redis.asyncio import ConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # A plain pool (a blocking one costs ~25 µs per command); its bound is far above the
            # commands one process has in flight at once (each takes ~0.1 ms).
            pool = ConnectionPool.from_url(
                self.url, max_connections=self.max_connections,
                socket_timeout=self.timeout, socket_connect_timeout=self.connect_timeout,
                retry=Retry(NoBackoff(), 0), health_check_interval=0, **self._db(),
            )
            client = Redis(connection_pool=pool)
            for old in [k for k in self._clients if k.is_closed()]:
                del self._clients[old]
                self._idle.pop(old, None)
            self._clients[loop] = client
        return client

    def sync_client(self) -> Any:
        """A thread-safe synchronous ``redis.Redis`` (for ``completion()``)."""
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    from redis import Redis
                    from redis.backoff import NoBackoff
                    from redis.retry import Retry

                    self._sync = Redis.from_url(
                        self.url, socket_timeout=self.timeout, socket_connect_timeout=self.connect_timeout,
                        retry=Retry(NoBackoff(), 0), **self._db(),
                    )
        return self._sync

    async def aclose(self) -> None:
        """Close this loop's client (at shutdown)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for conn in self._idle.pop(loop, ()):
            try:
                await conn.disconnect()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
        client = self._clients.pop(loop, None)
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass

    # ------------------------------------------------------------------ health
    def available(self) -> bool:
        """Whether a call may be tried now (up, or down long enough to probe again)."""
        return self.up or time.monotonic() >= self._retry_at

    def succeeded(self) -> None:
        if not self.up:
            with self._lock:
                if self.up:
                    return
                self.up = True
                self.transitions += 1
                self._pause = _FIRST_PAUSE
            log.warning("Redis at %s is reachable again: shared mode resumed", self.where)
            self._notify(True)

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self._epoch += 1
            now = time.monotonic()
            was_up = self.up
            if was_up:
                self.up = False
                self.transitions += 1
                self._pause = _FIRST_PAUSE
            else:
                self._pause = min(self._pause * 2, _MAX_PAUSE)
            self._retry_at = now + self._pause
        if was_up:
            log.warning(
                "Redis at %s is unreachable (%s: %s): cache bypassed, limits and router state per "
                "instance until it returns", self.where, type(exc).__name__, str(exc)[:200],
            )
            self._notify(False)

    def _notify(self, up: bool) -> None:
        for listener in list(self.listeners):
            try:
                listener(up)
            except Exception:  # noqa: BLE001 - a metric hook must not break requests
                log.debug("redis state listener failed", exc_info=True)

    def _drop_pool(self) -> None:
        """Forget this loop's client: after a Redis restart every pooled connection is stale,
        and the next call should probe with a fresh one, not find them one by one."""
        for conn in self._idle.pop(asyncio.get_running_loop(), ()):
            _close_soon(conn)
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            spawn(_close_quietly(client))

    # ------------------------------------------------------------------ calls
    async def run(self, call: Callable[[Any], Awaitable[T]]) -> T:
        """``await call(client)``; raises :class:`RedisUnavailable` when Redis is (or just went) down."""
        if not self.up and time.monotonic() < self._retry_at:
            raise RedisUnavailable(self.where)
        epoch = self._epoch
        try:
            result = await call(self.client())
        except asyncio.CancelledError:
            raise
        except _errors() as exc:
            self.failed(exc)
            self._drop_pool()
            raise RedisUnavailable(self.where) from exc
        if not self.up and epoch == self._epoch:
            self.succeeded()
        return result

    async def warm(self, connections: int = 8) -> None:
        """Open ``connections`` connections of the request path (:meth:`execute`) now (at
        startup), so that a first burst of requests does not have to connect while the event
        loop is busy serving them; and one of the client's (rare commands)."""
        try:
            await asyncio.gather(self.run(lambda r: r.ping()),
                                 *(self.execute("PING") for _ in range(max(1, connections))))
        except RedisUnavailable:
            pass

    # ------------------------------------------------------------------ the fast path
    def script(self, source: str) -> str:
        """Register a Lua script; its SHA1 for :meth:`execute` ``("EVALSHA", sha, …)`` (loaded
        on demand: a ``NOSCRIPT`` reply loads it and sends the command again)."""
        import hashlib

        sha = hashlib.sha1(source.encode()).hexdigest()
        self._scripts[sha] = source
        return sha

    async def execute(self, *args: Any) -> Any:
        """One command, one round trip: its reply (redis-py's parsing; error replies raise
        ``redis.ResponseError``). :class:`RedisUnavailable` when Redis is (or just went) down."""
        return (await self.pipeline((args,), raise_on_error=True))[0]

    async def pipeline(self, commands: Any, raise_on_error: bool = False) -> list[Any]:
        """Several commands in one write and one round trip; their replies in order (an error
        reply is returned as its exception unless ``raise_on_error``)."""
        if not self.up and time.monotonic() < self._retry_at:
            raise RedisUnavailable(self.where)
        epoch = self._epoch
        loop = asyncio.get_running_loop()
        idle = self._idle.get(loop)
        if idle is None:
            idle = self._idle[loop] = []
        conn = idle.pop() if idle else None
        try:
            if conn is None:
                conn = self.client().connection_pool.make_connection()
                await conn.connect()
            replies = await _send(conn, commands)
            again = [i for i, r in enumerate(replies) if _noscript(r) and str(commands[i][1]) in self._scripts]
            if again:  # Redis restarted empty: load the scripts, send those commands again
                for sha in {str(commands[i][1]) for i in again}:
                    await _send(conn, (("SCRIPT", "LOAD", self._scripts[sha]),))
                for i, reply in zip(again, await _send(conn, [commands[i] for i in again])):
                    replies[i] = reply
        except asyncio.CancelledError:
            if conn is not None:  # a reply may still come: the connection cannot be reused
                _close_soon(conn)
            raise
        except _errors() as exc:
            if conn is not None:
                _close_soon(conn)
            self.failed(exc)
            self._drop_pool()
            raise RedisUnavailable(self.where) from exc
        if self._idle.get(loop) is idle:
            idle.append(conn)
        else:  # the pool was dropped meanwhile (a failure): do not keep an old connection
            _close_soon(conn)
        if not self.up and epoch == self._epoch:
            self.succeeded()
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies

    async def probe(self) -> bool:
        """When down and due for a retry: PING now. Whether Redis is up."""
        if not self.up and self.available():
            try:
                await self.run(lambda r: r.ping())
            except RedisUnavailable:
                pass
        return self.up

    def run_sync(self, call: Callable[[Any], T]) -> T:
        """The synchronous twin of :meth:`run`."""
        if not self.up and time.monotonic() < self._retry_at:
            raise RedisUnavailable(self.where)
        epoch = self._epoch
        try:
            result = call(self.sync_client())
        except _errors() as exc:
            self.failed(exc)
            try:  # after a restart every pooled connection is stale: start afresh
                self.sync_client().connection_pool.disconnect()
            except Exception:  # noqa: BLE001
                pass
            raise RedisUnavailable(self.where) from exc
        if not self.up and epoch == self._epoch:
            self.succeeded()
        return result


_background: set[asyncio.Task] = set()


def spawn(coro: Any) -> None:
    """Run ``coro`` in the background on the running loop, keeping a reference until it ends
    (closed unrun when no loop is running). Shared by the Redis-backed modules' fire-and-forget writes."""
    try:
        task = asyncio.get_running_loop().create_task(coro)
    except RuntimeError:
        coro.close()
        return
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _send(conn: Any, commands: Any) -> list[Any]:
    """Write ``commands`` on ``conn`` and read their replies (error replies as exceptions)."""
    import redis

    packed = conn.pack_commands(commands) if len(commands) > 1 else conn.pack_command(*commands[0])
    writer = getattr(conn, "_writer", None)
    if writer is not None and conn.is_connected:
        writer.writelines(packed)  # a few hundred bytes: the transport takes them at once
    else:
        await conn.send_packed_command(packed, check_health=False)
    out = []
    for _ in commands:
        try:
            out.append(await conn.read_response())
        except redis.exceptions.ResponseError as exc:
            out.append(exc)
    return out


def _noscript(reply: Any) -> bool:
    return isinstance(reply, Exception) and type(reply).__name__ == "NoScriptError"


def _close_soon(conn: Any) -> None:
    spawn(conn.disconnect(nowait=True))


async def _close_quietly(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:  # noqa: BLE001 - it is being thrown away
        pass


_links: dict[tuple[str, int | None, float], RedisLink] = {}
_links_lock = threading.Lock()


def get_link(url: str | None = None, **settings: Any) -> RedisLink:
    """The process's :class:`RedisLink` for these settings (one per server and timeout)."""
    probe = RedisLink(url, **settings)
    key = (probe.url, probe.db, probe.timeout)
    with _links_lock:
        link = _links.get(key)
        if link is None:
            link = _links[key] = probe
        return link


def redis_settings_from_env(environ: dict[str, str] | None = None) -> dict[str, Any] | None:
    """``REDIS_URL`` or ``REDIS_HOST`` (+ ``REDIS_PORT``, ``REDIS_PASSWORD``, ``REDIS_USERNAME``,
    ``REDIS_DB``), as LiteLLM reads them; None when neither is set."""
    env = os.environ if environ is None else environ
    if env.get("REDIS_URL"):
        return {"url": env["REDIS_URL"]}
    if env.get("REDIS_HOST"):
        out: dict[str, Any] = {"host": env["REDIS_HOST"]}
        for name, key in (("REDIS_PORT", "port"), ("REDIS_PASSWORD", "password"),
                          ("REDIS_USERNAME", "username"), ("REDIS_DB", "db")):
            if env.get(name):
                out[key] = env[name]
        return out
    return None
