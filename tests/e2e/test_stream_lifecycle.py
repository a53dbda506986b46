"""Streams release their connection: exhausted, closed, broken out of, left to the GC."""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import time

import pytest

import llmrelay
from e2e.conftest import kwargs_for
from servers.openai_server import FakeOpenAIServer, hanging_stream


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_exhausted_stream_returns_connection_to_pool(server):
    for _ in range(3):
        list(llmrelay.completion(**kwargs_for(server, stream=True)))
    ids = {r.connection_id for r in server.requests}
    assert len(ids) == 1  # keep-alive: one connection served all three


def test_close_releases_a_hanging_stream(server):
    server.enqueue(hanging_stream(after_chunks=2))
    stream = llmrelay.completion(**kwargs_for(server, stream=True))
    next(stream)
    stream.close()
    server.wait_all_closed(timeout=2)
    assert list(stream) == []


def test_context_manager_releases(server):
    server.enqueue(hanging_stream(after_chunks=2))
    with llmrelay.completion(**kwargs_for(server, stream=True)) as stream:
        next(stream)
    server.wait_all_closed(timeout=2)


def test_break_then_gc_releases(server):
    server.enqueue(hanging_stream(after_chunks=2))
    for _chunk in llmrelay.completion(**kwargs_for(server, stream=True)):
        break
    gc.collect()
    server.wait_all_closed(timeout=2)


def test_async_aclose_and_context_manager_release(server):
    async def main():
        server.enqueue(hanging_stream(after_chunks=2), hanging_stream(after_chunks=2), hanging_stream(after_chunks=2))
        stream = await llmrelay.acompletion(**kwargs_for(server, stream=True))
        await stream.__anext__()
        await stream.aclose()
        await server.await_all_closed(timeout=2)
        async with await llmrelay.acompletion(**kwargs_for(server, stream=True)) as stream:
            await stream.__anext__()
        await server.await_all_closed(timeout=2)
        async for _chunk in await llmrelay.acompletion(**kwargs_for(server, stream=True)):
            break
        gc.collect()
        await server.await_all_closed(timeout=2)

    asyncio.run(main())


def test_idle_timeout_between_chunks(mode, server):
    server.enqueue(hanging_stream(after_chunks=2))
    from e2e.conftest import stream_until_error

    chunks, error, _ = stream_until_error(mode, **kwargs_for(server, timeout=0.3))
    assert isinstance(error, llmrelay.Timeout)


def _wait_idle(srv, most: int = 1, timeout: float = 10.0) -> int:
    """Wait until at most ``most`` connections stay open: one may sit idle in the keep-alive
    pool (a stream whose whole body arrived in its first read goes back to the pool)."""
    deadline = time.monotonic() + timeout
    while srv.open_connections > most and time.monotonic() < deadline:
        time.sleep(0.05)
    return srv.open_connections


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.mark.slow
def test_ten_thousand_abandoned_sync_streams_leak_nothing():
    with FakeOpenAIServer() as srv:
        kw = kwargs_for(srv, stream=True)
        for _ in range(200):  # warm up pools, caches, allocator
            next(iter(llmrelay.completion(**kw)))
        gc.collect()
        fds, rss = _open_fds(), _rss_mib()
        for _ in range(10_000):
            stream = llmrelay.completion(**kw)
            next(stream)
            del stream  # abandoned after one chunk
        gc.collect()
        assert _wait_idle(srv) <= 1
        assert _open_fds() <= fds + 2
        assert _rss_mib() - rss < 40


@pytest.mark.slow
def test_ten_thousand_abandoned_async_streams_leak_nothing():
    with FakeOpenAIServer() as srv:
        kw = kwargs_for(srv, stream=True)

        async def main():
            async def one():
                stream = await llmrelay.acompletion(**kw)
                await stream.__anext__()

            for _ in range(200):
                await one()
            gc.collect()
            fds, rss = _open_fds(), _rss_mib()
            for _ in range(10_000):
                await one()
            gc.collect()
            for _ in range(200):
                if srv.open_connections <= 1:
                    break
                await asyncio.sleep(0.05)
            assert srv.open_connections <= 1
            assert _open_fds() <= fds + 2
            assert _rss_mib() - rss < 40

        asyncio.run(main())
