"""A fake Gemini API / Vertex AI server on top of :mod:`servers.loopback`.

Shapes follow Google's public references: ``POST /v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse`` (Gemini API, ``x-goog-api-key``; a bad key is a 400
``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``), the same methods under
``/v1/projects/{project}/locations/{location}/publishers/google/models/{model}`` (Vertex AI,
``Authorization: Bearer``; 401 ``UNAUTHENTICATED``). Responses are ``GenerateContentResponse``
objects (``candidates[].content.parts``, ``finishReason``, ``usageMetadata``, ``responseId``);
streams are SSE ``data: {GenerateContentResponse}`` frames with no end marker; errors are
``{"error": {"code", "message", "status", "details"}}``.

The fake rejects what the real API rejects (unknown fields such as ``additionalProperties`` in
function parameters, snake_case config keys, roles other than user/model, a ``functionResponse``
for a function never called) with a 400 ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from servers.loopback import LoopbackServer, Reply, Request, sse_frame
from servers.openai_server import DEFAULT_TEXT, split_text

__all__ = ["FakeGeminiServer", "google_error_body", "google_error_reply", "gemini_stream_reply", "response_dict",
           "stream_events", "DEFAULT_THOUGHT", "THOUGHT_SIGNATURE"]

DEFAULT_THOUGHT = "Considering a friendly greeting."
THOUGHT_SIGNATURE = "CiQBVKhc7sig=="
_GEMINI = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)$")
_VERTEX = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+):"
                     r"(generateContent|streamGenerateContent)$")
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_CONFIG_KEYS = {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "presencePenalty",
                "frequencyPenalty", "seed", "responseMimeType", "responseSchema", "thinkingConfig", "responseLogprobs",
                "logprobs"}
_SCHEMA_KEYS = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
                "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
                "propertyOrdering", "default", "items", "minimum", "maximum"}


def google_error_body(code: int, message: str, status: str | None = None, reason: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status or _STATUS.get(code, "UNKNOWN")}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                             "domain": "googleapis.com"}]
    return {"error": error}


def google_error_reply(code: int, message: str | None = None, status: str | None = None, *,
                       reason: str | None = None, retry_after: float | None = None) -> Reply:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Reply.json(google_error_body(code, message or f"Fake error {code}", status, reason), status=code,
                      headers=headers)


def _usage(prompt: int, candidates: int, thoughts: int = 0, cached: int = 0) -> dict[str, Any]:
    meta = {"promptTokenCount": prompt, "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates + thoughts}
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if cached:
        meta["cachedContentTokenCount"] = cached
    return meta


def response_dict(parts: list[dict[str, Any]], *, finish: str = "STOP", prompt_tokens: int = 9,
                  model: str = "gemini-2.5-flash", response_id: str = "resp-fake-1") -> dict[str, Any]:
    thoughts = sum(len(split_text(p["text"])[0]) for p in parts if p.get("thought"))
    output = sum(len(split_text(p.get("text") or json.dumps(p.get("functionCall")))[0]) for p in parts
                 if not p.get("thought"))
    return {"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0}],
            "usageMetadata": _usage(prompt_tokens, output, thoughts), "modelVersion": model, "responseId": response_id}


def stream_events(parts: list[dict[str, Any]], *, finish: str = "STOP", prompt_tokens: int = 9,
                  model: str = "gemini-2.5-flash", response_id: str = "resp-fake-1") -> list[dict[str, Any]]:
    """Text parts split into a few pieces per event; function calls whole; the last event finishes."""
    final = response_dict(parts, finish=finish, prompt_tokens=prompt_tokens, model=model, response_id=response_id)
    pieces: list[dict[str, Any]] = []
    for part in parts:
        if "text" in part:
            words = split_text(part["text"])[0]
            for i in range(0, len(words), 2):
                pieces.append({**part, "text": "".join(words[i:i + 2])})
        else:
            pieces.append(part)
    events = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        cand: dict[str, Any] = {"content": {"parts": [piece], "role": "model"}, "index": 0}
        event: dict[str, Any] = {"candidates": [cand], "modelVersion": model, "responseId": response_id}
        if last:
            cand["finishReason"] = finish
            event["usageMetadata"] = final["usageMetadata"]
        else:
            event["usageMetadata"] = _usage(prompt_tokens, 0)
        events.append(event)
    return events


def gemini_stream_reply(events: list[Any]) -> Reply:
    return Reply.stream([sse_frame(e, "\r\n") for e in events], content_type="text/event-stream")


def _schema_problem(schema: Any, where: str) -> str | None:
    if not isinstance(schema, dict):
        return None
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            return f'Invalid JSON payload received. Unknown name "{key}" at \'{where}\': Cannot find field.'
        if key == "properties":
            for name, sub in value.items():
                problem = _schema_problem(sub, f"{where}.properties[{name}].value")
                if problem:
                    return problem
        if key == "items":
            problem = _schema_problem(value, where + ".items")
            if problem:
                return problem
    return None


def validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Invalid JSON payload received."
    for key in body:
        if key not in ("contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings",
                       "cachedContent"):
            return f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
    contents = body.get("contents")
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    called: set[str] = set()
    for i, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            return f"Please use a valid role: user, model. (contents[{i}])"
        if not content.get("parts"):
            return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
        for part in content["parts"]:
            if "functionCall" in part:
                called.add(part["functionCall"]["name"])
                if not isinstance(part["functionCall"].get("args"), dict):
                    return "functionCall.args must be an object"
            if "functionResponse" in part:
                fr = part["functionResponse"]
                if fr.get("name") not in called or not isinstance(fr.get("response"), dict):
                    return "Please ensure that function response turn comes immediately after a function call turn."
            if "inlineData" in part and not part["inlineData"].get("mimeType"):
                return "inlineData.mimeType is required"
    for key in body.get("generationConfig") or {}:
        if key not in _CONFIG_KEYS:
            return f'Invalid JSON payload received. Unknown name "{key}" at \'generation_config\': Cannot find field.'
    for tool in body.get("tools") or ():
        for j, decl in enumerate(tool.get("functionDeclarations") or ()):
            problem = _schema_problem(decl.get("parameters"), f"tools[0].function_declarations[{j}].parameters")
            if problem:
                return problem
    return None


class FakeGeminiServer(LoopbackServer):
    """Answers Gemini API and Vertex AI generateContent requests (see the module docstring)."""

    def __init__(self, text: str = DEFAULT_TEXT, *, api_key: str = "gemini-key", token: str = "vertex-token",
                 tool_args: Any = None) -> None:
        super().__init__(self.route)
        self.text = text
        self.api_key = api_key
        self.token = token
        self.tool_args = {"location": "Paris, France", "unit": "celsius"} if tool_args is None else tool_args

    def route(self, request: Request) -> Reply:
        match = _GEMINI.match(request.path)
        if match:
            if request.headers.get("x-goog-api-key") != self.api_key:
                return google_error_reply(400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")
            model, method = match.groups()
        else:
            match = _VERTEX.match(request.path)
            if not match:
                return google_error_reply(404, f"Not found: {request.path}")
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return google_error_reply(401, "Request had invalid authentication credentials.")
            _project, _location, model, method = match.groups()
        try:
            body = json.loads(request.body)
        except ValueError:
            return google_error_reply(400, "Invalid JSON payload received.")
        problem = validate(body)
        if problem:
            return google_error_reply(400, problem)
        parts, finish = self.answer(body)
        prompt_tokens = max(1, len(json.dumps(body["contents"])) // 4)
        if method == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return Reply.json([response_dict(parts, finish=finish, prompt_tokens=prompt_tokens, model=model)])
            return gemini_stream_reply(stream_events(parts, finish=finish, prompt_tokens=prompt_tokens, model=model))
        return Reply.json(response_dict(parts, finish=finish, prompt_tokens=prompt_tokens, model=model))

    def answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        config = body.get("generationConfig") or {}
        parts: list[dict[str, Any]] = []
        if (config.get("thinkingConfig") or {}).get("includeThoughts"):
            parts.append({"text": DEFAULT_THOUGHT, "thought": True})
        decls = [d for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()]
        fcc = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        last_turn = body["contents"][-1]["parts"]
        answered = any("functionResponse" in p for p in last_turn)
        if decls and fcc.get("mode") != "NONE" and not answered:
            name = (fcc.get("allowedFunctionNames") or [decls[0]["name"]])[0]
            parts.append({"functionCall": {"name": name, "args": self.tool_args}, "thoughtSignature": THOUGHT_SIGNATURE})
            return parts, "STOP"
        text = self.text
        if config.get("responseMimeType") == "application/json":
            text = json.dumps({"answer": self.text})
        pieces, cut = split_text(text, config.get("maxOutputTokens"))
        parts.append({"text": "".join(pieces)})
        return parts, "MAX_TOKENS" if cut else "STOP"
