"""AWS Bedrock through the Converse API: ``bedrock/<model-id>`` and ``bedrock/converse/<model-id>``.

Requests go to ``POST {endpoint}/model/{modelId}/converse`` (``/converse-stream`` when
streaming); the model id is percent-encoded as one path segment, so ids with ``:``
(``anthropic.claude-3-5-sonnet-20240620-v1:0``), cross-region inference profiles
(``us.anthropic.…``) and ARNs (which contain ``/``) all work.

Endpoint: ``api_base`` (or ``aws_bedrock_runtime_endpoint=`` / ``AWS_BEDROCK_RUNTIME_ENDPOINT``),
else ``https://bedrock-runtime.{region}.amazonaws.com``. Region: ``aws_region_name=``, else
``AWS_REGION_NAME`` / ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else the AWS profile's region,
else ``us-east-1``.

Auth, in order: a Bedrock API key (``api_key=`` or ``AWS_BEARER_TOKEN_BEDROCK``) sent as a
bearer token; else SigV4 (service ``bedrock``) with ``aws_access_key_id`` /
``aws_secret_access_key`` / ``aws_session_token`` from the call, or from the standard AWS chain
(``aws_profile_name=`` or the default profile: environment, shared config and credentials files,
SSO, container and instance roles). SigV4 needs botocore (``pip install llmrelay[bedrock]``),
imported only when a call is signed. Assuming a role (``aws_role_name``) is not supported yet.

Streams are AWS's binary eventstream: ``messageStart``, ``contentBlockStart`` (tool use),
``contentBlockDelta`` (text, ``toolUse.input`` fragments, ``reasoningContent`` text, signature or
redacted content), ``contentBlockStop``, ``messageStop`` (``stopReason``) and ``metadata``
(usage; the last event). Exception frames (``:message-type: exception``) raise the typed error
from the iteration; a corrupt frame raises an error naming the frame.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping
from urllib.parse import quote

import orjson

from ..codecs.eventstream import EventStreamDecoder
from ..exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
    exception_for_status,
)
from ..types import ModelResponse
from .base import Call, ChunkDecoder, HttpRequest, Provider, decode_json_body
from .common import (REASONING_BUDGETS, arguments_dict, assistant_message, bad_request, chat_response, content_text,
                     delta_chunk, first_env, load_object, loads_or_raise, parse_data_url)

__all__ = ["BedrockProvider", "BedrockStreamDecoder", "bedrock_error", "make_provider"]

DEFAULT_REGION = "us-east-1"

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

#: Bedrock error names (lower case, ``Exception`` suffix kept) → exception class.
_ERRORS: dict[str, type[APIError]] = {
    "validationexception": BadRequestError,
    "accessdeniedexception": PermissionDeniedError,
    "unrecognizedclientexception": AuthenticationError,
    "expiredtokenexception": AuthenticationError,
    "invalidsignatureexception": AuthenticationError,
    "incompletesignatureexception": AuthenticationError,
    "missingauthenticationtokenexception": AuthenticationError,
    "resourcenotfoundexception": NotFoundError,
    "throttlingexception": RateLimitError,
    "servicequotaexceededexception": RateLimitError,
    "modeltimeoutexception": Timeout,
    "internalserverexception": InternalServerError,
    "serviceunavailableexception": ServiceUnavailableError,
    "modelnotreadyexception": ServiceUnavailableError,
    "modelstreamerrorexception": InternalServerError,
    "modelerrorexception": InternalServerError,
}
_STATUS = {
    BadRequestError: 400, PermissionDeniedError: 403, AuthenticationError: 403, NotFoundError: 404,
    RateLimitError: 429, Timeout: 408, InternalServerError: 500, ServiceUnavailableError: 503,
}
_CONTEXT_PHRASES = (
    "too long", "too many input tokens", "too many tokens", "context length", "context window",
    "input length", "max_tokens exceeds", "maximum context",
)
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
#: Keyword arguments passed through to the Converse request body as they are.
_PASS_THROUGH = (
    "guardrailConfig", "additionalModelResponseFieldPaths", "requestMetadata",
    "performanceConfig", "promptVariables",
)


def bedrock_error(
    name: str | None,
    message: str,
    status: int | None,
    provider: str,
    model: str | None,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
) -> APIError:
    """The typed exception for a Bedrock error (HTTP error or exception event)."""
    key = (name or "").lower()
    cls = _ERRORS.get(key)
    if cls is None and key and not key.endswith("exception"):
        cls = _ERRORS.get(key + "exception")
    if cls is None:
        cls = exception_for_status(status or 500)
    if cls is BadRequestError and any(p in message.lower() for p in _CONTEXT_PHRASES):
        cls = ContextWindowExceededError
    if cls in (InternalServerError, ServiceUnavailableError, Timeout, RateLimitError) or status is None:
        status = _STATUS.get(cls, status or 500)
    return cls(
        f"{name}: {message}" if name else message,
        status_code=status,
        llm_provider=provider,
        model=model,
        headers=headers,
        body=body,
        code=name,
        error_type=name,
    )


def _usage(usage: dict) -> dict:
    """Bedrock ``TokenUsage`` → OpenAI usage (prompt tokens include cache reads and writes)."""
    read = usage.get("cacheReadInputTokens") or 0
    write = usage.get("cacheWriteInputTokens") or 0
    prompt = (usage.get("inputTokens") or 0) + read + write
    completion = usage.get("outputTokens") or 0
    out = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.get("totalTokens") or prompt + completion,
    }
    if read or write:
        out["prompt_tokens_details"] = {"cached_tokens": read}
        out["cache_read_input_tokens"] = read
        out["cache_creation_input_tokens"] = write
    return out


class BedrockStreamDecoder(ChunkDecoder):
    """ConverseStream eventstream frames → OpenAI chunk dicts."""

    __slots__ = ("_tools",)

    def __init__(self, provider: str, model: str | None) -> None:
        super().__init__(EventStreamDecoder(), provider, model)
        self._tools: dict[int, int] = {}  # contentBlockIndex -> tool call index

    def _translate(self, messages: list, out: list) -> None:
        for message in messages:
            headers = message.headers
            kind = headers.get(":event-type")
            if kind is None or headers.get(":message-type", "event") != "event":
                self._raise(message)
            event = loads_or_raise(message.payload, self._provider, self._model)
            if kind == "contentBlockDelta":
                delta = event.get("delta") or {}
                text = delta.get("text")
                if text is not None:
                    out.append(delta_chunk({"content": text}))
                    continue
                tool = delta.get("toolUse")
                if tool is not None:
                    index = self._tools.get(event.get("contentBlockIndex"), len(self._tools) - 1)
                    call = {"index": index, "function": {"arguments": tool.get("input") or ""}}
                    out.append(delta_chunk({"tool_calls": [call]}))
                    continue
                reasoning = delta.get("reasoningContent")
                if reasoning is not None:
                    out.append(delta_chunk(self._reasoning(reasoning)))
            elif kind == "contentBlockStart":
                tool = (event.get("start") or {}).get("toolUse")
                if tool is not None:
                    index = self._tools[event.get("contentBlockIndex")] = len(self._tools)
                    call = {
                        "index": index,
                        "id": tool.get("toolUseId"),
                        "type": "function",
                        "function": {"name": tool.get("name"), "arguments": ""},
                    }
                    out.append(delta_chunk({"tool_calls": [call]}))
            elif kind == "messageStop":
                reason = event.get("stopReason")
                out.append(
                    {"choices": [{"index": 0, "delta": {}, "finish_reason": _STOP_REASONS.get(reason, "stop")}]}
                )
            elif kind == "metadata":
                self.done = True
                usage = event.get("usage")
                if usage:
                    out.append({"choices": [], "usage": _usage(usage)})
            # messageStart, contentBlockStop and unknown events carry nothing to pass on

    @staticmethod
    def _reasoning(reasoning: dict) -> dict:
        text = reasoning.get("text")
        if text is not None:
            return {"reasoning_content": text}
        signature = reasoning.get("signature")
        if signature is not None:
            return {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": signature}]}
        redacted = reasoning.get("redactedContent")
        if redacted is not None:
            return {"thinking_blocks": [{"type": "redacted_thinking", "data": redacted}]}
        return {}

    def _raise(self, message: Any) -> None:
        headers = message.headers
        kind = headers.get(":message-type")
        if kind == "exception":
            data = decode_json_body(message.payload)
            text = (data.get("message") or data.get("Message")) if isinstance(data, dict) else None
            text = text or message.payload[:500].decode("utf-8", "replace")
            raise bedrock_error(headers.get(":exception-type"), text, None, self._provider, self._model, body=data)
        if kind == "error":
            code = headers.get(":error-code")
            raise bedrock_error(code, str(headers.get(":error-message") or code), None, self._provider, self._model)
        raise APIError(
            f"Bedrock sent an eventstream frame without an event type (headers {headers!r})",
            llm_provider=self._provider,
            model=self._model,
        )


# ====================================================================== credentials
_cred_lock = threading.Lock()
_sessions: dict[tuple, Any] = {}


def _botocore() -> Any:
    try:
        import botocore.auth  # noqa: F401
        import botocore.awsrequest  # noqa: F401
        import botocore.credentials  # noqa: F401
        import botocore.session
    except ImportError:
        raise AuthenticationError(
            "Signing Bedrock requests with AWS credentials needs botocore: "
            "pip install 'llmrelay[bedrock]' (or use a Bedrock API key: AWS_BEARER_TOKEN_BEDROCK).",
            llm_provider="bedrock",
        ) from None
    return botocore


def _session(profile: str | None) -> Any:
    """A botocore session per profile (its credential provider chain resolves and refreshes)."""
    import os

    # The environment is part of the key so a changed AWS_* variable is picked up.
    key = (profile, os.environ.get("AWS_PROFILE"), os.environ.get("AWS_ACCESS_KEY_ID"),
           os.environ.get("AWS_SHARED_CREDENTIALS_FILE"), os.environ.get("AWS_CONFIG_FILE"))
    session = _sessions.get(key)
    if session is None:
        botocore = _botocore()
        with _cred_lock:
            session = _sessions.get(key)
            if session is None:
                session = botocore.session.Session(profile=profile)
                _sessions[key] = session
    return session


class BedrockProvider(Provider):
    """Bedrock Converse / ConverseStream."""

    name = "bedrock"
    supported_params = frozenset(
        {
            "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "tools",
            "tool_choice", "stream_options", "reasoning_effort", "thinking", "user",
        }
    )

    def __init__(self, name: str = "bedrock") -> None:
        self.name = name

    # ---------------------------------------------------------------- request
    @staticmethod
    def model_id(call: Call) -> str:
        return call.model.removeprefix("converse/")

    def public_model(self, model: str) -> str:
        """``bedrock/converse/<id>`` answers as ``<id>``: ``converse/`` names the route."""
        return model.removeprefix("converse/")

    def region(self, call: Call) -> str:
        region = call.extra.get("aws_region_name") or first_env(("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"))
        if not region:
            try:
                region = _session(call.extra.get("aws_profile_name")).get_config_variable("region")
            except APIError:
                region = None
        return region or DEFAULT_REGION

    def build_request(self, call: Call) -> HttpRequest:
        params = self.check_params(call)
        model = call.user_model or call.model
        for unsupported in ("aws_role_name", "aws_web_identity_token"):
            if call.extra.get(unsupported):
                raise bad_request(f"{unsupported} (assuming an AWS role) is not supported yet.", call.provider, model)
        region = self.region(call)
        base = call.api_base or call.extra.get("aws_bedrock_runtime_endpoint") or first_env(("AWS_BEDROCK_RUNTIME_ENDPOINT",))
        base = (base or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        action = "converse-stream" if call.stream else "converse"
        url = f"{base}/model/{quote(self.model_id(call), safe='')}/{action}"
        body = orjson.dumps(self.build_body(call, params))
        headers = {"Content-Type": "application/json"}
        headers["Accept"] = "application/vnd.amazon.eventstream" if call.stream else "application/json"
        headers.update(call.extra_headers)
        token = call.api_key or first_env(("AWS_BEARER_TOKEN_BEDROCK",))
        if token:
            headers["Authorization"] = f"Bearer {token}"
            return HttpRequest("POST", url, headers, body)
        return HttpRequest("POST", url, self.sign(call, region, url, headers, body), body)

    def sign(self, call: Call, region: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """SigV4-signed headers for this request (credentials from the call or the AWS chain)."""
        botocore = _botocore()
        extra = call.extra
        access_key = extra.get("aws_access_key_id")
        secret_key = extra.get("aws_secret_access_key")
        if access_key and secret_key:
            credentials = botocore.credentials.Credentials(access_key, secret_key, extra.get("aws_session_token"))
        else:
            found = _session(extra.get("aws_profile_name")).get_credentials()
            if found is None:
                raise AuthenticationError(
                    "No AWS credentials for Bedrock: pass aws_access_key_id/aws_secret_access_key "
                    "(or aws_profile_name), configure the AWS credential chain, or set "
                    "AWS_BEARER_TOKEN_BEDROCK.",
                    llm_provider=call.provider,
                    model=call.user_model or call.model,
                )
            credentials = found.get_frozen_credentials()
        request = botocore.awsrequest.AWSRequest(method="POST", url=url, data=body, headers=headers)
        botocore.auth.SigV4Auth(credentials, "bedrock", region).add_auth(request)
        return dict(request.headers.items())

    def build_body(self, call: Call, params: dict[str, Any]) -> dict[str, Any]:
        """The Converse JSON body."""
        model = call.user_model or call.model
        system, messages = self.messages(call.messages, call.provider, model)
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = system
        config: dict[str, Any] = {}
        max_tokens = params.get("max_completion_tokens", params.get("max_tokens"))
        if max_tokens is not None:
            config["maxTokens"] = max_tokens
        if "temperature" in params:
            config["temperature"] = params["temperature"]
        if "top_p" in params:
            config["topP"] = params["top_p"]
        stop = params.get("stop")
        if stop:
            config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        if config:
            body["inferenceConfig"] = config
        tool_config = self.tool_config(params, messages)
        if tool_config:
            body["toolConfig"] = tool_config
        fields = dict(call.extra.get("additionalModelRequestFields") or {})
        thinking = params.get("thinking")
        effort = params.get("reasoning_effort")
        if isinstance(thinking, dict):
            fields["thinking"] = thinking
        elif effort is not None and effort != "none":
            if "claude" in self.model_id(call).lower():
                fields["thinking"] = {"type": "enabled", "budget_tokens": REASONING_BUDGETS.get(effort, 2048)}
            else:
                fields["reasoning_effort"] = effort
        if fields:
            body["additionalModelRequestFields"] = fields
        for key in _PASS_THROUGH:
            if call.extra.get(key) is not None:
                body[key] = call.extra[key]
        if call.extra_body:
            body.update(call.extra_body)
        return body

    @staticmethod
    def tool_config(params: dict[str, Any], messages: list[dict]) -> dict[str, Any] | None:
        tools = params.get("tools")
        if not tools:
            return None
        choice = params.get("tool_choice")
        uses_tools = any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])
        if choice == "none" and not uses_tools:
            return None  # Converse has no "none": not offering the tools is the same
        specs = []
        for tool in tools:
            fn = tool.get("function") or tool
            spec: dict[str, Any] = {
                "name": fn.get("name"),
                "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
            }
            if fn.get("description"):
                spec["description"] = fn["description"]
            specs.append({"toolSpec": spec})
        config: dict[str, Any] = {"tools": specs}
        if choice == "auto":
            config["toolChoice"] = {"auto": {}}
        elif choice == "required":
            config["toolChoice"] = {"any": {}}
        elif isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            if name:
                config["toolChoice"] = {"tool": {"name": name}}
        return config

    def messages(self, messages: list[dict], provider: str, model: str | None) -> tuple[list[dict], list[dict]]:
        """OpenAI messages → (system blocks, Converse messages with alternating roles)."""
        system: list[dict] = []
        out: list[dict] = []

        def add(role: str, blocks: list[dict]) -> None:
            if not blocks:
                return
            if out and out[-1]["role"] == role:
                out[-1]["content"].extend(blocks)  # Converse needs alternating roles
            else:
                out.append({"role": role, "content": blocks})

        for message in messages:
            role = message.get("role")
            content = message.get("content")
            if role in ("system", "developer"):
                text = content_text(content)
                if text:
                    system.append({"text": text})
            elif role == "user":
                add("user", self._user_blocks(content, provider, model))
            elif role == "assistant":
                blocks: list[dict] = []
                for block in message.get("thinking_blocks") or ():
                    if block.get("type") == "thinking":
                        text_block: dict[str, Any] = {"text": block.get("thinking") or ""}
                        if block.get("signature"):
                            text_block["signature"] = block["signature"]
                        blocks.append({"reasoningContent": {"reasoningText": text_block}})
                    elif block.get("type") == "redacted_thinking":
                        blocks.append({"reasoningContent": {"redactedContent": block.get("data")}})
                text = content_text(content)
                if text.strip():
                    blocks.append({"text": text})
                for tc in message.get("tool_calls") or ():
                    fn = tc.get("function") or {}
                    blocks.append(
                        {"toolUse": {"toolUseId": tc.get("id"), "name": fn.get("name"), "input": arguments_dict(fn.get("arguments"))}}
                    )
                add("assistant", blocks)
            elif role in ("tool", "function"):
                result_id = message.get("tool_call_id") or message.get("name")
                add("user", [{"toolResult": {"toolUseId": result_id, "content": [{"text": content_text(content)}]}}])
        return system, out

    @staticmethod
    def _user_blocks(content: Any, provider: str, model: str | None) -> list[dict]:
        if isinstance(content, str):
            return [{"text": content}] if content else []
        blocks = []
        for part in content or ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("text", "input_text"):
                if part.get("text"):
                    blocks.append({"text": part["text"]})
            elif kind == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                parsed = parse_data_url(url or "")
                if parsed is None:
                    raise bad_request(
                        "Bedrock takes images as bytes: pass a 'data:image/...;base64,...' URL "
                        "(llmrelay does not download images).",
                        provider,
                        model,
                    )
                media, data = parsed
                fmt = _IMAGE_FORMATS.get(media.lower())
                if fmt is None:
                    raise bad_request(f"Bedrock does not accept images of type {media!r}.", provider, model)
                blocks.append({"image": {"format": fmt, "source": {"bytes": data}}})
        return blocks

    # ---------------------------------------------------------------- response
    def parse_response(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> ModelResponse:
        model = call.user_model or call.model
        data = load_object(body, call.provider, model)
        message = (data.get("output") or {}).get("message") or {}
        texts: list[str] = []
        reasoning: list[str] = []
        thinking_blocks: list[dict] = []
        tool_calls: list[dict] = []
        for block in message.get("content") or ():
            if "text" in block:
                texts.append(block["text"])
            elif "toolUse" in block:
                tool = block["toolUse"]
                tool_calls.append(
                    {
                        "id": tool.get("toolUseId"),
                        "type": "function",
                        "function": {"name": tool.get("name"), "arguments": orjson.dumps(tool.get("input", {})).decode()},
                    }
                )
            elif "reasoningContent" in block:
                rc = block["reasoningContent"]
                rt = rc.get("reasoningText")
                if rt:
                    reasoning.append(rt.get("text") or "")
                    thinking_blocks.append({"type": "thinking", "thinking": rt.get("text") or "", "signature": rt.get("signature")})
                elif rc.get("redactedContent") is not None:
                    thinking_blocks.append({"type": "redacted_thinking", "data": rc["redactedContent"]})
        out = assistant_message("".join(texts) if texts or not tool_calls else None, tool_calls, reasoning,
                                thinking_blocks)
        fields: dict[str, Any] = {
            "model": model,
            "choices": [{"index": 0, "message": out, "finish_reason": _STOP_REASONS.get(data.get("stopReason"), "stop")}],
        }
        return chat_response(call, fields, _usage(data["usage"]) if data.get("usage") else None)

    def stream_decoder(self, call: Call) -> BedrockStreamDecoder:
        return BedrockStreamDecoder(call.provider, call.user_model or call.model)

    def error(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> APIError:
        data = decode_json_body(body)
        name = None
        for key, value in headers.items():
            if key.lower() == "x-amzn-errortype":
                name = value.split(":", 1)[0]
                break
        message = None
        if isinstance(data, dict):
            if name is None and data.get("__type"):
                name = str(data["__type"]).rsplit("#", 1)[-1]
            message = data.get("message") or data.get("Message")
        if not message:
            message = body[:500].decode("utf-8", "replace") or f"HTTP {status}"
        return bedrock_error(name, str(message), status, call.provider, call.user_model or call.model, headers, data if data is not None else body)


def make_provider(prefix: str) -> BedrockProvider:
    return BedrockProvider(prefix)
