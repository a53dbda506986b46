"""Messages to every gateway instance, over Redis pub/sub: cooldowns, key invalidations…

    bc = get_broadcaster(link)
    bc.on("keys.invalidate", lambda payload: key_cache.drop(payload["hash"]))
    bc.start()                                   # in the running event loop, once
    await bc.publish("keys.invalidate", {"hash": h})

One subscriber connection per process and Redis; messages are JSON objects, delivered to the
callbacks of their topic on every instance except the sender (a sender applies its own change
directly). Delivery is at most once and takes about a network round trip; while Redis is down
nothing is delivered, so every ``on_connect`` callback runs after each (re)connection to catch up
from state kept in Redis keys (a cooldown is also a key with a TTL, for instance).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from typing import Any, Callable

import orjson

from .redis_link import RedisLink, RedisUnavailable
from .tasks import stop_task

__all__ = ["Broadcaster", "get_broadcaster"]

log = logging.getLogger("llmrelay.redis")

_instance: tuple[int, str] = (0, "")


def instance_id() -> str:
    """This process, so that it can skip its own messages (fresh after a fork: per worker)."""
    global _instance
    pid = os.getpid()
    if _instance[0] != pid:
        _instance = (pid, f"{uuid.uuid4().hex[:12]}-{pid}")
    return _instance[1]


class Broadcaster:
    """Topic → callbacks over one Redis pub/sub channel (``prefix`` + ``bc``)."""

    def __init__(self, link: RedisLink, prefix: str = "llmrelay:") -> None:
        self.link = link
        self.channel = prefix + "bc"
        self._handlers: dict[str, list[Callable[[dict], Any]]] = {}
        self._on_connect: list[Callable[[], Any]] = []
        self._task: asyncio.Task | None = None
        #: Set while subscribed (per event loop, from :meth:`start`).
        self.connected: asyncio.Event | None = None

    def on(self, topic: str, callback: Callable[[dict], Any]) -> None:
        """Call ``callback(payload)`` for each message of ``topic`` from another instance."""
        self._handlers.setdefault(topic, []).append(callback)

    def on_connect(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` (sync or async) after every (re)connection to Redis."""
        self._on_connect.append(callback)

    async def publish(self, topic: str, payload: dict[str, Any]) -> bool:
        """Send to every other instance; False when Redis is unavailable (not delivered)."""
        message = orjson.dumps({"topic": topic, "from": instance_id(), "payload": payload})
        try:
            await self.link.run(lambda r: r.publish(self.channel, message))
        except RedisUnavailable:
            return False
        return True

    def publish_sync(self, topic: str, payload: dict[str, Any]) -> bool:
        message = orjson.dumps({"topic": topic, "from": instance_id(), "payload": payload})
        try:
            self.link.run_sync(lambda r: r.publish(self.channel, message))
        except RedisUnavailable:
            return False
        return True

    # ------------------------------------------------------------------ listening
    def start(self) -> None:
        """Start listening in the running event loop (idempotent)."""
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            return
        self.connected = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def _listen(self) -> None:
        from redis.asyncio import Redis

        pause = 0.2
        while True:
            client = Redis.from_url(self.link.url, socket_timeout=None,
                                    socket_connect_timeout=self.link.timeout, **self.link._db())
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                pause = 0.2
                await self.link.probe()  # back: shared mode resumes without waiting for traffic
                await self._connected()
                task = asyncio.current_task()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if _cancelling(task):
                        # redis-py's get_message() can take a cancellation for its own timeout and
                        # return None: without this check, asyncio.run() would wait forever here.
                        raise asyncio.CancelledError
                    if message is not None:
                        self._dispatch(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect after any failure
                if self.connected is not None:
                    self.connected.clear()
                log.debug("broadcast listener lost Redis (%s); reconnecting", type(exc).__name__)
            finally:
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except Exception:  # noqa: BLE001
                    pass
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _connected(self) -> None:
        for callback in list(self._on_connect):
            try:
                result = callback()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # noqa: BLE001 - one resync failing must not stop the listener
                log.debug("broadcast on_connect callback failed", exc_info=True)
        if self.connected is not None:
            self.connected.set()

    def _dispatch(self, data: Any) -> None:
        try:
            message = orjson.loads(data)
            if message.get("from") == instance_id():
                return
            topic = message["topic"]
            payload = message.get("payload") or {}
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
            return
        for callback in self._handlers.get(topic, ()):
            try:
                callback(payload)
            except Exception:  # noqa: BLE001 - a bad handler must not stop the listener
                log.warning("broadcast handler for %s failed", topic, exc_info=True)


def _cancelling(task: asyncio.Task | None) -> bool:
    """Whether ``task`` has been asked to cancel (Python 3.11+; always False on 3.10)."""
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling and cancelling())


_broadcasters: dict[tuple[int, str], Broadcaster] = {}


def get_broadcaster(link: RedisLink, prefix: str = "llmrelay:") -> Broadcaster:
    """The process's broadcaster for ``link`` and ``prefix``."""
    key = (id(link), prefix)
    bc = _broadcasters.get(key)
    if bc is None:
        bc = _broadcasters[key] = Broadcaster(link, prefix)
    return bc
