"""A fake Azure OpenAI server: the fake OpenAI server at Azure's paths, auth and stream quirks.

From Azure OpenAI's REST reference: ``POST /openai/deployments/{deployment}/chat/completions
?api-version=...`` (404 ``DeploymentNotFound`` for an unknown deployment, 404 without
``api-version``) and the v1 API ``POST /openai/v1/chat/completions``; auth by ``api-key`` header
or ``Authorization: Bearer <Entra ID token>`` (401 otherwise). Streams start with a chunk whose
``choices`` is empty and that carries ``prompt_filter_results`` (empty ``id`` and ``model``),
and choices carry ``content_filter_results``. Content-filter errors are 400s with
``code: "content_filter"`` and an ``innererror``.
"""

from __future__ import annotations

import json
from typing import Any

from servers.loopback import Reply, Request
from servers.openai_server import FakeOpenAIServer, stream_reply

__all__ = ["FakeAzureServer", "azure_error_reply", "content_filter_error_reply", "content_filtered_stream",
           "FILTER_OK", "PROMPT_FILTER_CHUNK"]

FILTER_OK = {name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual", "violence")}
PROMPT_FILTER_CHUNK = {
    "choices": [],
    "created": 0,
    "id": "",
    "model": "",
    "object": "",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": FILTER_OK}],
}


def azure_error_reply(status: int, message: str, code: str | None = None, *, retry_after: float | None = None) -> Reply:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else None
    return Reply.json({"error": {"code": code or str(status), "message": message}}, status=status, headers=headers)


def content_filter_error_reply() -> Reply:
    body = {"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": None, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
            **FILTER_OK, "violence": {"filtered": True, "severity": "medium"}}},
    }}
    return Reply.json(body, status=400)


def content_filtered_stream(model: str = "gpt-4o") -> Reply:
    """A stream cut by the output content filter: some text, then ``finish_reason: content_filter``."""
    base = {"id": "chatcmpl-az1", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    events = [PROMPT_FILTER_CHUNK,
              {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                                    "content_filter_results": {}}]},
              {**base, "choices": [{"index": 0, "delta": {"content": "Once upon"}, "finish_reason": None,
                                    "content_filter_results": FILTER_OK}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter",
                                    "content_filter_results": {"violence": {"filtered": True, "severity": "high"}}}]},
              "[DONE]"]
    return stream_reply(events)


class FakeAzureServer(FakeOpenAIServer):
    """Azure's routes and auth over :class:`FakeOpenAIServer`'s answers."""

    def __init__(self, *, deployments: tuple[str, ...] = ("my-gpt4o",), api_key: str | None = "azure-key",
                 ad_token: str | None = "entra-token", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handler = self.route_azure
        self.deployments = deployments
        self.azure_key = api_key
        self.ad_token = ad_token

    def route_azure(self, request: Request) -> Reply:
        key_ok = self.azure_key is not None and request.headers.get("api-key") == self.azure_key
        token_ok = self.ad_token is not None and request.headers.get("authorization") == f"Bearer {self.ad_token}"
        if not (key_ok or token_ok):
            return azure_error_reply(401, "Access denied due to invalid subscription key or wrong API endpoint.")
        path = request.path
        if path == "/openai/v1/chat/completions":
            return self._azure_chat(request)
        prefix = "/openai/deployments/"
        if path.startswith(prefix) and path.endswith("/chat/completions"):
            if not request.query.get("api-version"):
                return azure_error_reply(404, "Resource not found", "404")
            deployment = path[len(prefix):-len("/chat/completions")]
            if deployment not in self.deployments:
                return azure_error_reply(404, "The API deployment for this resource does not exist.", "DeploymentNotFound")
            return self._azure_chat(request)
        return azure_error_reply(404, "Resource not found", "404")

    def _azure_chat(self, request: Request) -> Reply:
        reply = self.chat(request)
        if not (reply.headers and dict(reply.header_pairs()).get("Content-Type") == "text/event-stream"):
            return reply
        parts: list[Any] = [b"data: " + json.dumps(PROMPT_FILTER_CHUNK).encode() + b"\n\n"]
        for part in reply.body:
            if isinstance(part, bytes) and part.startswith(b"data: {"):
                chunk = json.loads(part[6:])
                for choice in chunk.get("choices") or ():
                    choice["content_filter_results"] = FILTER_OK
                part = b"data: " + json.dumps(chunk).encode() + b"\n\n"
            parts.append(part)
        reply.body = parts
        return reply
