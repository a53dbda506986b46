"""``embedding()`` / ``aembedding()``: OpenAI-shaped embeddings from any provider.

``model`` is ``"provider/model"`` like ``completion``'s. Wire formats (one module each):
OpenAI's ``/embeddings`` (``openai``, ``azure``, ``mistral``, ``voyage`` and the OpenAI-compatible
hosts), ``gemini``, ``vertex_ai``, ``bedrock`` (Titan and Cohere Embed), ``cohere`` and ``ollama``.

Inputs are split into the provider's batch size and the answers joined in order (the async
function sends the batches concurrently). ``encoding_format="base64"`` returns each vector as
base64 of little-endian float32 values, as OpenAI does; ``dimensions`` asks for shorter vectors
where the model supports it. ``usage`` is the provider's count, or counted offline when the
provider gives none (Gemini, Bedrock Cohere).
"""

from __future__ import annotations

import base64
import logging
import sys
from array import array
from typing import Any

from ..exceptions import BadRequestError, LLMRelayError
from ..logging_obj import start_call
from ..providers.base import Call
from .base import Codec, EmbedCall, Embedding, EmbeddingResponse

__all__ = ["embedding", "aembedding", "EmbeddingResponse", "Embedding", "CODECS", "EMBEDDING_PARAMS"]

log = logging.getLogger("llmrelay")

#: provider prefix → "module:Codec" (imported on first use).
CODECS: dict[str, str] = {
    "openai": "openai:OpenAICodec",
    "custom_openai": "openai:OpenAICodec",
    "azure": "openai:AzureCodec",
    "mistral": "openai:MistralCodec",
    "voyage": "openai:VoyageCodec",
    "hosted_vllm": "openai:OpenAICodec",
    "together_ai": "openai:OpenAICodec",
    "fireworks_ai": "openai:OpenAICodec",
    "deepinfra": "openai:OpenAICodec",
    "lm_studio": "openai:OpenAICodec",
    "llamacpp": "openai:OpenAICodec",
    "openrouter": "openai:OpenAICodec",
    "gemini": "gemini:GeminiCodec",
    "vertex_ai": "gemini:VertexCodec",
    "bedrock": "bedrock:BedrockCodec",
    "cohere": "cohere:CohereCodec",
    "ollama": "ollama:OllamaCodec",
}

#: Keyword arguments of an embeddings call that shape the request (the rest configure the call).
EMBEDDING_PARAMS = frozenset({"dimensions", "encoding_format", "user", "input_type", "task_type", "truncate",
                              "truncation", "output_dtype", "normalize", "keep_alive"})
_CALL_KWARGS = ("api_base", "base_url", "api_key", "api_version", "extra_headers", "headers", "custom_llm_provider",
                "timeout", "request_timeout", "num_retries", "max_retries", "organization", "azure_ad_token",
                "azure_ad_token_provider")

#: Keyword arguments that are about the call's bookkeeping, never sent anywhere.
_NOT_SENT = frozenset({"litellm_logging_obj", "litellm_call_id", "metadata", "litellm_metadata"})

_codecs: dict[str, Codec] = {}


def _codec(prefix: str) -> Codec:
    codec = _codecs.get(prefix)
    if codec is None:
        import importlib

        module, _, name = CODECS[prefix].partition(":")
        codec = _codecs[prefix] = getattr(importlib.import_module(f"{__name__}.{module}"), name)()
    return codec


def _resolve(model: Any, custom: str | None) -> tuple[str, str]:
    if not isinstance(model, str) or not model.strip():
        raise BadRequestError(f"model must be a non-empty string like 'openai/text-embedding-3-small', got {model!r}")
    prefix, sep, rest = model.partition("/")
    if custom:
        return custom, model if not (sep and prefix == custom) else rest
    if sep and prefix in CODECS:
        return prefix, rest
    if sep:
        raise BadRequestError(f"Embeddings are not supported for provider {prefix!r} (model {model!r}); supported: "
                              f"{', '.join(sorted(CODECS))}.", model=model)
    return "openai", model  # bare names (text-embedding-3-small) are OpenAI's


def _inputs(value: Any, codec: Codec, model: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        tokens = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        nested = all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value)
        if (tokens or nested) and codec.accepts_tokens:
            return [value] if tokens else list(value)
        if tokens or nested:
            raise BadRequestError(f"{model}: token-id input is only supported by OpenAI-compatible embeddings; "
                                  "send text.", model=model)
    raise BadRequestError(f"input must be a string or a non-empty list of strings, got {value!r:.100}", model=model)


