"""Bedrock Converse: translation, eventstream decoding (sans-I/O), SigV4/bearer auth and errors e2e."""

from __future__ import annotations

import json

import pytest

import llmrelay
from llmrelay.codecs.eventstream import encode_message
from llmrelay.exceptions import (
    APIConnectionError,
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
)
from llmrelay.providers.base import Call
from llmrelay.providers.bedrock import BedrockProvider, BedrockStreamDecoder
from llmrelay.streaming import StreamState
from providers.helpers import feed_split
from servers._answers import THINKING, Answer
from servers.bedrock_server import (
    DEFAULT_BEDROCK_MODEL,
    TEST_CREDENTIALS,
    FakeBedrockServer,
    bedrock_error_reply,
    dropped_eventstream,
    eventstream_reply,
    exception_frame,
    stream_frames,
)

AK, SK, REGION = TEST_CREDENTIALS
CREDS = {"aws_access_key_id": AK, "aws_secret_access_key": SK, "aws_region_name": REGION}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}
HI = [{"role": "user", "content": "Hi"}]


def _call(model: str = DEFAULT_BEDROCK_MODEL, stream: bool = False, messages=None, extra=None, **params) -> Call:
    return Call("bedrock", model, messages or HI, params, stream=stream, extra={**CREDS, **(extra or {})}, user_model=model)


def _decode(data: bytes, split: int | None = None) -> tuple[list[dict], BedrockStreamDecoder]:
    decoder = BedrockStreamDecoder("bedrock", "m")
    return feed_split(decoder, data, split), decoder


# ------------------------------------------------------------------- request translation
def test_body_translation_system_images_tools_history_and_config():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        ]},
        {"role": "assistant", "content": "Let me check.", "thinking_blocks": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig1"}],
         "tool_calls": [{"id": "tu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "tu_1", "content": "sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    call = _call(messages=messages, max_tokens=100, temperature=0.5, top_p=0.9, stop=["END"],
                 tools=[WEATHER_TOOL], tool_choice="required", reasoning_effort="low",
                 extra={"guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1"}})
    body = json.loads(BedrockProvider().build_request(call).body)
    assert body["system"] == [{"text": "Be brief."}]
    assert body["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}
    assert body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city",
                                "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]}}}],
        "toolChoice": {"any": {}},
    }
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert body["guardrailConfig"] == {"guardrailIdentifier": "g1", "guardrailVersion": "1"}
    assert body["messages"] == [
        {"role": "user", "content": [
            {"text": "What is this?"},
            {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}}]},
        {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig1"}}},
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "tu_1", "name": "get_weather", "input": {"location": "Paris"}}}]},
        # the tool result and the next user turn merge: Converse needs alternating roles
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "tu_1", "content": [{"text": "sunny"}]}},
            {"text": "And tomorrow?"}]},
    ]


@pytest.mark.parametrize(
    "model, path",
    [
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
        ("converse/us.anthropic.claude-3-7-sonnet-20250219-v1:0", "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse"),
        ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x",
         "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x/converse"),
    ],
)
def test_model_ids_are_one_encoded_segment(model, path):
    request = BedrockProvider().build_request(_call(model))
    assert request.url == "https://bedrock-runtime.us-east-1.amazonaws.com" + path
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")


def test_endpoint_env_bearer_token_and_stream_path(monkeypatch):
    monkeypatch.setenv("AWS_BEDROCK_RUNTIME_ENDPOINT", "https://vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com/")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-XYZ")
    call = Call("bedrock", "amazon.nova-lite-v1:0", HI, {}, stream=True, user_model="amazon.nova-lite-v1:0")
    request = BedrockProvider().build_request(call)
    assert request.url == "https://vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com/model/amazon.nova-lite-v1%3A0/converse-stream"
    assert request.headers["Authorization"] == "Bearer bedrock-api-key-XYZ"
    assert request.headers["Accept"] == "application/vnd.amazon.eventstream"


def test_image_url_must_be_bytes():
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    with pytest.raises(BadRequestError, match="bytes"):
        BedrockProvider().build_request(_call(messages=[{"role": "user", "content": content}]))


def test_response_format_is_unsupported_unless_dropped():
    from llmrelay.exceptions import UnsupportedParamsError

    with pytest.raises(UnsupportedParamsError):
        BedrockProvider().build_request(_call(response_format={"type": "json_object"}))


# ------------------------------------------------------------------- stream decoding
def _frames_bytes(ans: Answer) -> bytes:
    return b"".join(stream_frames(ans))


