"""A stalled stream times out the same way however the upstream's bytes were split into reads.

The fake upstream sends the first chunks (a) in one write, (b) one write per chunk with pauses,
(c) with a write boundary inside a chunk; then it stalls for ``STALL`` seconds before sending the
rest. Only ``stream_timeout`` (or a plain call's ``timeout``) is set, as code written for LiteLLM
does: the stall must raise ``Timeout`` carrying the text so far, well before the stall ends —
sync and async, through the Router and through ``completion``, on an idle and on a busy CPU.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator

import pytest

import llmrelay
from llmrelay import Router
from router.conftest import MESSAGES, MODES, deployment
from servers.loopback import Sleep, sse_frame
from servers.openai_server import ChunkFactory, stream_reply, text_stream_events

TIMEOUT = 0.5
STALL = 4.0
TEXT = "one two three four five six"
SHAPES = pytest.mark.parametrize("shape", ["one_write", "write_per_chunk", "split_inside_chunk"])
_busy = pytest.mark.slow
CPU = pytest.mark.parametrize("cpu", ["idle", pytest.param("busy_thread", marks=_busy), pytest.param("busy_process", marks=_busy)])


def _stalling_reply(shape: str):
    """Role + three content chunks shaped by ``shape``, a stall, then the rest of the stream."""
    events = text_stream_events(TEXT, factory=ChunkFactory())
    frames = [sse_frame(e) for e in events]
    head, tail = frames[:4], frames[4:]  # role, "one ", "two ", "three "
    if shape == "one_write":
        parts: list = [b"".join(head)]
    elif shape == "write_per_chunk":
        parts = []
        for frame in head:
            parts += [frame, Sleep(0.05)]
    else:
        joined = b"".join(head)
        cut = len(joined) - len(head[-1]) // 2
        parts = [joined[:cut], Sleep(0.05), joined[cut:]]
    return stream_reply([*parts, Sleep(STALL), *tail])


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def _spin_process(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(1000))


@pytest.fixture(scope="module", autouse=True)
def _warm_imports() -> None:
    """The first call imports the transports; that one-time cost is not what these tests time."""
    import aiohttp  # noqa: F401
    import urllib3  # noqa: F401

    import llmrelay.providers.openai  # noqa: F401
    import llmrelay.transport.aio  # noqa: F401
    import llmrelay.transport.sync  # noqa: F401


@pytest.fixture
def cpu_load(cpu: str) -> Iterator[None]:
    """Keep the CPU busy for the test: a Python thread (competing for the GIL) or a process."""
    if cpu == "idle":
        yield
        return
    if cpu == "busy_thread":
        stop = threading.Event()
        worker = threading.Thread(target=_spin, args=(stop,), daemon=True)
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join()
        return
    proc = multiprocessing.get_context("spawn").Process(target=_spin_process, args=(STALL * 3,), daemon=True)
    proc.start()
    try:
        yield
    finally:
        proc.terminate()
        proc.join()


async def _read(mode: str, open_stream) -> tuple[str, float]:
    """Open and read a stream to its end: (text, seconds). Raises what the stream raises."""
    text: list[str] = []
    start = time.monotonic()
    try:
        if mode == "sync":
            for chunk in open_stream():
                text.append(chunk.choices[0].delta.content or "")
        else:
            async for chunk in await open_stream():
                text.append(chunk.choices[0].delta.content or "")
    finally:
        elapsed = time.monotonic() - start
    return "".join(text), elapsed


def _assert_timed_out(info: pytest.ExceptionInfo) -> None:
    # The stall lasts STALL seconds, then the stream goes on to its end: a Timeout with only the
    # text from before the stall can only be the gap's bound (nothing is timed).
    assert isinstance(info.value, llmrelay.Timeout)
    assert info.value.generated_content == "one two three"


@MODES
@SHAPES
@CPU
async def test_router_stream_timeout_bounds_every_gap(upstreams, mode, shape, cpu, cpu_load):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], stream_timeout=TIMEOUT)
    a.enqueue(_stalling_reply(shape))
    if mode == "sync":
        opener = lambda: router.completion(model="g", messages=MESSAGES, stream=True)  # noqa: E731
    else:
        opener = lambda: router.acompletion(model="g", messages=MESSAGES, stream=True)  # noqa: E731
    with pytest.raises(llmrelay.Timeout) as info:
        await _read(mode, opener)
    _assert_timed_out(info)


@MODES
@SHAPES
@pytest.mark.parametrize("setting", ["timeout", "stream_timeout"])
@pytest.mark.parametrize("cpu", ["idle", pytest.param("busy_thread", marks=_busy)])
async def test_completion_timeout_bounds_every_gap(upstreams, mode, shape, setting, cpu, cpu_load):
    a = upstreams[0]
    a.enqueue(_stalling_reply(shape))
    kwargs = {"model": "openai/gpt-4o-mini", "api_base": a.url + "/v1", "api_key": "sk-test",
              "messages": MESSAGES, "stream": True, setting: TIMEOUT}
    opener = (lambda: llmrelay.completion(**kwargs)) if mode == "sync" else (lambda: llmrelay.acompletion(**kwargs))
    with pytest.raises(llmrelay.Timeout) as info:
        await _read(mode, opener)
    _assert_timed_out(info)


@MODES
@SHAPES
async def test_idle_timeout_overrides_stream_timeout_after_the_first_chunk(upstreams, mode, shape):
    # stream_idle_timeout, when given, is the bound on the gaps: a stall shorter than it is fine
    # even though it is longer than stream_timeout.
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], stream_timeout=TIMEOUT, stream_idle_timeout=STALL * 3)
    reply = _stalling_reply(shape)
    reply.body = [Sleep(1.0) if isinstance(p, Sleep) and p.seconds == STALL else p for p in reply.body]
    a.enqueue(reply)
    if mode == "sync":
        opener = lambda: router.completion(model="g", messages=MESSAGES, stream=True)  # noqa: E731
    else:
        opener = lambda: router.acompletion(model="g", messages=MESSAGES, stream=True)  # noqa: E731
    text, _ = await _read(mode, opener)
    assert text == TEXT
