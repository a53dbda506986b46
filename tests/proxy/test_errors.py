"""Errors through the gateway: before the first chunk (HTTP errors), after it (error frame),
bad client input (4xx, never 500), and no secret in any answer or log line."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from proxy.conftest import MASTER_KEY, UPSTREAM_KEY
from servers.openai_server import (
    Hang,
    dropped_stream,
    error_reply,
    hanging_stream,
    in_band_error_stream,
    rate_limit_reply,
    repeated_chunk_stream,
    slow_headers_reply,
    stream_reply,
)

MESSAGES = [{"role": "user", "content": "Hi"}]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10) as h:
        yield h


@pytest.fixture
def client(gateway):
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=10) as c:
        yield c


def frames(body: bytes) -> list:
    out = []
    for block in body.decode().split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


# ------------------------------------------------------------------ before the first chunk
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 500, 502, 503, 504])
def test_upstream_status_before_first_chunk(http, upstream, status, stream):
    upstream.enqueue(error_reply(status, f"upstream says {status}", code=f"code_{status}"))
    r = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream})
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert f"upstream says {status}" in error["message"]
    assert error["code"] == f"code_{status}"
    assert r.headers["x-request-id"] and "x-llmrelay-overhead-duration-ms" in r.headers


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limit_carries_retry_after(http, upstream, client, stream):
    upstream.enqueue(rate_limit_reply(retry_after=7))
    r = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    assert r.json()["error"]["type"] == "rate_limit_error"
    upstream.enqueue(rate_limit_reply(retry_after=2))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=stream)


async def test_sdk_error_classes_async(gateway, upstream):
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        for status, cls in ((404, openai.NotFoundError), (500, openai.InternalServerError),
                            (403, openai.PermissionDeniedError)):
            upstream.enqueue(error_reply(status))
            with pytest.raises(cls):
                stream = await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
                async for _ in stream:
                    pass


def test_upstream_unreachable_is_502(http):
    r = http.post("/v1/chat/completions", json={"model": "down", "messages": MESSAGES, "stream": True})
    assert r.status_code == 502
    assert r.json()["error"]["type"] == "api_error"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_timeout_is_504(http, upstream, stream):
    upstream.enqueue(slow_headers_reply(3, stream=stream))
    r = http.post("/v1/chat/completions", json={"model": "slow", "messages": MESSAGES, "stream": stream})
    assert r.status_code == 504
    assert r.json()["error"]["type"] == "timeout_error"


def test_stream_hanging_before_first_chunk_times_out(http, upstream):
    upstream.enqueue(stream_reply([Hang()]))
    r = http.post("/v1/chat/completions", json={"model": "slow", "messages": MESSAGES, "stream": True})
    assert r.status_code == 504


# ------------------------------------------------------------------ after the first chunk
@pytest.mark.parametrize(
    "reply, words",
    [
        (lambda: in_band_error_stream("boom in band", after_chunks=3), "boom in band"),
        (lambda: dropped_stream(after_chunks=3), "APIConnectionError"),
        (lambda: dropped_stream(after_chunks=3, reset=True), ""),
        (lambda: repeated_chunk_stream(10), "REPEATED_STREAMING_CHUNK_LIMIT=3"),
    ],
    ids=["in-band", "dropped", "reset", "repeat-guard"],
)
def test_error_after_first_chunk_is_one_error_frame_then_done(http, upstream, reply, words):
    upstream.enqueue(reply())
    r = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
    assert r.status_code == 200
    out = frames(r.content)
    assert out[-1] == "[DONE]"
    error = out[-2]["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert words in error["message"]
    assert all("error" not in f for f in out[:-2])
    assert len(out) >= 3  # at least one chunk came before the error


def test_hang_after_first_chunk_times_out_in_band(http, upstream):
    upstream.enqueue(hanging_stream(after_chunks=2))
    r = http.post("/v1/chat/completions", json={"model": "slow", "messages": MESSAGES, "stream": True})
    out = frames(r.content)
    assert out[-1] == "[DONE]" and "error" in out[-2]
    assert out[-2]["error"]["type"] == "timeout_error"


def test_sdk_raises_on_error_frame(client, upstream):
    upstream.enqueue(in_band_error_stream("mid-stream failure", after_chunks=3))
    seen = 0
    with pytest.raises(openai.APIError, match="mid-stream failure"):
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            seen += 1
    assert seen >= 1


def test_repeat_guard_setting_applies(client, upstream):
    # limit 3 from litellm_settings: 3 repeats pass, 4 are cut off
    upstream.enqueue(repeated_chunk_stream(3))
    text = "".join(c.choices[0].delta.content or "" for c in
                   client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert text == "Hello" * 3
    upstream.enqueue(repeated_chunk_stream(4))
    with pytest.raises(openai.APIError, match="REPEATED_STREAMING_CHUNK_LIMIT"):
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            pass


# ------------------------------------------------------------------ secrets
def test_upstream_key_never_leaks(http, upstream, gateway):
    upstream.enqueue(error_reply(401, f"Incorrect API key provided: {UPSTREAM_KEY}. Bearer {UPSTREAM_KEY}"))
    r = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES})
    assert r.status_code == 401
    assert UPSTREAM_KEY not in r.text and "SECRET" not in r.text
    upstream.enqueue(in_band_error_stream(f"key {UPSTREAM_KEY} revoked", after_chunks=2))
    r = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
    assert UPSTREAM_KEY not in r.text and "SECRET" not in r.text
    gateway.wait_log(lambda rec: rec.get("status") == 401)
    assert not any(UPSTREAM_KEY in line or MASTER_KEY in line for line in gateway.lines)


# ------------------------------------------------------------------ client mistakes
def _post(http, content, **kw):
    return http.post("/v1/chat/completions", content=content,
                     headers={"content-type": "application/json", **kw.pop("headers", {})}, **kw)


@pytest.mark.parametrize(
    "body, status, param",
    [
        (b"{not json", 400, None),
        (b"", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"messages": [{"role": "user", "content": "Hi"}]}', 400, "model"),
        (b'{"model": 5, "messages": []}', 400, "model"),
        (b'{"model": "gpt-4o-mini"}', 400, "messages"),
        (b'{"model": "gpt-4o-mini", "messages": "Hi"}', 400, "messages"),
        (b'{"model": "gpt-4o-mini", "messages": []}', 400, None),
        (b'{"model": "gpt-4o-mini", "messages": [{"content": "Hi"}]}', 400, None),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": "yes"}', 400, "stream"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "temperature": "hot"}', 400, None),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "api_base": "http://evil"}',
         400, "api_base"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "api_key": "x"}', 400, "api_key"),
        *[(b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "%s": "x"}' % key.encode(),
           400, key)
          for key in ("aws_region_name", "aws_profile_name", "vertex_location", "vertex_project",
                      "vertex_access_token", "model_path", "n_ctx")],
        (b'{"model": "nope", "messages": [{"role": "user", "content": "Hi"}]}', 404, "model"),
    ],
)
def test_bad_input(http, upstream, body, status, param):
    before = len(upstream.requests)
    r = _post(http, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert error["message"]
    assert len(upstream.requests) == before  # nothing was sent upstream


def test_unknown_model_lists_public_names_only(http):
    r = _post(http, b'{"model": "nope", "messages": [{"role": "user", "content": "Hi"}]}')
    message = r.json()["error"]["message"]
    assert "gpt-4o-mini" in message and "alias" in message
    assert "127.0.0.1" not in message and "sk-" not in message


def test_body_too_large(http):
    big = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * (2 * 1024 * 1024) + b'"}]}'
    assert _post(http, big).status_code == 413

    def chunks():  # no Content-Length: the limit applies while reading
        yield big[:1000]
        yield big[1000:]

    assert _post(http, chunks()).status_code == 413


def test_wrong_method_and_path(http):
    assert http.get("/v1/chat/completions").status_code == 405
    r = http.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
