"""Streams under the router: every failure before the first chunk falls back; none after.

Faults: hanging before headers, hanging after headers before the first chunk, dropped before
the first chunk, an error event as the first event, dropped / hanging mid-stream, slow streams.
Timeouts are short (0.4–0.6 s) against faults that last much longer (30 s), so the outcome
itself shows which timeout fired.
"""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay import Router
from servers.openai_server import (
    DEFAULT_TEXT,
    Hang,
    Sleep,
    error_body,
    text_stream_events,
    dropped_stream,
    error_reply,
    hanging_stream,
    in_band_error_stream,
    rate_limit_reply,
    slow_headers_reply,
    slow_stream_reply,
    stream_reply,
)

from .conftest import MESSAGES, MODES, call, counts, deployment

LONG = 30.0  # how long a fault lasts: far beyond any timeout used here


async def closed(server, mode):
    """The client dropped the (hanging) connection of the first request."""
    conn = server.requests[0].connection_id
    if mode == "sync":
        server.wait_connection_closed(conn, timeout=5)
    else:  # the loop must run for aiohttp's close to reach the socket
        await server.await_connection_closed(conn, timeout=5)


def two_deployments(upstreams, **router_kwargs):
    a, b = upstreams[:2]
    # A is picked first (weight) so the fault queued on A is what the call meets
    return Router(model_list=[deployment(a, weight=10_000), deployment(b, weight=1)],
                  num_retries=1, allowed_fails=100, **router_kwargs)


BEFORE_FIRST_CHUNK = {
    "http_500": lambda: error_reply(500),
    "http_429": lambda: rate_limit_reply(retry_after=None),
    "dropped_before_first_chunk": lambda: dropped_stream(after_chunks=0),
    "reset_before_first_chunk": lambda: dropped_stream(after_chunks=0, reset=True),
    "error_event_first": lambda: in_band_error_stream(after_chunks=0),
    "hang_before_headers": lambda: slow_headers_reply(LONG),
    "hang_after_headers": lambda: stream_reply([Hang()]),
}


@MODES
@pytest.mark.parametrize("fault", list(BEFORE_FIRST_CHUNK))
async def test_failure_before_first_chunk_is_retried_elsewhere(upstreams, mode, fault):
    a, b = upstreams[:2]
    router = two_deployments(upstreams, stream_timeout=0.5)
    a.enqueue(BEFORE_FIRST_CHUNK[fault]())
    text, stream = await call(router, mode, True)
    assert text == "from B"
    assert counts(upstreams)[:2] == [1, 1]
    attempts = stream._hidden_params["router_attempts"]
    assert len(attempts) == 1 and attempts[0]["api_base"] == a.url + "/v1"
    if fault.startswith("hang"):
        assert attempts[0]["error"] == "Timeout"
        assert attempts[0]["elapsed"] >= 0.4  # (not before its timeout; B's answer shows A's fault was cut)


@MODES
@pytest.mark.parametrize("fault", ["http_500", "dropped_before_first_chunk", "error_event_first", "hang_after_headers"])
async def test_failure_before_first_chunk_falls_back_to_another_group(upstreams, mode, fault):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a), deployment(b, "backup")], fallbacks=[{"g": ["backup"]}],
                    stream_timeout=0.5)
    a.enqueue(BEFORE_FIRST_CHUNK[fault]())
    text, stream = await call(router, mode, True)
    assert text == "from B"
    assert stream._hidden_params["model_group"] == "backup"


@MODES
async def test_ttft_timeout_is_not_applied_after_the_first_chunk(upstreams, mode):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], stream_timeout=0.5)
    # every gap is shorter than the timeout, the whole stream much longer
    a.enqueue(slow_stream_reply(0.15, text="one two three four five six seven eight"))
    text, _ = await call(router, mode, True)
    assert text == "one two three four five six seven eight"
    assert counts(upstreams)[0] == 1


@MODES
async def test_ttft_timeout_raises_timeout_when_nothing_else(upstreams, mode):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], stream_timeout=0.4)
    a.enqueue(hanging_stream(after_chunks=0))
    with pytest.raises(llmrelay.Timeout, match="stream_timeout") as info:
        await call(router, mode, True)
    assert len(info.value.attempts) == 1
    # the hanging connection was dropped by the client
    await closed(a, mode)


