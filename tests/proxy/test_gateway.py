"""The gateway end to end: official openai SDK (sync and async) → gateway → fake upstream."""

from __future__ import annotations

import json
import socket

import openai
import pytest

from proxy.conftest import MASTER_KEY, UPSTREAM_KEY
from servers.openai_server import DEFAULT_TEXT, DEFAULT_TOOL_ARGUMENTS

MESSAGES = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}]


@pytest.fixture
def client(gateway):
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=10) as c:
        yield c


@pytest.fixture
async def aclient(gateway):
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=10) as c:
        yield c


# ------------------------------------------------------------------ happy paths
def test_sync_completion(client, upstream):
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == DEFAULT_TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.total_tokens > 0
    # the gateway called the upstream with the configured (secret) key
    assert upstream.last_request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_model_is_the_name_the_client_asked_for(client, upstream):
    resp = client.chat.completions.create(model="alias", messages=MESSAGES)
    assert resp.model == "alias"
    assert upstream.last_json["model"] == "gpt-4o"
    chunks = list(client.chat.completions.create(model="alias", messages=MESSAGES, stream=True))
    assert chunks and all(c.model == "alias" for c in chunks)


def test_sync_stream(client):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1


async def test_async_completion_and_stream(aclient):
    resp = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.choices[0].message.content == DEFAULT_TEXT
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    assert text == DEFAULT_TEXT


def test_include_usage(client):
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.completion_tokens > 0 and last.usage.prompt_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


async def test_tools_streaming(aclient):
    stream = await aclient.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, stream=True)
    name, args, finish = None, "", None
    async for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.index == 0
            name = name or (call.function.name if call.function else None)
            args += (call.function.arguments or "") if call.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert json.loads(args) == DEFAULT_TOOL_ARGUMENTS
    assert finish == "tool_calls"


def test_tools_non_streaming(client):
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS)
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == DEFAULT_TOOL_ARGUMENTS


def test_n_and_response_format(client, upstream):
    resp = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, n=2, response_format={"type": "json_object"})
    assert [c.index for c in resp.choices] == [0, 1]
    assert upstream.last_json["response_format"] == {"type": "json_object"}
    assert upstream.last_json["n"] == 2
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=2, stream=True))
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1}


def test_models_health_openapi(client, gateway):
    import httpx

    ids = [m.id for m in client.models.list()]
    assert ids == ["gpt-4o-mini", "alias", "slow", "down", "pair", "flaky"]
    assert client.models.retrieve("alias").id == "alias"
    with httpx.Client(base_url=gateway.url) as h:
        assert h.get("/health/liveliness").status_code == 200
        assert h.get("/health/readiness").json()["status"] == "healthy"
        spec = h.get("/openapi.json").json()
        assert "/v1/chat/completions" in spec["paths"] and "/v1/models" in spec["paths"]
        # /models without /v1 too
        assert h.get("/models", headers={"authorization": f"Bearer {MASTER_KEY}"}).json()["object"] == "list"


def test_headers_and_log_line(client, gateway):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-request-id": "req-abc.123"})
    assert raw.headers["x-request-id"] == "req-abc.123"
    overhead = float(raw.headers["x-llmrelay-overhead-duration-ms"])
    assert 0 <= overhead < 10_000
    record = gateway.wait_log(lambda r: r.get("request_id") == "req-abc.123")
    assert record["model"] == "gpt-4o-mini" and record["status"] == 200
    assert record["completion_tokens"] > 0 and "latency_ms" in record
    with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-request-id"]
        assert float(resp.headers["x-llmrelay-overhead-duration-ms"]) >= 0
        body = resp.read()
    assert body.endswith(b"data: [DONE]\n\n")


