"""Gemini API and Vertex AI: translation, schema conversion, the stream decoder (every split),
errors (HTTP and in-stream), end to end against a fake speaking Google's wire format."""

from __future__ import annotations

import json
import re

import pytest

import llmrelay
from llmrelay.exceptions import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnsupportedParamsError,
)
from llmrelay.main import prepare_call
from llmrelay.providers.gemini import THOUGHT_SEP, GeminiStreamDecoder, convert_schema
from llmrelay.providers.registry import get_provider
from providers.helpers import assemble, build_request, decode_every_split
from servers.gemini_server import (
    DEFAULT_THOUGHT,
    THOUGHT_SIGNATURE,
    FakeGeminiServer,
    gemini_stream_reply,
    google_error_body,
    google_error_reply,
    stream_events,
)
from servers.loopback import Drop, sse_frame
from servers.openai_server import DEFAULT_TEXT

MSG = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#",
    "properties": {"location": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
                   "when": {"$ref": "#/$defs/When"}},
    "required": ["location"], "$defs": {"When": {"type": "object", "properties": {"day": {"const": "today"}}}}}}}]


def body_for(messages=MSG, model="gemini/gemini-2.5-flash", **kwargs):
    return build_request(model, messages, False, {"api_key": "k", **kwargs})


# ============================================================================ requests
def test_request_translation():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is here?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                     {"type": "image_url", "image_url": {"url": "gs://b/cat.jpg"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1" + THOUGHT_SEP + "sig", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1" + THOUGHT_SEP + "sig", "content": "18C"},
    ]
    _, body = body_for(messages, temperature=0.3, top_p=0.9, max_tokens=50, stop="END", n=1,
                       tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}},
                       reasoning_effort="low", response_format={"type": "json_object"})
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    user, model, tool = body["contents"]
    assert user["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}
    assert user["parts"][2] == {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://b/cat.jpg"}}
    assert model == {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
                                                 "thoughtSignature": "sig"}]}
    assert tool == {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                                    "response": {"content": "18C"}}}]}
    assert body["generationConfig"] == {"temperature": 0.3, "topP": 0.9, "candidateCount": 1, "maxOutputTokens": 50,
                                        "stopSequences": ["END"], "responseMimeType": "application/json",
                                        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    params = body["tools"][0]["functionDeclarations"][0]["parameters"]
    assert "additionalProperties" not in params and "$schema" not in params and "$defs" not in params
    assert params["properties"]["unit"] == {"type": "string", "nullable": True, "enum": ["c", "f"]}
    assert params["properties"]["when"] == {"type": "object", "properties": {"day": {"enum": ["today"], "type": "string"}}}


@pytest.mark.parametrize("choice,mode", [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")])
def test_tool_choice_modes(choice, mode):
    _, body = body_for(tools=TOOLS, tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_json_schema_and_anyof_conversion():
    schema = {"type": "object", "properties": {"a": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                                               "b": {"type": "array", "items": {"type": "string", "title": "x",
                                                                               "examples": ["y"]}}}}
    assert convert_schema(schema) == {"type": "object", "properties": {
        "a": {"nullable": True, "type": "integer"}, "b": {"type": "array", "items": {"type": "string", "title": "x"}}}}
    _, body = body_for(response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}})
    assert body["generationConfig"]["responseSchema"]["properties"]["a"] == {"nullable": True, "type": "integer"}


def test_unsupported_params_and_missing_credentials(monkeypatch):
    with pytest.raises(UnsupportedParamsError, match="gemini.*logit_bias"):
        body_for(logit_bias={"1": 2})
    _, body = body_for(logit_bias={"1": 2}, drop_params=True)
    assert "logit_bias" not in json.dumps(body)
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    call, _ = prepare_call("gemini/x", MSG, False, {})
    with pytest.raises(AuthenticationError, match="GEMINI_API_KEY"):
        get_provider("gemini").build_request(call)
    monkeypatch.delenv("VERTEXAI_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    call, _ = prepare_call("vertex_ai/x", MSG, False, {"vertex_access_token": "t"})
    with pytest.raises(BadRequestError, match="vertex_project"):
        get_provider("vertex_ai").build_request(call)


def test_vertex_env_project_location(monkeypatch):
    monkeypatch.setenv("VERTEXAI_PROJECT", "p1")
    monkeypatch.setenv("VERTEXAI_LOCATION", "europe-west4")
    call, _ = prepare_call("vertex_ai/gemini-2.5-pro", MSG, True, {"vertex_access_token": "tok"})
    req = get_provider("vertex_ai").build_request(call)
    assert req.url == ("https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4/"
                       "publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
    assert req.headers["Authorization"] == "Bearer tok"


# ============================================================================ stream decoder
def _sse(events):
    return b"".join(sse_frame(e, "\r\n") for e in events)


def test_decoder_every_split_text_thought_and_call():
    parts = [{"text": "Hmm, Grüße 👋", "thought": True}, {"text": "Hello wörld, how are you"},
             {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "s1"},
             {"functionCall": {"name": "g", "args": {}}}]
    data = _sse(stream_events(parts))
    blank_ids = lambda result: re.sub(r'call_[0-9a-f]{24}', 'call_X', repr(result))  # noqa: E731
    chunks = decode_every_split(lambda: GeminiStreamDecoder("gemini", "m"), data, blank_ids)
    for chunk in chunks:  # generated ids differ per decode; compare the rest
        for choice in chunk.get("choices", ()):
            for tc in choice["delta"].get("tool_calls", ()):
                assert tc["id"].startswith("call_")
    result = assemble(chunks)
    assert result["reasoning"] == "Hmm, Grüße 👋" and result["text"] == "Hello wörld, how are you"
    assert [t["name"] for t in result["tools"].values()] == ["f", "g"]
    assert result["tools"][0]["id"].endswith(THOUGHT_SEP + "s1") and THOUGHT_SEP not in result["tools"][1]["id"]
    assert result["tools"][0]["arguments"] == '{"a":1}'
    assert result["finish"] == ["tool_calls"] and result["ids"] == {"resp-fake-1"}
    usage = result["usage"]
    assert usage.completion_tokens_details["reasoning_tokens"] > 0 and usage.prompt_tokens == 9


@pytest.mark.parametrize("reason,expected", [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
                                             ("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
                                             ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
                                             ("IMAGE_PROHIBITED_CONTENT", "content_filter"),
                                             ("MALFORMED_FUNCTION_CALL", "stop"), ("SOMETHING_NEW", "stop")])
def test_decoder_finish_reasons(reason, expected):
    decoder = GeminiStreamDecoder("gemini", "m")
    result = assemble(decoder.feed(_sse(stream_events([{"text": "a b c"}], finish=reason))))
    assert result["finish"] == [expected] and decoder.done


@pytest.mark.parametrize("code,cls", [(429, RateLimitError), (500, InternalServerError), (503, ServiceUnavailableError),
                                      (400, BadRequestError)])
def test_decoder_in_stream_error(code, cls):
    events = [*stream_events([{"text": "one two three four"}])[:1], google_error_body(code, "upstream boom")]
    decoder = GeminiStreamDecoder("gemini", "m")
    assert decoder.feed(_sse(events))  # the chunk before the error comes out first
    assert type(decoder.error) is cls and "upstream boom" in decoder.error.message
    with pytest.raises(cls, match="upstream boom"):  # alone in a read, it raises at once
        GeminiStreamDecoder("gemini", "m").feed(_sse(events[1:]))


def test_decoder_blocked_prompt_and_unfinished_stream():
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    with pytest.raises(ContentPolicyViolationError, match="SAFETY"):
        GeminiStreamDecoder("gemini", "m").feed(_sse([blocked]))
    decoder = GeminiStreamDecoder("gemini", "m")
    chunks = decoder.feed(_sse(stream_events([{"text": "one two three four"}])[:1]))
    assert not decoder.done
    with pytest.raises(APIConnectionError):
        assemble(chunks, complete=False)


# ============================================================================ end to end
@pytest.fixture
def gemini():
    with FakeGeminiServer() as srv:
        yield srv


def kw(srv, provider):
    if provider == "gemini":
        return {"api_base": srv.url, "api_key": "gemini-key"}
    return {"api_base": srv.url, "vertex_access_token": "vertex-token", "vertex_project": "proj",
            "vertex_location": "us-east5"}


@pytest.mark.parametrize("provider", ["gemini", "vertex_ai"])
def test_e2e_sync_text_and_stream(gemini, provider):
    resp = llmrelay.completion(f"{provider}/gemini-2.5-flash", [{"role": "system", "content": "S"}, *MSG],
                               **kw(gemini, provider))
    assert resp.choices[0].message.content == DEFAULT_TEXT and resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp._hidden_params["custom_llm_provider"] == provider
    assert resp._hidden_params["api_base"].startswith(gemini.url)
    assert gemini.last_json["systemInstruction"] == {"parts": [{"text": "S"}]}
    chunks = list(llmrelay.completion(f"{provider}/gemini-2.5-flash", MSG, stream=True,
                                      stream_options={"include_usage": True}, **kw(gemini, provider)))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_TEXT
    assert chunks[0].choices[0].delta.role == "assistant" and len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.prompt_tokens > 0


@pytest.mark.parametrize("provider", ["gemini", "vertex_ai"])
async def test_e2e_async_tools_reasoning_and_round_trip(gemini, provider):
    stream = await llmrelay.acompletion(f"{provider}/gemini-2.5-flash", MSG, stream=True, tools=TOOLS,
                                        reasoning_effort="medium", **kw(gemini, provider))
    built = llmrelay.stream_chunk_builder([c async for c in stream])
    message = built.choices[0].message
    assert message.reasoning_content == DEFAULT_THOUGHT and built.choices[0].finish_reason == "tool_calls"
    call = message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"location": "Paris, France", "unit": "celsius"}
    history = [*MSG, message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 18}'}]
    resp = await llmrelay.acompletion(f"{provider}/gemini-2.5-flash", history, tools=TOOLS, **kw(gemini, provider))
    assert resp.choices[0].message.content == DEFAULT_TEXT
    sent = gemini.last_json["contents"]
    assert sent[1]["parts"][0]["thoughtSignature"] == THOUGHT_SIGNATURE
    assert sent[2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": {"temp": 18}}


@pytest.mark.parametrize("reply,cls", [
    (google_error_reply(429, "Resource has been exhausted", retry_after=2), RateLimitError),
    (google_error_reply(400, "Request contains an invalid argument."), BadRequestError),
    (google_error_reply(400, "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."),
     ContextWindowExceededError),
    (google_error_reply(400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID"),
     AuthenticationError),
    (google_error_reply(401, "Request had invalid authentication credentials."), AuthenticationError),
    (google_error_reply(403, "Permission denied on resource project x."), PermissionDeniedError),
    (google_error_reply(404, "models/nope is not found"), NotFoundError),
    (google_error_reply(500, "An internal error has occurred."), InternalServerError),
    (google_error_reply(503, "The model is overloaded."), ServiceUnavailableError),
])
def test_e2e_http_errors(gemini, reply, cls):
    gemini.enqueue(reply)
    with pytest.raises(cls) as info:
        llmrelay.completion("gemini/gemini-2.5-flash", MSG, **kw(gemini, "gemini"))
    assert type(info.value) is cls and info.value.llm_provider == "gemini"


async def test_e2e_errors_inside_stream_and_dropped(gemini):
    events = [*stream_events([{"text": "one two three four five"}])[:1], google_error_body(503, "overloaded")]
    gemini.enqueue(gemini_stream_reply(events), gemini_stream_reply([*stream_events([{"text": "a b c d"}])[:1], Drop()]))
    stream = await llmrelay.acompletion("gemini/gemini-2.5-flash", MSG, stream=True, **kw(gemini, "gemini"))
    with pytest.raises(ServiceUnavailableError) as info:
        async for _ in stream:
            pass
    assert info.value.generated_content == "one two"
    stream = llmrelay.completion("gemini/gemini-2.5-flash", MSG, stream=True, **kw(gemini, "gemini"))
    with pytest.raises(APIConnectionError):
        list(stream)


def test_e2e_blocked_prompt_non_stream(gemini):
    from servers.loopback import Reply

    gemini.enqueue(Reply.json({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                               "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4}}))
    with pytest.raises(ContentPolicyViolationError):
        llmrelay.completion("gemini/gemini-2.5-flash", MSG, **kw(gemini, "gemini"))


def test_e2e_wrong_key_is_authentication_error(gemini):
    with pytest.raises(AuthenticationError):
        llmrelay.completion("gemini/gemini-2.5-flash", MSG, api_base=gemini.url, api_key="wrong")


def test_usage_metadata_with_cache_thoughts_and_tool_use_prompt():
    from llmrelay.providers.gemini import gemini_usage

    usage = gemini_usage({"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 20,
                          "thoughtsTokenCount": 30, "toolUsePromptTokenCount": 5, "totalTokenCount": 155})
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (105, 50, 155)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 60}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 30}