@MODES
async def test_error_after_first_chunk_reaches_caller_typed_with_text(upstreams, mode):
    a, b = upstreams[:2]
    router = two_deployments(upstreams, fallbacks=None)
    a.enqueue(dropped_stream(after_chunks=4))
    with pytest.raises(llmrelay.APIConnectionError) as info:
        await call(router, mode, True)
    err = info.value
    assert err.generated_content and DEFAULT_TEXT.startswith(err.generated_content)
    assert err.attempts and err.attempts[0]["api_base"] == a.url + "/v1"
    assert counts(upstreams)[:2] == [1, 0]  # never retried after the first chunk
    state = {s["id"]: s for s in router.deployment_state()}
    assert sum(s["in_flight"] for s in state.values()) == 0


@MODES
async def test_in_band_error_mid_stream_is_not_retried(upstreams, mode):
    a, b = upstreams[:2]
    router = two_deployments(upstreams)
    # the pause makes sure the first chunks reach the caller before the error event
    # (in one read, the error would come before any chunk was delivered: then it IS retried)
    events = text_stream_events()[:3] + [Sleep(0.2), error_body("boom", "server_error")]
    a.enqueue(stream_reply(events))
    with pytest.raises(llmrelay.APIError) as info:
        await call(router, mode, True)
    assert info.value.generated_content
    assert counts(upstreams)[:2] == [1, 0]


@MODES
async def test_idle_timeout_between_chunks(upstreams, mode):
    a, b = upstreams[:2]
    router = two_deployments(upstreams, stream_timeout=5, stream_idle_timeout=0.5)
    a.enqueue(hanging_stream(after_chunks=3))
    with pytest.raises(llmrelay.Timeout) as info:
        await call(router, mode, True)
    assert info.value.generated_content
    assert counts(upstreams)[:2] == [1, 0]
    await closed(a, mode)


@MODES
async def test_mid_stream_failures_count_towards_cooldown(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, weight=10_000), deployment(b, weight=1)], allowed_fails=0,
                    cooldown_time=30)
    a.enqueue(dropped_stream(after_chunks=3))
    with pytest.raises(llmrelay.APIConnectionError):
        await call(router, mode, True)
    # A is cooling down now: every call goes to B
    for _ in range(3):
        assert (await call(router, mode, True))[0] == "from B"
    assert counts(upstreams)[:2] == [1, 3]


@MODES
async def test_abandoned_stream_releases_its_slot(upstreams, mode):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], routing_strategy="least-busy")
    if mode == "sync":
        stream = router.completion(model="g", messages=MESSAGES, stream=True)
        next(stream)
        assert router.deployment_state()[0]["in_flight"] == 1
        stream.close()
    else:
        stream = await router.acompletion(model="g", messages=MESSAGES, stream=True)
        await stream.__anext__()
        assert router.deployment_state()[0]["in_flight"] == 1
        await stream.aclose()
    assert router.deployment_state()[0]["in_flight"] == 0


@MODES
async def test_peeked_stream_is_complete_and_ordered(upstreams, mode):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], stream_timeout=5)
    if mode == "sync":
        chunks = list(router.completion(model="g", messages=MESSAGES, stream=True,
                                        stream_options={"include_usage": True}))
    else:
        stream = await router.acompletion(model="g", messages=MESSAGES, stream=True,
                                          stream_options={"include_usage": True})
        chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "from A"
    assert chunks[-1].usage is not None
    assert len({c.id for c in chunks}) == 1


@MODES
@pytest.mark.parametrize("where", ["before_headers", "after_headers"])
async def test_idle_timeout_does_not_apply_before_the_first_chunk(upstreams, mode, where):
    # A long prefill (0.8 s to the first chunk) is within stream_timeout, though longer than the
    # idle timeout: only stream_timeout bounds the wait for the first chunk.
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], stream_timeout=10, stream_idle_timeout=0.3)
    events = text_stream_events(DEFAULT_TEXT)
    if where == "before_headers":
        a.enqueue(stream_reply(events, delay_headers=0.8))
    else:
        a.enqueue(stream_reply([Sleep(0.8), *events]))
    text, _ = await call(router, mode, True)
    assert text == DEFAULT_TEXT
    assert counts(upstreams)[0] == 1
