"""The ASGI app called directly (no server): a bug in the gateway is a 500 whose message says
nothing, and its logged traceback carries no secret."""

from __future__ import annotations

import logging

import orjson

from llmrelay.proxy.app import ProxyApp
from llmrelay.proxy.config import parse_config

SECRET = "sk-upstream-SECRET-in-a-bug-0123456789"


class _BuggyModels:
    names = ["m"]

    def __contains__(self, name: object) -> bool:
        return name == "m"

    async def acall(self, request):
        raise RuntimeError(f"a bug that mentions {SECRET}")


async def _call(app: ProxyApp, body: bytes) -> list[dict]:
    sent: list[dict] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        if pending:
            return pending.pop()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    await app(scope, receive, send)
    return sent


async def test_unexpected_error_is_a_quiet_500_and_logs_no_secret(caplog):
    config = parse_config(
        f"model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/x\n      api_key: {SECRET}\n"
    )
    app = ProxyApp(config, models=_BuggyModels())
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    with caplog.at_level(logging.ERROR, logger="llmrelay.proxy"):
        sent = await _call(app, body)
    assert sent[0]["status"] == 500
    error = orjson.loads(sent[1]["body"])["error"]
    assert "bug" not in error["message"] and SECRET not in error["message"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "Traceback" in logged
    assert SECRET not in logged
