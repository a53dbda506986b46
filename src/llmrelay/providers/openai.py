"""OpenAI's chat-completions wire format, spoken by OpenAI and every OpenAI-compatible server.

``api_base`` means what it means for the official OpenAI SDK's ``base_url``: the URL that
``/chat/completions`` is appended to (so it usually ends in ``/v1``).
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from .. import settings
from ..codecs.sse import SSEDecoder
from ..exceptions import APIError, AuthenticationError
from ..litellm_params import NOT_FORWARDED
from ..types import ModelResponse, Usage, content_parts_text
from .base import Call, ChunkDecoder, HttpRequest, Provider, error_from_openai_body
from .common import first_env, load_object, malformed, post_json, require_key

__all__ = [
    "OpenAIProvider",
    "OpenAIStreamDecoder",
    "parse_openai_completion",
    "stream_error",
    "count_usage",
]

DEFAULT_API_BASE = "https://api.openai.com/v1"

#: Keyword arguments LiteLLM users pass that configure the call, never sent in the body
#: (the table is :mod:`llmrelay.litellm_params`).
NON_BODY_KWARGS = NOT_FORWARDED


class OpenAIStreamDecoder(ChunkDecoder):
    """SSE frames of ``chat.completion.chunk`` JSON → chunk dicts; in-band errors raise."""

    __slots__ = ("first",)

    def __init__(self, provider: str, model: str | None) -> None:
        super().__init__(SSEDecoder(), provider, model)
        #: The first chunk's data and its dict (the gateway's fast path guesses the content frames'
        #: shape from it).
        self.first: tuple[bytes, dict] | None = None

    def _translate(self, events: list, out: list) -> None:
        for event in events:
            data = event.data
            if self.done:
                continue  # nothing after [DONE] counts
            if data == b"[DONE]":
                self.done = True
                continue
            try:  # inline rather than load_object: this is the hot path of every OpenAI-shaped stream
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise malformed(data, self._provider, self._model, "a stream chunk",
                                f"malformed JSON ({exc})") from None
            if type(chunk) is not dict:
                raise malformed(data, self._provider, self._model, "a stream chunk", "JSON that is not an object")
            if "error" in chunk and not chunk.get("choices"):
                raise stream_error(chunk, self._provider, self._model)
            out.append(chunk)
            if self.first is None:
                self.first = (data, chunk)


def stream_error(chunk: dict, provider: str, model: str | None) -> APIError:
    """The typed exception for an error event inside a 200 stream."""
    error = chunk.get("error")
    status = 500
    if isinstance(error, dict):
        for key in ("status_code", "status", "code"):
            value = error.get(key)
            if isinstance(value, int) and 400 <= value < 600:
                status = value
                break
            if isinstance(value, str) and value.isdigit() and 400 <= int(value) < 600:
                status = int(value)
                break
        else:
            etype = str(error.get("type") or error.get("code") or "").lower()
            status = _STATUS_BY_ERROR_TYPE.get(etype, 500)
    return error_from_openai_body(status, None, chunk, provider, model)


_STATUS_BY_ERROR_TYPE = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "api_error": 500,
    "overloaded_error": 503,
    "service_unavailable": 503,
}


def parse_openai_completion(call: Call, body: bytes) -> ModelResponse:
    """A ``chat.completion`` JSON body → ``ModelResponse`` (usage counted if missing)."""
    data = load_object(body, call.provider, call.user_model)
    if "error" in data and not data.get("choices"):
        raise stream_error(data, call.provider, call.user_model)
    if not isinstance(data.get("choices"), list):
        raise malformed(body, call.provider, call.user_model, "the response body", "no 'choices' list")
    data.pop("stream", None)
    data["model"] = call.user_model or data.get("model")
    response = ModelResponse(**data)
    for choice in response.choices:
        if choice.finish_reason is not None:
            from ..streaming import normalize_finish_reason

            choice.finish_reason = normalize_finish_reason(choice.finish_reason)
        message = choice.message
        if message is not None and message.__dict__.get("reasoning") and not message.reasoning_content:
            message.reasoning_content = message.__dict__.pop("reasoning")
        if message is not None and message.content is not None and type(message.content) is not str:
            # typed parts (Mistral's thinking/text parts): plain text content plus reasoning
            text, reasoning = content_parts_text(message.content)
            message.content = text
            if reasoning and not message.reasoning_content:
                message.reasoning_content = reasoning
    if response.usage is None:
        response.usage = count_usage(call, response)
    return response


def count_usage(call: Call, response: ModelResponse) -> Usage:
    """Usage counted offline for a response whose upstream sent none."""
    from ..tokens import completion_text, counted_usage

    messages = [c.message.model_dump() for c in response.choices if c.message is not None]
    return counted_usage(call.user_model or call.model, call.messages, completion_text(messages))


class OpenAIProvider(Provider):
    """``openai/<model>``, bare OpenAI model names, and any OpenAI-compatible server."""

    name = "openai"
    default_api_base: str | None = DEFAULT_API_BASE
    api_key_env: tuple[str, ...] = ("OPENAI_API_KEY",)
    api_base_env: tuple[str, ...] = ("OPENAI_BASE_URL", "OPENAI_API_BASE")
    #: Whether calls to the default api_base need a key (local servers do not).
    requires_key = True

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name

    def resolve_api_base(self, call: Call) -> str:
        base = call.api_base or settings.get("api_base") or first_env(self.api_base_env) or self.default_api_base
        if not base:
            raise AuthenticationError(
                f"No api_base for {call.provider}: pass api_base= or set "
                f"{' / '.join(self.api_base_env)}.",
                llm_provider=call.provider,
                model=call.user_model,
            )
        return base.rstrip("/")

    def resolve_api_key(self, call: Call, base: str) -> str | None:
        key = call.api_key or settings.get("api_key") or first_env(self.api_key_env)
        if self.requires_key and base == (self.default_api_base or "").rstrip("/"):
            return require_key(key, call.provider, call.user_model, self.api_key_env)
        return key

    def build_body(self, call: Call, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": call.model, "messages": call.messages}
        body.update(params)
        # Anthropic-style ``thinking`` (e.g. from Claude Code through the gateway's /v1/messages)
        # is not an OpenAI parameter: OpenAI refuses it, so it is not sent.
        body.pop("thinking", None)
        if call.stream:
            body["stream"] = True
        else:
            body.pop("stream_options", None)
        for key, value in call.extra.items():
            # Like LiteLLM, keyword arguments that are not OpenAI parameters are sent to
            # OpenAI-compatible servers as they are (vLLM's top_k, guided_json, …), except
            # the ones that configure the call itself.
            if key not in NON_BODY_KWARGS and value is not None:
                body[key] = value
        if call.extra_body:
            body.update(call.extra_body)
        return body

    def build_request(self, call: Call) -> HttpRequest:
        params = self.check_params(call)
        base = self.resolve_api_base(call)
        key = self.resolve_api_key(call, base)
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        organization = call.extra.get("organization")
        if organization:
            auth["OpenAI-Organization"] = organization
        return post_json(call, base + "/chat/completions", auth, self.build_body(call, params))

    def parse_response(
        self, call: Call, status: int, headers: Mapping[str, str], body: bytes
    ) -> ModelResponse:
        return parse_openai_completion(call, body)

    def stream_decoder(self, call: Call) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(call.provider, call.user_model)

