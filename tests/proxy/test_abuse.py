"""Hostile clients and broken upstreams, through the real gateway (a subprocess).

Each test here closes one hole of issue 15 and fails on a gateway that has it: client-chosen
upstream parameters, hostile Retry-After values, upstream topology in errors, missing default
timeouts, HTTP/1.0 streams, slow or oversized requests, clients that never read, shutdown.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from proxy.conftest import MASTER_KEY, UPSTREAM_KEY, closed_port
from proxy.harness import Gateway
from servers.openai_server import (FakeOpenAIServer, Hang, error_reply, rate_limit_reply, slow_headers_reply,
                                  stream_reply)
from timing import DEADLINE, wait_for

MESSAGES = [{"role": "user", "content": "Hi"}]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def abuse_config(upstream_url: str) -> str:
    return f"""
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      allowed_client_params: [top_k, guided_json]
  - model_name: plain
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: limited
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: hostile
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: slow
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
      timeout: 0.5
      stream_timeout: 0.5
  - model_name: down
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{closed_port()}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
router_settings:
  num_retries: 0
  allowed_fails: 1000
  max_retry_after: 1
litellm_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    path = tmp_path_factory.mktemp("abuse") / "config.yaml"
    path.write_text(abuse_config(upstream.url))
    with Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10) as h:
        yield h


def chat(http: httpx.Client, **body) -> httpx.Response:
    body.setdefault("model", "gpt")
    body.setdefault("messages", MESSAGES)
    return http.post("/v1/chat/completions", json=body)


# ============================================================ 1. client-steered upstream params
@pytest.mark.parametrize(
    "body, param",
    [
        ({"extra_body": {"model": "some-expensive-model"}}, "extra_body.model"),
        ({"extra_body": {"stream": True}}, "extra_body.stream"),
        ({"extra_body": {"stream_options": {"include_usage": True}}}, "extra_body.stream_options"),
        ({"extra_body": {"messages": []}}, "extra_body.messages"),
        ({"extra_body": {"api_base": "http://evil"}}, "extra_body.api_base"),
        ({"extra_body": {"api_key": "sk-mine"}}, "extra_body.api_key"),
        ({"extra_body": {"smuggled": 1}}, "extra_body.smuggled"),
        ({"extra_body": {"extra_body": {"model": "x"}}}, "extra_body.extra_body"),
        ({"extra_body": "model=x"}, "extra_body"),
        ({"smuggled": 1}, "smuggled"),
        ({"fallbacks": ["not-served"]}, "fallbacks"),  # (a served model is a LiteLLM client-side fallback)
        ({"mock_response": "free"}, "mock_response"),
        ({"stream_timeout": 1000}, "stream_timeout"),
        ({"top_k": 3}, None),  # allowed for 'gpt' only
    ],
)
def test_client_cannot_steer_the_upstream(http, upstream, body, param):
    model = "plain" if param is None else "gpt"
    param = param or "top_k"
    before = len(upstream.requests)
    r = chat(http, model=model, **body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert repr(param) in error["message"]
    assert error["type"] == "invalid_request_error"
    assert len(upstream.requests) == before  # nothing went upstream


def test_extra_body_model_via_openai_sdk_is_not_a_way_around(gateway, upstream):
    # The SDK merges extra_body into the top level: the model is then checked against model_list.
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        before = len(upstream.requests)
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="gpt", messages=MESSAGES, extra_body={"model": "some-expensive-model"})
        assert len(upstream.requests) == before


def test_allowed_params_reach_the_upstream(http, upstream):
    r = chat(http, temperature=0.5, metadata={"a": "b"}, top_k=4,
             extra_body={"guided_json": {"type": "object"}, "seed": 7})
    assert r.status_code == 200, r.text
    sent = upstream.last_json
    assert sent["model"] == "gpt-4o-mini"
    assert sent["temperature"] == 0.5 and sent["seed"] == 7 and sent["top_k"] == 4
    assert sent["guided_json"] == {"type": "object"}
    assert "extra_body" not in sent
    assert upstream.last_request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_bad_allow_list_stops_the_start(tmp_path):
    from proxy.harness import run_cli

    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: sk-123456}\n"
        "    model_info: {allowed_client_params: [top_k, api_base]}\n"
    )
    status, err = run_cli(["--config", str(path), "--port", "0"])
    assert status == 2
    assert "allowed_client_params" in err and "api_base" in err
    assert "Traceback" not in err


