"""A fake AWS Bedrock Runtime (Converse / ConverseStream), on top of :mod:`servers.loopback`.

Shapes follow the Bedrock API reference:

* ``POST /model/{modelId}/converse`` → ``{"output": {"message": {"role": "assistant",
  "content": [{"text"} | {"toolUse": {"toolUseId", "name", "input"}} | {"reasoningContent":
  {"reasoningText": {"text", "signature"}}}]}}, "stopReason", "usage": {"inputTokens",
  "outputTokens", "totalTokens"}, "metrics": {"latencyMs"}}``;
* ``POST /model/{modelId}/converse-stream`` → ``application/vnd.amazon.eventstream``: binary
  frames (built with :func:`llmrelay.codecs.eventstream.encode_message`) with headers
  ``:event-type``, ``:content-type: application/json``, ``:message-type: event`` and JSON payloads
  (``messageStart``, ``contentBlockStart``, ``contentBlockDelta``, ``contentBlockStop``,
  ``messageStop``, ``metadata``), each padded with a ``"p"`` field as Bedrock does; exception
  frames carry ``:message-type: exception`` and ``:exception-type``;
* errors: the HTTP status, ``x-amzn-ErrorType: <Name>:http://internal.amazon.com/coral/...``
  and ``{"message": "..."}``.

Auth: with ``credentials=(access_key, secret_key, region)`` every request must carry a SigV4
``Authorization`` header, which is parsed and **verified** by recomputing the signature with
botocore from what arrived on the wire (method, raw path, signed headers, body); with
``bearer_token`` a ``Bearer`` token is accepted instead. Failures answer 403 like AWS does.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable
from urllib.parse import unquote

from llmrelay.codecs.eventstream import encode_message
from servers._answers import Answer, Ask, answer
from servers.loopback import Drop, LoopbackServer, Reply, Request
from servers.openai_server import DEFAULT_TEXT

__all__ = [
    "FakeBedrockServer",
    "DEFAULT_BEDROCK_MODEL",
    "TEST_CREDENTIALS",
    "event_frame",
    "exception_frame",
    "stream_frames",
    "eventstream_reply",
    "bedrock_error_reply",
    "verify_sigv4",
]

DEFAULT_BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TEST_CREDENTIALS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1")
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def event_frame(event_type: str, payload: dict, pad: bool = True) -> bytes:
    """One ``:message-type: event`` frame with a JSON payload (padded with ``"p"``)."""
    if pad:
        payload = {**payload, "p": _PAD[: 8 + (len(event_type) * 7) % 40]}
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(payload, separators=(",", ":")).encode(),
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    """One ``:message-type: exception`` frame (e.g. ``throttlingException``)."""
    return encode_message(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message}).encode(),
    )


def stream_frames(ans: Answer, input_tokens: int = 25, stop_reason: str | None = None) -> list[bytes]:
    """The frames of a ConverseStream answer."""
    frames = [event_frame("messageStart", {"role": "assistant"})]
    block = 0
    if ans.thinking:
        for piece in ans.thinking_pieces:
            frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": block, "delta": {"reasoningContent": {"text": piece}}}))
        frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": block, "delta": {"reasoningContent": {"signature": "sig-EqQBCgIYAhIM"}}}))
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    if ans.text:
        for piece in ans.pieces:
            frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": block, "delta": {"text": piece}}))
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    for i, (name, args) in enumerate(ans.tool_calls):
        tool_id = f"tooluse_{name}_{i}"
        frames.append(event_frame("contentBlockStart", {"contentBlockIndex": block, "start": {"toolUse": {"toolUseId": tool_id, "name": name}}}))
        text = json.dumps(args, separators=(",", ":"))
        for j in range(0, len(text), 7):
            frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": block, "delta": {"toolUse": {"input": text[j : j + 7]}}}))
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    reason = stop_reason or ("tool_use" if ans.tool_calls else "max_tokens" if ans.truncated else "end_turn")
    frames.append(event_frame("messageStop", {"stopReason": reason}))
    output = len(ans.pieces) + len(ans.thinking_pieces) + 5 * len(ans.tool_calls)
    usage = {"inputTokens": input_tokens, "outputTokens": output, "totalTokens": input_tokens + output}
    frames.append(event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 321}}))
    return frames


def eventstream_reply(frames: Iterable[Any]) -> Reply:
    return Reply.stream(list(frames), content_type="application/vnd.amazon.eventstream")


def bedrock_error_reply(status: int, error_type: str, message: str, *, in_header: bool = True) -> Reply:
    """An AWS JSON error: the type in ``x-amzn-ErrorType`` (or in the body's ``__type``)."""
    if in_header:
        headers = {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        return Reply.json({"message": message}, status=status, headers={**headers, "x-amzn-RequestId": "req-1"})
    return Reply.json({"__type": f"com.amazon.coral.validate#{error_type}", "message": message}, status=status)


def verify_sigv4(request: Request, access_key: str, secret_key: str, region: str) -> str | None:
    """None if ``request`` carries a valid SigV4 signature for these credentials, else why not."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = request.headers.get("authorization") or ""
    match = _AUTH.match(auth)
    if match is None:
        return f"malformed Authorization header: {auth!r}"
    if match["key"] != access_key:
        return "unknown access key"
    if match["region"] != region or match["service"] != "bedrock":
        return f"credential scope {match['region']}/{match['service']} is not {region}/bedrock"
    amz_date = request.headers.get("x-amz-date") or ""
    if not amz_date.startswith(match["date"]):
        return "X-Amz-Date does not match the credential scope date"
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return f"host and x-amz-date must be signed (signed: {signed})"
    headers = {name: request.headers.get(name, "") for name in signed if name != "host"}
    host = request.headers.get("host")
    aws_request = AWSRequest(method=request.method, url=f"http://{host}{request.target}", data=request.body, headers=headers)
    aws_request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret_key, request.headers.get("x-amz-security-token")), "bedrock", region)
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if expected != match["signature"]:
        return "The request signature we calculated does not match the signature you provided."
    return None


def _ask(body: dict) -> Ask:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {"content": []}
    tool_result = None
    images = 0
    if last.get("role") == "user":
        for block in last["content"]:
            if "toolResult" in block:
                tool_result = "".join(c.get("text", "") for c in block["toolResult"]["content"])
            images += "image" in block
    tools = [t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools", [])]
    return Ask(
        tools=tools,
        tool_result=tool_result,
        images=images,
        thinking=bool((body.get("additionalModelRequestFields") or {}).get("thinking")),
        max_tokens=(body.get("inferenceConfig") or {}).get("maxTokens"),
    )


class FakeBedrockServer(LoopbackServer):
    """Answers Converse and ConverseStream by the shared rules in :mod:`servers._answers`."""

    def __init__(
        self,
        text: str = DEFAULT_TEXT,
        *,
        models: Iterable[str] = (DEFAULT_BEDROCK_MODEL, "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "amazon.nova-lite-v1:0"),
        credentials: tuple[str, str, str] | None = TEST_CREDENTIALS,
        bearer_token: str | None = None,
    ) -> None:
        super().__init__(self.route)
        self.text = text
        self.models = set(models)
        self.credentials = credentials
        self.bearer_token = bearer_token

    def route(self, request: Request) -> Reply:
        denied = self.check_auth(request)
        if denied is not None:
            return denied
        parts = request.path.split("/")
        # /model/{modelId}/converse[-stream]; the id is one percent-encoded segment
        if request.method != "POST" or len(parts) != 4 or parts[1] != "model" or parts[3] not in ("converse", "converse-stream"):
            return bedrock_error_reply(404, "UnknownOperationException", f"Unknown operation {request.method} {request.path}")
        model = unquote(parts[2])
        if model.startswith("arn:"):
            model = model.rsplit("/", 1)[-1]
        if model not in self.models:
            return bedrock_error_reply(400, "ValidationException", "The provided model identifier is invalid.")
        body = request.json()
        ans = answer(_ask(body), self.text)
        input_tokens = sum(len(json.dumps(m).split()) for m in body.get("messages", [])) + 10
        if parts[3] == "converse-stream":
            return eventstream_reply(stream_frames(ans, input_tokens))
        content: list[dict] = []
        if ans.thinking:
            content.append({"reasoningContent": {"reasoningText": {"text": ans.thinking, "signature": "sig-EqQBCgIYAhIM"}}})
        if ans.text:
            content.append({"text": ans.text})
        for i, (name, args) in enumerate(ans.tool_calls):
            content.append({"toolUse": {"toolUseId": f"tooluse_{name}_{i}", "name": name, "input": args}})
        output = len(ans.pieces) + len(ans.thinking_pieces) + 5 * len(ans.tool_calls)
        return Reply.json(
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": "tool_use" if ans.tool_calls else "max_tokens" if ans.truncated else "end_turn",
                "usage": {"inputTokens": input_tokens, "outputTokens": output, "totalTokens": input_tokens + output},
                "metrics": {"latencyMs": 321},
            }
        )

    def check_auth(self, request: Request) -> Reply | None:
        auth = request.headers.get("authorization") or ""
        if auth.startswith("Bearer "):
            if self.bearer_token is not None and auth == f"Bearer {self.bearer_token}":
                return None
            return bedrock_error_reply(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if self.credentials is None:
            return None if self.bearer_token is None else bedrock_error_reply(403, "AccessDeniedException", "Missing bearer token")
        why = verify_sigv4(request, *self.credentials)
        if why is not None:
            kind = "UnrecognizedClientException" if why == "unknown access key" else "InvalidSignatureException"
            return bedrock_error_reply(403, kind, why)
        return None


def dropped_eventstream(after: int = 3) -> Reply:
    """A stream whose connection closes after ``after`` frames (no messageStop/metadata)."""
    return eventstream_reply([*stream_frames(answer(Ask()))[:after], Drop()])


__all__.append("dropped_eventstream")
