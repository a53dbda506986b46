"""Google Gemini: the Gemini API (``gemini/<model>``) and Vertex AI (``vertex_ai/<model>``).

Both speak ``generateContent`` / ``streamGenerateContent?alt=sse``; they differ only in URL and
auth:

* Gemini API: ``https://generativelanguage.googleapis.com/v1beta/models/{model}:{method}``,
  ``x-goog-api-key`` (``api_key`` / ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``).
* Vertex AI: ``https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/
  {location}/publishers/google/models/{model}:{method}`` (``vertex_project`` /
  ``VERTEXAI_PROJECT``, ``vertex_location`` / ``VERTEXAI_LOCATION``, default ``us-central1``;
  ``global`` uses ``aiplatform.googleapis.com``), ``Authorization: Bearer`` with an explicit
  access token (``vertex_access_token=`` or ``api_key=``) or, when none is given, a token from
  Application Default Credentials (``pip install llmrelay[vertex]``; google-auth is imported
  only then, and the token fetch is the one network step outside the transport).

``api_base``: LiteLLM's meaning (the URL ``:generateContent`` is appended to) when it contains
``/models/``; otherwise it replaces the host (``http://proxy`` or ``http://proxy/v1beta``) and
the standard path is appended.

Gemini sends function calls whole: they become complete tool-call deltas with generated ids.
A call's ``thoughtSignature`` rides in the id (``call_…__thought__<sig>``) so it goes back to
Gemini when the caller sends the assistant message back, as Gemini requires.
"""

from __future__ import annotations

import mimetypes
import threading
from typing import Any, Mapping

import orjson

from ..codecs.sse import SSEDecoder
from ..exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyViolationError,
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
from .base import Call, HttpRequest, Provider, decode_json_body, ChunkDecoder
from .common import (REASONING_BUDGETS, arguments_dict, chat_response, content_text, first_env, load_object,
                     new_tool_call_id, parse_data_url, post_json, require_key)

__all__ = ["GeminiProvider", "VertexProvider", "GeminiStreamDecoder", "google_error", "convert_schema",
           "build_body", "THOUGHT_SEP"]

GEMINI_BASE = "https://generativelanguage.googleapis.com"
THOUGHT_SEP = "__thought__"

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "stop",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}

_BY_GOOGLE_STATUS: dict[str, type[APIError]] = {
    "INVALID_ARGUMENT": BadRequestError,
    "FAILED_PRECONDITION": BadRequestError,
    "OUT_OF_RANGE": BadRequestError,
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "RESOURCE_EXHAUSTED": RateLimitError,
    "INTERNAL": InternalServerError,
    "UNKNOWN": InternalServerError,
    "UNAVAILABLE": ServiceUnavailableError,
    "DEADLINE_EXCEEDED": Timeout,
}

_SUPPORTED = frozenset(
    {
        "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens", "presence_penalty",
        "frequency_penalty", "seed", "tools", "tool_choice", "response_format", "reasoning_effort",
        "thinking", "stream_options", "logprobs", "top_logprobs", "parallel_tool_calls",
    }
)


# ============================================================================ errors
def google_error(status: int, headers: Mapping[str, str] | None, body: Any, provider: str, model: str | None) -> APIError:
    """Google's ``{"error": {"code", "message", "status", "details"}}`` → the typed exception."""
    data = decode_json_body(body) if isinstance(body, (bytes, bytearray)) else body
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        gstatus = str(error.get("status") or "")
        code = error.get("code")
        if not status and isinstance(code, int):
            status = code
    else:
        message = body[:500].decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
        gstatus = ""
    status = status or 500
    cls = _BY_GOOGLE_STATUS.get(gstatus) or exception_for_status(status)
    lowered = message.lower()
    if "api key not valid" in lowered or "api_key_invalid" in orjson.dumps(data).decode().lower():
        cls = AuthenticationError
    elif cls is BadRequestError and ("exceeds the maximum number of tokens" in lowered or "token count" in lowered
                                     and "exceeds" in lowered):
        cls = ContextWindowExceededError
    return cls(message, status_code=status, llm_provider=provider, model=model, headers=dict(headers or {}),
               body=data if data is not None else body, code=gstatus or None, error_type=gstatus or None)


# ============================================================================ schemas
_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})