def test_stream_decodes_identically_at_every_split():
    data = _frames_bytes(Answer(text="Hi there", thinking="ok then", tool_calls=[("get_weather", {"location": "Paris"})]))
    whole, decoder = _decode(data)
    assert decoder.done
    for split in range(0, len(data) + 1, 3):
        assert _decode(data, split)[0] == whole
    kinds = [next(iter(c["choices"][0]["delta"]), None) if c["choices"] else "usage" for c in whole]
    assert kinds[:2] == ["reasoning_content", "reasoning_content"]
    assert "thinking_blocks" in kinds and "content" in kinds and kinds[-1] == "usage"
    calls = [tc for c in whole if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0] == {"index": 0, "id": "tooluse_get_weather_0", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"location": "Paris"}
    assert [c["choices"][0]["finish_reason"] for c in whole if c["choices"]][-1] == "tool_calls"


def test_stream_through_stream_state():
    data = _frames_bytes(Answer(text="Hello there", thinking=THINKING))
    chunks, decoder = _decode(data)
    state = StreamState("m", "bedrock", include_usage=True)
    out = [c for c in map(state.process, chunks) if c is not None] + state.finish(decoder.done)
    assert "".join(c.choices[0].delta.reasoning_content or "" for c in out if c.choices) == THINKING
    assert "".join(c.choices[0].delta.content or "" for c in out if c.choices) == "Hello there"
    assert out[-2].choices[0].finish_reason == "stop"
    assert out[-1].usage.prompt_tokens == 25


@pytest.mark.parametrize("reason, expected", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
])
def test_stop_reasons(reason, expected):
    chunks, _ = _decode(b"".join(stream_frames(Answer(text="a"), stop_reason=reason)))
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == expected