# ============================================================ 2. Retry-After cannot take a model offline
def test_huge_retry_after_is_capped_for_cooldown_and_client(http, upstream):
    upstream.enqueue(rate_limit_reply(retry_after=999999999))
    r = chat(http, model="limited")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"  # router_settings.max_retry_after
    # cooling down: the router answers itself, still never more than the cap
    r = chat(http, model="limited")
    assert r.status_code == 429 and int(r.headers["retry-after"]) <= 1
    time.sleep(1.1)
    r = chat(http, model="limited")
    assert r.status_code == 200, r.text  # back after the cap, not in 31 years


# ============================================================ 3. hostile Retry-After values
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-5", "1e400", "soon", "Wed, 21 Oct 2015 07:28:00 GMT",
                                   "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 99 Foo 2015 07:28:00 GMT", ""])
def test_hostile_retry_after_is_a_clean_429(http, upstream, value, stream):
    upstream.enqueue(rate_limit_reply(retry_after=value))
    r = chat(http, model="hostile", stream=stream)
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert 0 <= int(r.headers["retry-after"]) <= 1


# ============================================================ 4. no upstream topology for clients
@pytest.mark.parametrize("stream", [False, True])
def test_unreachable_upstream_error_names_no_host(gateway, http, stream):
    r = chat(http, model="down", stream=stream)
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    request_id = r.headers["x-request-id"]
    assert "http" not in message and "127.0.0.1" not in message and "/v1" not in message
    assert request_id in message
    # the operator finds the details in the log, under the request id
    deadline = time.monotonic() + DEADLINE
    while not any(request_id in line and "127.0.0.1" in line for line in gateway.lines):
        assert time.monotonic() < deadline, "\n".join(gateway.lines[-20:])
        time.sleep(0.02)


def test_upstream_error_echoing_its_url_is_redacted(http, upstream):
    upstream.enqueue(error_reply(500, f"internal failure at {upstream.url}/v1/chat/completions"))
    r = chat(http, model="gpt")
    assert r.status_code == 500
    message = r.json()["error"]["message"]
    assert "internal failure" in message
    host = upstream.url.split("://", 1)[1]
    assert host not in message and upstream.url not in message


# ============================================================ 8/9. timeouts name which one fired, once
@pytest.mark.parametrize("stream, setting", [(True, "stream_timeout"), (False, "timeout")])
def test_timeout_says_which_and_names_the_provider_once(http, upstream, stream, setting):
    upstream.enqueue(stream_reply([Hang()]) if stream else slow_headers_reply(5, stream=False))
    r = chat(http, model="slow", stream=stream)
    assert r.status_code == 504, r.text
    message = r.json()["error"]["message"]
    assert f"{setting}=0.5s" in message
    assert "openai/openai" not in message
    assert "127.0.0.1" not in message


def bare_config(upstream_url: str) -> str:
    """One model, no timeout anywhere in the config."""
    return f"""
model_list:
  - model_name: bare
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
general_settings:
  master_key: {MASTER_KEY}
"""


def start_bare(upstream: FakeOpenAIServer, tmp_path, *args: str) -> Gateway:
    path = tmp_path / "bare.yaml"
    path.write_text(bare_config(upstream.url))
    return Gateway(str(path), list(args), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY})


# ============================================================ 8. default upstream timeouts
def test_upstream_timeouts_have_documented_defaults():
    from proxy.harness import run_cli

    status, _ = run_cli(["--help"])
    assert status == 0
    from llmrelay.proxy.limits import ServerLimits

    limits = ServerLimits()
    assert limits.timeout == 600 and limits.stream_timeout == 120
    routed = limits.router_defaults({})
    assert routed == {"timeout": 600, "stream_timeout": 120}
    assert limits.router_defaults({"timeout": 5}, 30)["timeout"] == 5
    assert limits.router_defaults({}, 30)["timeout"] == 30  # litellm_settings.request_timeout


@pytest.mark.parametrize("stream, setting", [(True, "stream_timeout"), (False, "timeout")])
def test_hung_upstream_without_configured_timeout_is_a_504(upstream, tmp_path, stream, setting):
    with start_bare(upstream, tmp_path, "--timeout", "1", "--stream-timeout", "1") as gw:
        upstream.enqueue(stream_reply([Hang()]) if stream else slow_headers_reply(30, stream=False))
        # (the client would give up long before the upstream answers: a 504 at all is the timeout's)
        r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=20,
                       json={"model": "bare", "messages": MESSAGES, "stream": stream})
        assert r.status_code == 504, r.text
        assert f"{setting}=1s" in r.json()["error"]["message"]