def test_response_heads_on_the_wire(gateway):
    """The status line and headers as the client receives them (the server writes the app's
    header block itself, ``server.DirectBody.start``): lower-case names, each once, the framing
    uvicorn would choose (content-length, or chunked for a stream), the connection kept alive
    for the next request and closed after answering one that asks ``connection: close``."""
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)

    def request(stream: bool, close: bool) -> bytes:
        body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream}).encode()
        return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer %s\r\n"
                b"content-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
                % (MASTER_KEY.encode(), len(body), b"connection: close\r\n" if close else b"", body))

    with socket.create_connection((host, int(port)), timeout=10) as sock:
        reader = sock.makefile("rb")
        for stream, close in ((False, False), (True, False), (False, True)):
            sock.sendall(request(stream, close))
            assert reader.readline() == b"HTTP/1.1 200 OK\r\n"
            headers = []
            while (line := reader.readline()) != b"\r\n":
                name, _, value = line[:-2].partition(b": ")
                headers.append((name, value))
            names = [name for name, _ in headers]
            assert names == [name.lower() for name in names] and len(set(names)) == len(names)
            fields = dict(headers)
            assert b"date" in fields and b"x-request-id" in fields
            assert (fields.get(b"connection") == b"close") is close
            if stream:
                assert fields[b"content-type"].startswith(b"text/event-stream")
                assert fields[b"transfer-encoding"] == b"chunked" and b"content-length" not in fields
                body = b""
                while not body.endswith(b"\r\n0\r\n\r\n"):
                    body += reader.read1(65536)
                assert b"data: [DONE]" in body
            else:
                assert fields[b"content-type"] == b"application/json" and b"transfer-encoding" not in fields
                answer = json.loads(reader.read(int(fields[b"content-length"])))
                assert answer["choices"][0]["message"]["content"] == DEFAULT_TEXT
        assert reader.read() == b""  # closed after the answer to "connection: close"


def test_chat_completions_without_v1(gateway):
    with openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0) as c:
        assert c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content


# ------------------------------------------------------------------ router groups
def test_group_is_balanced_by_the_router(client, upstream):
    before = len(upstream.chat_requests)
    for _ in range(16):
        resp = client.chat.completions.create(model="pair", messages=MESSAGES)
        assert resp.model == "pair"
    used = {r["model"] for r in upstream.chat_requests[before:]}
    assert used == {"gpt-4o-mini", "gpt-4o"}


def test_router_fallbacks_from_router_settings(client, upstream):
    resp = client.chat.completions.create(model="flaky", messages=MESSAGES)
    assert resp.model == "flaky"
    assert upstream.last_json["model"] == "gpt-4o"  # the 'alias' group answered
    chunks = list(client.chat.completions.create(model="flaky", messages=MESSAGES, stream=True))
    assert chunks and all(c.model == "flaky" for c in chunks)


# ------------------------------------------------------------------ auth
def test_auth(gateway):
    import httpx

    for key in ("wrong", MASTER_KEY + "x", MASTER_KEY[:-1]):
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as c:
            with pytest.raises(openai.AuthenticationError) as info:
                c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert info.value.status_code == 401
            assert MASTER_KEY not in str(info.value.body)
            with pytest.raises(openai.AuthenticationError):
                c.models.list()
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    with httpx.Client(base_url=gateway.url) as h:
        missing = h.post("/v1/chat/completions", json=body)
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "auth_error"  # LiteLLM's (docs/keys.md)
        assert missing.json()["error"]["message"].startswith("Authentication Error, No api key passed in.")
        assert missing.headers["www-authenticate"] == "Bearer"
        for header in ("api-key", "x-api-key"):
            assert h.post("/v1/chat/completions", json=body, headers={header: MASTER_KEY}).status_code == 200
            assert h.post("/v1/chat/completions", json=body, headers={header: "nope"}).status_code == 401
        # health and the OpenAPI document need no key
        assert h.get("/health/readiness").status_code == 200


def test_header_block_check():
    """What the server's direct response start writes itself; anything else goes through
    uvicorn's checks (which refuse control characters and lower-case names)."""
    from llmrelay.proxy.server import _header_block_ok

    assert _header_block_ok([(b"content-type", b"application/json"), (b"x-a", b"1\tb \x80"), (b"x-empty", b"")])
    for bad in ([(b"Content-Type", b"a")], [(b"x-a", b"1"), (b"x-b", b"2\n")], [(b"x-a", b"b\rc")],
                [(b"x a", b"b")], [(b"x-a", b"\x00")], [(b"x-a:", b"b")], [(b"x/a", b"1")], [(b"", b"1")],
                [(b"x-a\r\nx-b", b"1")], [(b"x-a\nx-b", b"1")], []):
        assert not _header_block_ok(bad), bad


def test_listening_line_means_connections_are_taken(tmp_path):
    """A script that connects as soon as "listening on" is printed is served, not refused (the
    socket listens before the line, while the gateway still starts: the client waits in the backlog)."""
    import re
    import subprocess
    import sys

    import httpx

    from proxy.harness import gateway_env

    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: k, "
                    "api_base: 'http://127.0.0.1:9/v1'}\n")
    proc = subprocess.Popen([sys.executable, "-m", "llmrelay.proxy", "--port", "0", "--config", str(path)],
                            env=gateway_env(), stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in proc.stderr:
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                url = m.group(1)
                break
        assert url is not None
        assert httpx.get(url + "/health/liveliness", timeout=30).status_code == 200  # no retry, no wait
    finally:
        proc.terminate()
        proc.wait(20)