@pytest.mark.parametrize("exception, cls", [
    ("throttlingException", RateLimitError),
    ("modelStreamErrorException", InternalServerError),
    ("validationException", BadRequestError),
    ("serviceUnavailableException", ServiceUnavailableError),
    ("internalServerException", InternalServerError),
])
def test_exception_frames_raise_typed_errors(exception, cls):
    data = b"".join(stream_frames(Answer(text="a b"))[:2]) + exception_frame(exception, "went wrong")
    decoder = BedrockStreamDecoder("bedrock", "m")
    # the content before the exception is delivered first; the error is parked for the transport
    assert decoder.feed(data) == [{"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]}]
    error = decoder.error
    assert type(error) is cls and "went wrong" in error.message
    with pytest.raises(cls):
        BedrockStreamDecoder("bedrock", "m").feed(exception_frame(exception, "went wrong"))
    if cls is InternalServerError:
        assert error.status_code == 500


def test_error_frame_and_corrupt_crc():
    frame = encode_message({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"})
    with pytest.raises(APIError, match="boom"):
        BedrockStreamDecoder("bedrock", "m").feed(frame)
    from llmrelay.codecs.errors import CodecError

    good = stream_frames(Answer(text="a b"))
    bad = bytearray(good[2])
    bad[-1] ^= 0xFF
    decoder = BedrockStreamDecoder("bedrock", "m")
    with pytest.raises(CodecError, match="frame 2"):
        decoder.feed(good[0] + good[1] + bytes(bad))  # the good frames come first
        decoder.close()


def test_truncated_frame_fails_on_close():
    from llmrelay.codecs.errors import CodecError

    data = b"".join(stream_frames(Answer(text="a b")))
    decoder = BedrockStreamDecoder("bedrock", "m")
    decoder.feed(data[:-5])
    with pytest.raises(CodecError, match="truncated"):
        decoder.close()


# ------------------------------------------------------------------- HTTP errors
@pytest.mark.parametrize("status, name, message, cls", [
    (400, "ValidationException", "Malformed input request", BadRequestError),
    (400, "ValidationException", "Input is too long for requested model.", ContextWindowExceededError),
    (403, "AccessDeniedException", "You don't have access to the model", PermissionDeniedError),
    (403, "UnrecognizedClientException", "The security token included in the request is invalid.", AuthenticationError),
    (403, "ExpiredTokenException", "The security token included in the request is expired", AuthenticationError),
    (404, "ResourceNotFoundException", "Model not found", NotFoundError),
    (429, "ThrottlingException", "Too many requests", RateLimitError),
    (408, "ModelTimeoutException", "Model timed out", Timeout),
    (500, "InternalServerException", "Internal error", InternalServerError),
    (503, "ServiceUnavailableException", "Unavailable", ServiceUnavailableError),
    (429, "ModelNotReadyException", "Model is not ready", ServiceUnavailableError),
])
@pytest.mark.parametrize("in_header", [True, False])
def test_http_error_mapping(status, name, message, cls, in_header):
    reply = bedrock_error_reply(status, name, message, in_header=in_header)
    headers = dict(reply.header_pairs())
    error = BedrockProvider().error(_call(), status, headers, reply.body_bytes())
    assert type(error) is cls and message in error.message
    if cls is InternalServerError:
        assert error.status_code == 500


# ------------------------------------------------------------------- end to end
@pytest.fixture
def bedrock():
    with FakeBedrockServer(bearer_token="bedrock-api-key-XYZ") as srv:
        yield srv


def test_sigv4_signed_call_is_verified_by_the_server(bedrock):
    response = llmrelay.completion(f"bedrock/{DEFAULT_BEDROCK_MODEL}", HI, api_base=bedrock.url, **CREDS)
    assert response.choices[0].message.content == "Hello! How can I help you today?"
    assert bedrock.last_request.target == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert bedrock.last_request.headers["x-amz-date"]


async def test_sigv4_signed_stream_async_keeps_the_encoded_path(bedrock):
    stream = await llmrelay.acompletion(
        f"bedrock/converse/{DEFAULT_BEDROCK_MODEL}", HI, stream=True, api_base=bedrock.url, aws_session_token="tok", **CREDS
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! How can I help you today?"
    assert {c.model for c in chunks} == {DEFAULT_BEDROCK_MODEL}  # "converse/" names the route
    request = bedrock.last_request
    assert request.target.endswith("v1%3A0/converse-stream")
    assert request.headers["x-amz-security-token"] == "tok"


def test_wrong_secret_is_an_authentication_error(bedrock):
    with pytest.raises(AuthenticationError, match="signature"):
        llmrelay.completion(f"bedrock/{DEFAULT_BEDROCK_MODEL}", HI, api_base=bedrock.url,
                            **{**CREDS, "aws_secret_access_key": "wrong"})


def test_credentials_from_the_environment_chain(bedrock, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SK)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    response = llmrelay.completion(f"bedrock/{DEFAULT_BEDROCK_MODEL}", HI, api_base=bedrock.url)
    assert response.choices[0].finish_reason == "stop"


def test_bearer_api_key(bedrock):
    response = llmrelay.completion(f"bedrock/{DEFAULT_BEDROCK_MODEL}", HI, api_base=bedrock.url, api_key="bedrock-api-key-XYZ")
    assert response.usage.completion_tokens > 0
    assert bedrock.last_request.headers["authorization"] == "Bearer bedrock-api-key-XYZ"


def test_unknown_model_is_a_validation_error(bedrock):
    with pytest.raises(BadRequestError, match="model identifier"):
        llmrelay.completion("bedrock/nope.model-v1:0", HI, api_base=bedrock.url, **CREDS)


def test_in_stream_exception_raises_from_iteration(bedrock):
    frames = stream_frames(Answer(text="Hello there friend"))
    bedrock.enqueue(eventstream_reply([*frames[:3], exception_frame("throttlingException", "Too many tokens, slow down")]))
    stream = llmrelay.completion(f"bedrock/{DEFAULT_BEDROCK_MODEL}", HI, stream=True, api_base=bedrock.url, **CREDS)
    with pytest.raises(RateLimitError, match="slow down") as info:
        for _ in stream:
            pass
    assert info.value.generated_content == "Hello there"


def test_corrupt_frame_e2e_names_the_frame(bedrock):
    frames = stream_frames(Answer(text="Hello there friend"))
    bad = bytearray(frames[2])
    bad[20] ^= 0x01
    bedrock.enqueue(eventstream_reply([frames[0], frames[1], bytes(bad), *frames[3:]]))
    stream = llmrelay.completion(f"bedrock/{DEFAULT_BEDROCK_MODEL}", HI, stream=True, api_base=bedrock.url, **CREDS)
    with pytest.raises(APIError, match="frame 2"):
        list(stream)


async def test_dropped_eventstream_is_a_connection_error(bedrock):
    bedrock.enqueue(dropped_eventstream(3))
    stream = await llmrelay.acompletion(f"bedrock/{DEFAULT_BEDROCK_MODEL}", HI, stream=True, api_base=bedrock.url, **CREDS)
    with pytest.raises(APIConnectionError):
        async for _ in stream:
            pass