def _prepare(model: Any, input: Any, kwargs: dict[str, Any]) -> tuple[Codec, EmbedCall, list[list[Any]], dict]:  # noqa: A002
    provider, name = _resolve(model, kwargs.get("custom_llm_provider"))
    codec = _codec(provider)
    items = _inputs(input, codec, name)
    dimensions = kwargs.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise BadRequestError(f"dimensions must be a positive integer, got {dimensions!r}", model=name)
    encoding = kwargs.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequestError(f"encoding_format must be 'float' or 'base64', got {encoding!r}", model=name)
    extra = {k: v for k, v in kwargs.items() if k in EMBEDDING_PARAMS and k not in ("dimensions", "encoding_format")}
    headers = dict(kwargs.get("headers") or {})
    headers.update(kwargs.get("extra_headers") or {})
    connection = {k: v for k, v in kwargs.items()
                  if k not in EMBEDDING_PARAMS and k not in _CALL_KWARGS and k not in _NOT_SENT}
    chat = Call(provider=provider, model=name, messages=[], params={}, api_base=kwargs.get("api_base") or
                kwargs.get("base_url"), api_key=kwargs.get("api_key"), extra_headers=headers,
                extra={**connection, **{k: kwargs[k] for k in ("api_version", "organization", "azure_ad_token",
                                                             "azure_ad_token_provider") if k in kwargs}},
                user_model=name)
    call = EmbedCall(provider, name, dimensions, extra, chat)
    size = codec.batch_size(call)
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    from ..main import _first_given, _timeout_seconds
    from .. import settings

    timeout = _timeout_seconds(_first_given(kwargs, ("timeout", "request_timeout"), settings.get("request_timeout")),
                               name)
    retries = _first_given(kwargs, ("num_retries", "max_retries"), settings.get("num_retries") or 0)
    from ..cost import call_prices

    return codec, call, batches, {"timeout": timeout, "retries": retries, "encoding": encoding, "items": items,
                                  "prices": call_prices(connection)}


def _b64(vector: list[float]) -> str:
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def _response(call: EmbedCall, results: list[tuple[list[list[float]], int | None]], options: dict) -> EmbeddingResponse:
    vectors = [v for vs, _ in results for v in vs]
    items = options["items"]
    if len(vectors) != len(items):
        from ..exceptions import APIError

        raise APIError(f"The upstream returned {len(vectors)} embeddings for {len(items)} inputs.",
                       llm_provider=call.provider, model=call.model)
    counts = [t for _, t in results]
    if all(t is not None for t in counts):
        prompt = sum(counts)
    else:
        from ..tokens import token_counter

        prompt = sum(token_counter(call.model, text=t) if isinstance(t, str) else len(t) for t in items)
    encode = _b64 if options["encoding"] == "base64" else None
    data = [Embedding(object="embedding", index=i, embedding=encode(v) if encode else v) for i, v in enumerate(vectors)]
    response = EmbeddingResponse(object="list", data=data, model=call.model,
                                 usage={"prompt_tokens": prompt, "total_tokens": prompt})
    from ..cost import response_cost

    response._hidden_params = {
        "custom_llm_provider": call.provider,
        "model": call.model,
        "api_base": (options.get("api_base") or "").split("?", 1)[0] or None,
        "response_cost": response_cost(call.model, call.provider, response.usage, options.get("prices")),
    }
    return response


def _check(codec: Codec, call: EmbedCall, status: int, headers: Any, body: bytes, batch: list[Any]) -> Any:
    if status >= 400 or status < 200:
        raise codec.error(call, status, headers, body)
    return codec.parse(call, body, batch)


def embedding(model: str, input: Any = None, **kwargs: Any) -> EmbeddingResponse:  # noqa: A002 - OpenAI's name
    """Embed ``input`` (a string or a list of strings) with ``model`` (``"provider/model"``).

    Keyword arguments: ``dimensions``, ``encoding_format`` (``"float"``/``"base64"``), ``user``,
    provider extras (``input_type`` for Cohere/Voyage, ``task_type`` for Gemini), and the call's
    ``api_base``, ``api_key``, ``timeout``, ``num_retries``, ``extra_headers``… Registered
    callbacks hear of the call once (``call_type`` ``"embedding"``).
    """
    record = start_call(model, input, False, kwargs, False, "embedding", {"input": input})
    if record is None:
        return _cached_embedding(model, input, kwargs)
    try:
        return record.returned(_cached_embedding(model, input, kwargs))
    except BaseException as exc:
        record.failure(exc)
        raise


async def aembedding(model: str, input: Any = None, **kwargs: Any) -> EmbeddingResponse:  # noqa: A002
    """The async twin of :func:`embedding`; batches are sent concurrently."""
    record = start_call(model, input, False, kwargs, True, "embedding", {"input": input})
    if record is None:
        return await _cached_aembedding(model, input, kwargs)
    try:
        return record.returned(await _cached_aembedding(model, input, kwargs))
    except BaseException as exc:
        record.failure(exc)
        raise


def _cache_plan(model: Any, input: Any, kwargs: dict[str, Any], call_type: str) -> Any:  # noqa: A002
    if "caching" in kwargs or "cache" in kwargs or "ttl" in kwargs or sys.modules["llmrelay"].__dict__.get("cache"):
        from ..caching.embed import plan

        return plan(model, input, kwargs, call_type)
    return None


