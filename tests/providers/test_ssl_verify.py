"""``ssl_verify`` (a consumed litellm_param): False skips TLS verification, a path is a CA bundle.

A real HTTPS server on 127.0.0.1 with a self-signed certificate made by ``openssl``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import llmrelay
from llmrelay.exceptions import APIConnectionError

MSG = [{"role": "user", "content": "hi"}]
ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "over TLS"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length))
        self.server.bodies.append(body)  # type: ignore[attr-defined]
        data = json.dumps(ANSWER).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.bodies = []  # type: ignore[attr-defined]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/v1", str(cert), server
    server.shutdown()


def call(base: str, **kwargs):
    return llmrelay.completion("openai/m", MSG, api_base=base, api_key="k", **kwargs)


async def acall(base: str, **kwargs):
    return await llmrelay.acompletion("openai/m", MSG, api_base=base, api_key="k", **kwargs)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_self_signed_is_refused_by_default(tls_server, mode):
    base, _, _ = tls_server
    with pytest.raises(APIConnectionError):
        call(base) if mode == "sync" else asyncio.run(acall(base))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("verify", [False, "bundle"])
def test_ssl_verify_false_or_ca_bundle(tls_server, mode, verify):
    base, cert, server = tls_server
    verify = cert if verify == "bundle" else verify
    reply = call(base, ssl_verify=verify) if mode == "sync" else asyncio.run(acall(base, ssl_verify=verify))
    assert reply.choices[0].message.content == "over TLS"
    assert "ssl_verify" not in server.bodies[-1]


def test_ssl_verify_module_setting(tls_server, monkeypatch):
    base, _, _ = tls_server
    monkeypatch.setattr(llmrelay, "ssl_verify", False)
    assert call(base).choices[0].message.content == "over TLS"