def convert_schema(schema: Any, defs: dict | None = None, depth: int = 0) -> Any:
    """JSON Schema → the OpenAPI subset Gemini accepts: ``$ref`` inlined, ``["x","null"]`` types
    and ``anyOf: [.., {type: null}]`` → ``nullable``, ``const`` → ``enum``, other keywords dropped."""
    if not isinstance(schema, dict) or depth > 32:
        return schema
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        if target is not None:
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return convert_schema(merged, defs, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            if len(kinds) < len(value):
                out["nullable"] = True
            if len(kinds) == 1:
                out["type"] = kinds[0]
            elif kinds:
                out["anyOf"] = [{"type": t} for t in kinds]
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: convert_schema(sub, defs, depth + 1) for name, sub in value.items()}
        elif key == "items":
            out["items"] = convert_schema(value, defs, depth + 1)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            subs = [s for s in value if not (isinstance(s, dict) and s.get("type") == "null")]
            if len(subs) < len(value):
                out["nullable"] = True
            subs = [convert_schema(s, defs, depth + 1) for s in subs]
            if len(subs) == 1:
                out.update(subs[0])
            elif subs:
                out["anyOf"] = subs
        elif key in _SCHEMA_KEYS:
            out[key] = value
    if "enum" in out and out.get("type") in (None, "string"):
        out["enum"] = [str(v) for v in out["enum"]]
        out.setdefault("type", "string")
    if out.get("type") == "object" and not out.get("properties"):
        out.pop("properties", None)
    return out


# ============================================================================ requests
def _media_part(url: str) -> dict:
    parsed = parse_data_url(url)
    if parsed is not None:
        return {"inlineData": {"mimeType": parsed[0], "data": parsed[1]}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _parts(content: Any) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append({"text": part})
            continue
        ptype = part.get("type")
        if ptype in ("text", "input_text"):
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif ptype == "image_url":
            image = part.get("image_url")
            parts.append(_media_part(str(image.get("url") if isinstance(image, dict) else image)))
        elif ptype == "file":
            file = part.get("file") or {}
            data = file.get("file_data") or file.get("file_id") or file.get("url")
            if data:
                parts.append(_media_part(str(data)))
        elif ptype == "input_audio":
            audio = part.get("input_audio") or {}
            parts.append({"inlineData": {"mimeType": "audio/" + (audio.get("format") or "wav"),
                                         "data": audio.get("data")}})
        else:
            parts.append(part)  # a native Gemini part
    return parts


def _response_object(content: Any) -> dict:
    text = content_text(content)
    try:
        value = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"content": text}


def convert_messages(messages: list[dict]) -> tuple[dict | None, list[dict]]:
    """OpenAI messages → (systemInstruction or None, contents with merged turns)."""
    system: list[dict] = []
    contents: list[dict] = []
    names: dict[str, str] = {}  # tool_call_id → function name
    for message in messages:
        role = message["role"]
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content")))
            continue
        if role == "assistant":
            grole, parts = "model", _parts(message.get("content"))
            for tc in message.get("tool_calls") or ():
                fn = tc.get("function") or {}
                call_id = tc.get("id") or ""
                names[call_id] = fn.get("name") or ""
                part: dict[str, Any] = {"functionCall": {"name": fn.get("name"), "args": arguments_dict(fn.get("arguments"))}}
                if THOUGHT_SEP in call_id:
                    part["thoughtSignature"] = call_id.split(THOUGHT_SEP, 1)[1]
                parts.append(part)
            if message.get("function_call"):
                fc = message["function_call"]
                parts.append({"functionCall": {"name": fc.get("name"), "args": arguments_dict(fc.get("arguments"))}})
            if not parts:
                continue
        elif role in ("tool", "function"):
            name = message.get("name") or names.get(message.get("tool_call_id") or "", "")
            grole = "user"
            parts = [{"functionResponse": {"name": name, "response": _response_object(message.get("content"))}}]
        else:
            grole, parts = "user", _parts(message.get("content")) or [{"text": " "}]
        if contents and contents[-1]["role"] == grole:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": grole, "parts": parts})
    return ({"parts": system} if system else None), contents