# ============================================================ server-level limits (items 5, 6, 7, 9)
TIGHT = ["--header-timeout", "1", "--body-timeout", "1", "--max-header-bytes", "8192",
         "--write-timeout", "1", "--write-buffer-bytes", "16384"]


@pytest.fixture(scope="module")
def tight(upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    path = tmp_path_factory.mktemp("tight") / "bare.yaml"
    path.write_text(bare_config(upstream.url))
    with Gateway(str(path), TIGHT, env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw


def _connect(gw: Gateway, rcvbuf: int | None = None) -> socket.socket:
    host, port = gw.url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((host, int(port)))
    return sock


def _request(body: dict, version: str = "1.1", extra: bytes = b"") -> bytes:
    data = json.dumps(body).encode()
    return (f"POST /v1/chat/completions HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {MASTER_KEY}\r\nContent-Length: {len(data)}\r\n").encode() + extra + b"\r\n" + data


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            part = sock.recv(65536)
        except ConnectionResetError:
            break
        if not part:
            return out
        out += part
    return out


def _dechunk(raw: bytes) -> bytes:
    """The body of a complete chunked HTTP/1.1 response (fails if it was not complete)."""
    body = raw.partition(b"\r\n\r\n")[2]
    out = b""
    while True:
        size, _, body = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return out
        out += body[:n]
        body = body[n + 2:]


def _status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), raw[:300]
    return int(head.split(b" ", 2)[1]), json.loads(body)


# 9. HTTP/1.0 streams are close-delimited, not chunked
def test_http10_stream_is_close_delimited(tight):
    sock = _connect(tight)
    sock.sendall(_request({"model": "bare", "messages": MESSAGES, "stream": True}, version="1.0"))
    raw = _read_all(sock)  # the server closes the connection to end the body
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0]
    assert b"transfer-encoding" not in head.lower()
    assert body.startswith(b"data: {") and body.endswith(b"data: [DONE]\n\n")


def test_http10_plain_answer_has_a_length(tight):
    sock = _connect(tight)
    sock.sendall(_request({"model": "bare", "messages": MESSAGES}, version="1.0"))
    head, _, body = _read_all(sock).partition(b"\r\n\r\n")
    assert b"content-length: %d" % len(body) in head.lower()
    assert json.loads(body)["object"] == "chat.completion"


# 7. slow or oversized requests
def test_slow_headers_get_a_408(tight):
    sock = _connect(tight)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    status, body = _status_and_json(_read_all(sock))  # (the socket gives up after 10 s)
    assert status == 408
    assert body["error"]["message"]


def test_silent_connection_is_closed(tight):
    sock = _connect(tight)
    _read_all(sock)  # returns when the gateway closes it (the socket gives up after 10 s: then it fails)


def test_short_body_gets_a_408(tight):
    sock = _connect(tight)
    full = _request({"model": "bare", "messages": MESSAGES})
    sock.sendall(full[:-10])  # Content-Length promises 10 more bytes
    status, body = _status_and_json(_read_all(sock))  # (the socket gives up after 10 s)
    assert status == 408
    assert "body" in body["error"]["message"]
    tight.wait_log(lambda r: r.get("status") == 408 and "body_timeout" in (r.get("error") or ""))


