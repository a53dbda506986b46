"""Issue 18: the event loop never loads a tokenizer.

A stream whose upstream sends no usage is counted offline when it ends (its cost, the access
log's tokens). Loading an encoding (o200k: ~80 MiB, up to seconds holding the GIL) on the loop
would stall every open stream, so the gateway loads the deployments' encodings in a thread at
start-up whenever something takes the cost; when nothing does, nothing is counted at all.
The app is driven in-process (ASGI lifespan + one request) against a real loopback upstream.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import orjson
import pytest

from llmrelay import tokens
from llmrelay.proxy.app import ProxyApp
from llmrelay.proxy.config import parse_config
from servers.openai_server import FakeOpenAIServer


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every encoding loaded from now on: (file, id of the thread that loaded it)."""
    monkeypatch.setattr(tokens, "_ENCODINGS", {})  # as in a fresh process
    seen: list[tuple[str, int]] = []
    original = tokens._load_ranks

    def recording(filename: str, sha256: str) -> dict[bytes, int]:
        seen.append((filename, threading.get_ident()))
        return original(filename, sha256)

    monkeypatch.setattr(tokens, "_load_ranks", recording)
    return seen


@pytest.fixture(scope="module")
def upstream():
    with FakeOpenAIServer() as srv:
        yield srv


async def _lifespan(app: ProxyApp, kind: str) -> None:
    messages = asyncio.Queue()
    await messages.put({"type": f"lifespan.{kind}"})
    if kind == "startup":
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)
            if message["type"] == "lifespan.startup.complete":
                raise asyncio.CancelledError  # stop the lifespan loop here

        try:
            await app({"type": "lifespan"}, messages.get, send)
        except asyncio.CancelledError:
            pass
        assert sent and sent[-1]["type"] == "lifespan.startup.complete"


async def _stream(app: ProxyApp) -> tuple[int, bytes]:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "stream": True})
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []
    done = asyncio.Event()

    async def receive() -> dict:
        if pending:
            return pending.pop()
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _app(upstream: FakeOpenAIServer) -> ProxyApp:
    return ProxyApp(parse_config(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstream.url}/v1\n      api_key: sk-upstream\n"))


async def test_bare_gateway_loads_its_tokenizer_off_the_loop_at_start(upstream, loads, caplog):
    loop_thread = threading.get_ident()
    with caplog.at_level(logging.INFO, logger="llmrelay.proxy.access"):  # the access log reports tokens + cost
        app = _app(upstream)
        await _lifespan(app, "startup")
        # loaded before serving, by a thread that is not the event loop's
        assert [f for f, _ in loads] == ["o200k_base.tiktoken.gz"]
        assert all(thread != loop_thread for _, thread in loads)
        status, body = await _stream(app)  # the upstream sends no usage: counted offline
    assert status == 200 and b"[DONE]" in body
    assert len(loads) == 1, "the stream's end loaded a tokenizer again"
    line = orjson.loads(next(r.getMessage() for r in caplog.records if r.name == "llmrelay.proxy.access"))
    assert line["cost"] > 0  # priced by counting its tokens


async def test_nothing_counted_when_nothing_takes_the_cost(upstream, loads, caplog):
    with caplog.at_level(logging.WARNING, logger="llmrelay.proxy.access"):  # no access log, no callbacks, no keys
        app = _app(upstream)
        await _lifespan(app, "startup")
        status, body = await _stream(app)
    assert status == 200 and b"[DONE]" in body
    assert loads == []  # neither at start nor at the stream's end