def _thinking_config(params: dict) -> dict | None:
    thinking = params.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return {"thinkingBudget": 0}
        budget = thinking.get("budget_tokens")
        config: dict[str, Any] = {"includeThoughts": True}
        if isinstance(budget, int):
            config["thinkingBudget"] = budget
        return config
    effort = params.get("reasoning_effort")
    if effort in ("none", "disable"):
        return {"thinkingBudget": 0}
    if effort in REASONING_BUDGETS:
        return {"thinkingBudget": REASONING_BUDGETS[effort], "includeThoughts": True}
    return None


def build_body(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    system, contents = convert_messages(call.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = system
    config: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("n", "candidateCount"),
                         ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
                         ("seed", "seed"), ("logprobs", "responseLogprobs"), ("top_logprobs", "logprobs")):
        if ours in params:
            config[theirs] = params[ours]
    max_tokens = params.get("max_completion_tokens") or params.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    stop = params.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt["type"] == "json_schema" else None
        if schema:
            config["responseSchema"] = convert_schema(schema)
    thinking = _thinking_config(params)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    tools = params.get("tools")
    if tools:
        decls, native = [], []
        for tool in tools:
            if tool.get("type", "function") != "function":
                native.append({k: v for k, v in tool.items() if k != "type"} or tool)
                continue
            fn = tool.get("function") or tool
            decl: dict[str, Any] = {"name": fn.get("name")}
            if fn.get("description"):
                decl["description"] = fn["description"]
            parameters = fn.get("parameters")
            if parameters and (parameters.get("properties") or parameters.get("type") != "object"):
                decl["parameters"] = convert_schema(parameters)
            decls.append(decl)
        body["tools"] = ([{"functionDeclarations": decls}] if decls else []) + native
    choice = params.get("tool_choice")
    if choice is not None and tools:
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            fcc: dict[str, Any] = {"mode": "ANY", "allowedFunctionNames": [name]}
        else:
            fcc = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice, "AUTO")}
        body["toolConfig"] = {"functionCallingConfig": fcc}
    if call.extra.get("safety_settings"):
        body["safetySettings"] = call.extra["safety_settings"]
    if call.extra_body:
        body.update(call.extra_body)
    return body


# ============================================================================ responses
def _new_call_id(signature: str | None) -> str:
    call_id = new_tool_call_id()
    return call_id + THOUGHT_SEP + signature if signature else call_id