def _read_response(sock: socket.socket) -> bytes:
    """One whole Content-Length response from a connection that stays open."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    head, _, body = raw.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


# The deadlines of a kept-alive connection's next request (one timer per connection: see
# GatewayProtocol._set_deadline; the keep-alive deadline, 5 s, is later than these two).
def test_kept_alive_connection_next_request_slow_headers_get_a_408(tight):
    sock = _connect(tight)
    sock.sendall(_request({"model": "bare", "messages": MESSAGES}))
    assert b" 200 " in _read_response(sock).split(b"\r\n", 1)[0]
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    status, body = _status_and_json(_read_all(sock))
    assert status == 408 and "headers" in body["error"]["message"]


def test_kept_alive_connection_next_request_short_body_gets_a_408(tight):
    sock = _connect(tight)
    full = _request({"model": "bare", "messages": MESSAGES})
    sock.sendall(full)
    assert b" 200 " in _read_response(sock).split(b"\r\n", 1)[0]
    sock.sendall(full[:-10])
    status, body = _status_and_json(_read_all(sock))
    assert status == 408 and "body" in body["error"]["message"]


def test_kept_alive_idle_connection_is_closed(tight):
    sock = _connect(tight)
    for _ in range(2):  # the deadline moves from the headers to the body to the keep-alive, twice
        sock.sendall(_request({"model": "bare", "messages": MESSAGES}))
        assert b" 200 " in _read_response(sock).split(b"\r\n", 1)[0]
    assert _read_all(sock) == b""  # closed by the gateway (uvicorn's keep-alive timeout), nothing sent


def test_huge_headers_get_a_431(tight):
    sock = _connect(tight)
    try:
        sock.sendall(_request({"model": "bare", "messages": MESSAGES}, extra=b"X-Big: " + b"a" * 1_000_000 + b"\r\n"))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the gateway answered and closed before reading it all
    status, body = _status_and_json(_read_all(sock))
    assert status == 431
    assert "8192" in body["error"]["message"]


def test_malformed_request_gets_openai_error_json(tight):
    sock = _connect(tight)
    sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
    status, body = _status_and_json(_read_all(sock))
    assert status == 400 and body["error"]["type"] == "invalid_request_error"


# 6. a client that never reads: bounded buffer, then cut; others are served meanwhile
def test_client_that_never_reads_is_cut_and_upstream_closed(tight, upstream):
    from servers.openai_server import slow_stream_reply

    upstream.enqueue(stream_reply(_long_stream_events(40_000)))
    before = len(upstream.requests)
    sock = _connect(tight, rcvbuf=4096)
    sock.sendall(_request({"model": "bare", "messages": MESSAGES, "stream": True}))
    deadline = time.monotonic() + DEADLINE
    while len(upstream.requests) <= before:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    conn_id = upstream.requests[before].connection_id
    # meanwhile another client is served normally
    upstream.enqueue(slow_stream_reply(0.01))
    r = httpx.post(tight.url + "/v1/chat/completions", headers=AUTH, timeout=10,
                   json={"model": "bare", "messages": MESSAGES, "stream": True})
    assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
    upstream.wait_connection_closed(conn_id, timeout=10)  # backpressure, then write_timeout cut both
    tight.wait_log(lambda r: r.get("status") == 499 and "write_timeout" in (r.get("error") or ""), timeout=10)
    sock.close()


def _long_stream_events(words: int) -> list:
    from servers.openai_server import ChunkFactory, text_stream_events

    return text_stream_events("lorem ipsum " * (words // 2), factory=ChunkFactory(model="gpt-4o-mini"))


# 5. graceful shutdown
def test_sigterm_finishes_short_streams_cuts_long_ones_and_exits_0(upstream, tmp_path):
    import signal
    import threading

    from servers.openai_server import slow_stream_reply

    gw = start_bare(upstream, tmp_path, "--graceful-timeout", "1.5")
    try:
        results: dict[str, bytes] = {}

        def read(name: str) -> None:
            sock = _connect(gw)
            sock.sendall(_request({"model": "bare", "messages": MESSAGES, "stream": True}))
            results[name] = _read_all(sock)

        before = len(upstream.requests)
        upstream.enqueue(slow_stream_reply(0.5, text="word " * 1200))  # 10 min: will be cut
        long = threading.Thread(target=read, args=("long",))
        long.start()
        wait_for(lambda: len(upstream.requests) > before, what="the long stream's upstream request")
        upstream.enqueue(slow_stream_reply(0.1, text="word " * 5))  # ends within the grace period
        short = threading.Thread(target=read, args=("short",))
        short.start()
        wait_for(lambda: len(upstream.requests) > before + 1, what="the short stream's upstream request")
        gw.proc.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                _connect(gw).close()
            except OSError:
                return True
            return False

        # no new connections, while the short stream is still being finished
        wait_for(refused, what="the listening socket to close")
        assert gw.proc.poll() is None
        assert gw.proc.wait(DEADLINE) == 0  # (long before the long stream would have ended)
        long.join(5)
        short.join(5)
        short_body = _dechunk(results["short"])
        assert short_body.endswith(b"data: [DONE]\n\n") and b'"error"' not in short_body
        body = _dechunk(results["long"])
        assert body.endswith(b"data: [DONE]\n\n")
        frames = [f for f in body.split(b"\n\n") if b'"error"' in f]
        assert len(frames) == 1 and b"shutting down" in frames[0]
        gw._reader.join(2)
        text = "\n".join(gw.lines)
        assert "Traceback" not in text and "CancelledError" not in text
        assert sum("stream cut" in line for line in gw.lines) == 1
    finally:
        gw.stop()