def _cached_embedding(model: Any, input: Any, kwargs: dict[str, Any]) -> EmbeddingResponse:  # noqa: A002
    """:func:`_embedding` through ``llmrelay.cache`` (per input item) when it applies."""
    cache_plan = _cache_plan(model, input, kwargs, "embedding")
    if cache_plan is None:
        return _embedding(model, input, kwargs)
    from ..caching import embed

    embed.lookup(cache_plan)
    if cache_plan.complete:
        return cache_plan.answer(str(model))
    upstream = _embedding(model, cache_plan.missing_input(), kwargs)
    embed.store(cache_plan, upstream)
    return cache_plan.answer(str(model), upstream) if cache_plan.found else cache_plan.mark_miss(upstream)


async def _cached_aembedding(model: Any, input: Any, kwargs: dict[str, Any]) -> EmbeddingResponse:  # noqa: A002
    cache_plan = _cache_plan(model, input, kwargs, "aembedding")
    if cache_plan is None:
        return await _aembedding(model, input, kwargs)
    from ..caching import embed

    await embed.alookup(cache_plan)
    if cache_plan.complete:
        return cache_plan.answer(str(model))
    upstream = await _aembedding(model, cache_plan.missing_input(), kwargs)
    await embed.astore(cache_plan, upstream)
    return cache_plan.answer(str(model), upstream) if cache_plan.found else cache_plan.mark_miss(upstream)


def _mocked(model: Any, input: Any, kwargs: dict[str, Any]) -> EmbeddingResponse:  # noqa: A002
    """LiteLLM's ``embedding(..., mock_response=...)``: no upstream call. ``mock_response`` is
    the vector of every input (a list of floats, or a string of comma-separated numbers; any
    other value gives 1536 zeros); an exception (or exception name) is raised as
    ``completion``'s mocks are, and ``"error"`` raises ``Exception("Mock error")`` as LiteLLM's
    does. Usage counts the input offline and the cost follows from the model's prices."""
    mock = kwargs.get("mock_response")
    if mock == "error":
        raise Exception("Mock error")  # LiteLLM's exact exception (its tests compare str(exc))
    provider, name = _resolve(model, kwargs.get("custom_llm_provider"))
    from ..mock import mocked_error

    error = mocked_error(mock, provider, name)
    if error is not None:
        raise error
    items = _inputs(input, _codec(provider) if provider in CODECS else _codec("openai"), name)
    vector: Any = mock
    if isinstance(mock, str):
        try:
            vector = [float(x) for x in mock.split(",")]
        except ValueError:
            vector = None
    if not isinstance(vector, list):
        vector = [0.0] * 1536
    if kwargs.get("encoding_format") == "base64":
        vector = _b64(vector)
    from ..tokens import token_counter

    prompt = sum(token_counter(name, text=t) if isinstance(t, str) else len(t) for t in items)
    response = EmbeddingResponse(object="list", model=name,
                                 data=[Embedding(object="embedding", index=i, embedding=vector)
                                       for i in range(len(items))],
                                 usage={"prompt_tokens": prompt, "total_tokens": prompt})
    from ..cost import call_prices, response_cost

    response._hidden_params = {"custom_llm_provider": provider, "model": name, "api_base": None,
                               "response_cost": response_cost(name, provider, response.usage, call_prices(kwargs))}
    return response


def _embedding(model: str, input: Any, kwargs: dict[str, Any]) -> EmbeddingResponse:  # noqa: A002
    import time

    if kwargs.get("mock_response") is not None:
        return _mocked(model, input, kwargs)

    from ..main import retry_delay, retryable
    from ..transport import sync as transport

    codec, call, batches, options = _prepare(model, input, kwargs)
    results = []
    for batch in batches:
        request = codec.build(call, batch)
        options.setdefault("api_base", request.url)
        attempt = 0
        while True:
            try:
                response = transport.send(request, options["timeout"], call.provider, call.model)
                results.append(_check(codec, call, response.status, response.headers, response.read(), batch))
                break
            except LLMRelayError as exc:
                if attempt >= options["retries"] or not retryable(exc):
                    raise
                time.sleep(retry_delay(exc, attempt))
                attempt += 1
    return _response(call, results, options)


async def _aembedding(model: str, input: Any, kwargs: dict[str, Any]) -> EmbeddingResponse:  # noqa: A002
    import asyncio

    from ..main import retry_delay, retryable
    from ..transport import aio as transport

    if kwargs.get("mock_response") is not None:
        return _mocked(model, input, kwargs)
    codec, call, batches, options = _prepare(model, input, kwargs)

    async def one(batch: list[Any]) -> Any:
        request = codec.build(call, batch)
        options.setdefault("api_base", request.url)
        attempt = 0
        while True:
            try:
                response = await transport.send(request, options["timeout"], call.provider, call.model)
                return _check(codec, call, response.status, response.headers, await response.read(), batch)
            except LLMRelayError as exc:
                if attempt >= options["retries"] or not retryable(exc):
                    raise
                await asyncio.sleep(retry_delay(exc, attempt))
                attempt += 1

    if len(batches) == 1:
        results = [await one(batches[0])]
    else:
        results = list(await asyncio.gather(*(one(b) for b in batches)))
    return _response(call, results, options)