def gemini_usage(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``usageMetadata`` → OpenAI's usage. ``promptTokenCount`` already includes cached tokens;
    tokens of tool-use prompts (``toolUsePromptTokenCount``) count as prompt tokens too."""
    prompt = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
    thoughts = meta.get("thoughtsTokenCount") or 0
    completion = (meta.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": meta.get("totalTokenCount") or prompt + completion,
        "prompt_tokens_details": {"cached_tokens": meta.get("cachedContentTokenCount") or 0},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _blocked(data: dict, provider: str, model: str | None) -> ContentPolicyViolationError:
    feedback = data.get("promptFeedback") or {}
    reason = feedback.get("blockReason") or "SAFETY"
    return ContentPolicyViolationError(
        f"The prompt was blocked by Google's safety filters (blockReason={reason}).",
        llm_provider=provider, model=model, body=data, code=str(reason),
    )


def parse_candidate_parts(parts: list, tool_index: int = 0) -> tuple[dict, int]:
    """Parts of one candidate → (delta/message fields, number of function calls)."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict] = []
    for part in parts:
        if "text" in part:
            (reasoning if part.get("thought") else text).append(part["text"])
        elif "functionCall" in part:
            fc = part["functionCall"]
            calls.append({"index": tool_index + len(calls), "id": _new_call_id(part.get("thoughtSignature")),
                          "type": "function",
                          "function": {"name": fc.get("name"), "arguments": orjson.dumps(fc.get("args") or {}).decode()}})
    fields: dict[str, Any] = {}
    if text:
        fields["content"] = "".join(text)
    if reasoning:
        fields["reasoning_content"] = "".join(reasoning)
    if calls:
        fields["tool_calls"] = calls
    return fields, len(calls)


def _finish(reason: str | None, had_calls: bool) -> str:
    finish = _FINISH.get(reason or "STOP", "stop")
    return "tool_calls" if had_calls and finish == "stop" else finish


def parse_generate_response(call: Call, data: dict) -> ModelResponse:
    candidates = data.get("candidates")
    if not candidates:
        if (data.get("promptFeedback") or {}).get("blockReason"):
            raise _blocked(data, call.provider, call.user_model)
        raise APIError(f"Gemini answered without candidates: {orjson.dumps(data)[:300]!r}",
                       llm_provider=call.provider, model=call.user_model, body=data)
    choices = []
    for position, cand in enumerate(candidates):
        fields, ncalls = parse_candidate_parts((cand.get("content") or {}).get("parts") or [])
        for tc in fields.get("tool_calls", ()):
            tc.pop("index", None)
        message = {"role": "assistant", "content": fields.get("content")}
        if "reasoning_content" in fields:
            message["reasoning_content"] = fields["reasoning_content"]
        if ncalls:
            message["tool_calls"] = fields["tool_calls"]
        choices.append({"index": cand.get("index", position), "message": message,
                        "finish_reason": _finish(cand.get("finishReason"), bool(ncalls))})
    fields = {"id": data.get("responseId"), "model": call.user_model or data.get("modelVersion"), "choices": choices}
    return chat_response(call, fields, gemini_usage(data.get("usageMetadata") or {}))


class GeminiStreamDecoder(ChunkDecoder):
    """``streamGenerateContent?alt=sse`` frames → OpenAI chunk dicts (pure, incremental).

    Gemini has no end marker: the stream is complete once every candidate sent a finishReason.
    """

    __slots__ = ("_id", "_tools", "_open", "_meta")

    def __init__(self, provider: str, model: str | None) -> None:
        super().__init__(SSEDecoder(), provider, model)
        self._id: str | None = None
        self._tools: dict[int, int] = {}  # candidate index → function calls so far
        self._open: set[int] = set()  # candidates seen without a finishReason yet
        self._meta: Any = None  # the last usageMetadata translated (most events repeat it)

    def _translate(self, events: list, out: list) -> None:
        for event in events:
            data = load_object(event.data, self._provider, self._model, "a stream event")
            if "error" in data:
                raise google_error(0, None, data, self._provider, self._model)
            if self._id is None:
                self._id = data.get("responseId")
            candidates = data.get("candidates")
            chunk: dict[str, Any] = {"id": self._id}
            if candidates:
                choices = []
                for position, cand in enumerate(candidates):
                    index = cand.get("index", position)
                    had = self._tools.get(index, 0)
                    parts = (cand.get("content") or {}).get("parts") or ()
                    if len(parts) == 1 and len(parts[0]) == 1 and "text" in parts[0]:  # the common case
                        delta, ncalls = {"content": parts[0]["text"]}, 0
                    else:
                        delta, ncalls = parse_candidate_parts(parts, had)
                    if ncalls:
                        self._tools[index] = had + ncalls
                    reason = cand.get("finishReason")
                    finish = None
                    if reason:
                        finish = _finish(reason, bool(self._tools.get(index)))
                        self._open.discard(index)
                    else:
                        self._open.add(index)
                    choices.append({"index": index, "delta": delta, "finish_reason": finish})
                chunk["choices"] = choices
                if not self._open:
                    self.done = True
            elif (data.get("promptFeedback") or {}).get("blockReason"):
                raise _blocked(data, self._provider, self._model)
            meta = data.get("usageMetadata")
            if meta and meta != self._meta:
                self._meta = meta
                chunk["usage"] = gemini_usage(meta)
            out.append(chunk)

# ============================================================================ providers
class GeminiProvider(Provider):
    """``gemini/<model>``: the Gemini API (Google AI Studio keys)."""

    name = "gemini"
    supported_params = _SUPPORTED
    api_key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name

    def _url(self, base: str, default_path: str, call: Call) -> str:
        """``base`` + the standard path (``default_path`` starts with the API version)."""
        method = "streamGenerateContent" if call.stream else "generateContent"
        base = base.rstrip("/")
        if "/models/" in base:  # LiteLLM's meaning: everything up to the model
            url = f"{base}:{method}"
        else:
            version, _, rest = default_path[1:].partition("/")
            if base.rsplit("/", 1)[-1].startswith("v1"):  # the base already names a version
                url = f"{base}/{rest}/{call.model}:{method}"
            else:
                url = f"{base}{default_path}/{call.model}:{method}"
        return url + "?alt=sse" if call.stream else url

    def url(self, call: Call) -> str:
        base = call.api_base or first_env(("GEMINI_API_BASE",)) or GEMINI_BASE
        return self._url(base, "/v1beta/models", call)

    def auth_headers(self, call: Call) -> dict[str, str]:
        key = require_key(call.api_key or first_env(self.api_key_env), call.provider, call.user_model, self.api_key_env)
        return {"x-goog-api-key": key}

    def build_request(self, call: Call) -> HttpRequest:
        params = self.check_params(call)
        return post_json(call, self.url(call), self.auth_headers(call), build_body(call, params))

    def parse_response(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> ModelResponse:
        data = load_object(body, call.provider, call.user_model)
        if "error" in data:
            raise google_error(0, headers, data, call.provider, call.user_model)
        return parse_generate_response(call, data)

    def stream_decoder(self, call: Call) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(call.provider, call.user_model)

    def error(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> APIError:
        return google_error(status, headers, body, call.provider, call.user_model)


_adc_lock = threading.Lock()
_adc_cache: dict[str, Any] = {}


def adc_token(credentials: Any = None) -> tuple[str, str | None]:
    """(access token, project) from google-auth: ADC, or ``vertex_credentials`` (a service-account
    JSON path, JSON text or dict). Cached until shortly before the token expires."""
    try:
        import google.auth
        import google.auth.transport.requests
    except ImportError:  # pragma: no cover - depends on the optional extra
        raise AuthenticationError(
            "vertex_ai needs an access token: pass vertex_access_token= (or api_key=), or install the "
            "'vertex' extra (pip install 'llmrelay[vertex]') to use Application Default Credentials.",
            llm_provider="vertex_ai",
        ) from None
    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    key = repr(credentials)
    with _adc_lock:
        cached = _adc_cache.get(key)
        if cached is None:
            if credentials is None:
                creds, project = google.auth.default(scopes=scopes)
            else:
                from google.oauth2 import service_account

                info = credentials
                if isinstance(info, str):
                    if not info.lstrip().startswith("{"):
                        with open(info, "rb") as fh:
                            info = fh.read()
                    info = orjson.loads(info)
                creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
                project = info.get("project_id")
            cached = _adc_cache[key] = [creds, project]
        creds, project = cached
        if not creds.valid:
            creds.refresh(google.auth.transport.requests.Request())
        return creds.token, project


class VertexProvider(GeminiProvider):
    """``vertex_ai/<model>``: Gemini models on Vertex AI."""

    name = "vertex_ai"

    def _project_location(self, call: Call) -> tuple[str | None, str]:
        project = call.extra.get("vertex_project") or first_env(("VERTEXAI_PROJECT", "VERTEX_PROJECT",
                                                                 "GOOGLE_CLOUD_PROJECT"))
        location = call.extra.get("vertex_location") or first_env(("VERTEXAI_LOCATION", "VERTEX_LOCATION")) \
            or "us-central1"
        return project, location

    def _token(self, call: Call) -> tuple[str, str | None]:
        token = call.extra.get("vertex_access_token") or call.api_key or first_env(("VERTEXAI_ACCESS_TOKEN",))
        if token:
            return token, None
        return adc_token(call.extra.get("vertex_credentials"))

    def url(self, call: Call, project: str | None = None) -> str:
        """The Vertex URL; ``project`` (from the ADC credentials) is used when none is configured."""
        configured, location = self._project_location(call)
        project = configured or project
        if not project and not (call.api_base and "/models/" in call.api_base):
            raise BadRequestError("No Vertex AI project: pass vertex_project= or set VERTEXAI_PROJECT.",
                                  llm_provider=call.provider, model=call.user_model)
        host = "https://aiplatform.googleapis.com" if location == "global" else \
            f"https://{location}-aiplatform.googleapis.com"
        path = f"/v1/projects/{project}/locations/{location}/publishers/google/models"
        return self._url(call.api_base or host, path, call)

    def build_request(self, call: Call) -> HttpRequest:
        params = self.check_params(call)
        token, adc_project = self._token(call)
        url = self.url(call, adc_project)
        return post_json(call, url, {"Authorization": f"Bearer {token}"}, build_body(call, params))
