"""What a call costs, and what a model can do: LiteLLM's cost and model-facts API.

The facts live in a bundled table (``data/model_prices.json``: prices in USD per token, context
windows, capabilities, with the date they were taken and the pages they came from). It is read
on first use, never at ``import llmrelay``. ``model_cost`` is that table as a plain dict keyed
like LiteLLM's (``"gpt-4o"``, ``"claude-sonnet-4-20250514"``, ``"gemini/gemini-2.5-pro"``,
``"groq/llama-3.3-70b-versatile"``…); :func:`register_model` adds or overrides entries.

Pricing rules, for every provider (usage is the OpenAI-shaped usage llmrelay returns):

* ``prompt_tokens`` includes cached tokens; the cache reads (``cache_read_input_tokens`` or
  ``prompt_tokens_details.cached_tokens``) are billed at ``cache_read_input_token_cost`` and
  Anthropic/Bedrock cache writes (``cache_creation_input_tokens``) at
  ``cache_creation_input_token_cost``; the rest at ``input_cost_per_token``.
* ``completion_tokens`` includes reasoning tokens; those
  (``completion_tokens_details.reasoning_tokens``) are billed at
  ``output_cost_per_reasoning_token`` where the table has one, else as output.
* A model with long-context prices (``*_above_200k_tokens``, ``*_above_128k_tokens``) is billed
  at them when the prompt is longer than the threshold.
* Per-deployment prices (``input_cost_per_token``… in ``litellm_params`` or ``model_info``,
  and ``model_info.base_model``) replace the table's for that deployment only.
* Self-hosted providers (ollama, llama.cpp, LM Studio, vLLM, the in-process local model) cost 0.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .exceptions import LLMRelayError
from .types import OpenAIObject

__all__ = [
    "ModelNotMappedError",
    "PRICE_KEYS",
    "model_cost",
    "get_model_info",
    "register_model",
    "cost_per_token",
    "completion_cost",
    "usage_cost",
    "deployment_prices",
    "apply_deployment_prices",
    "apply_prices",
    "supports_function_calling",
    "supports_parallel_function_calling",
    "supports_vision",
    "supports_reasoning",
    "supports_response_schema",
    "supports_prompt_caching",
    "supports_tool_choice",
    "supports_system_messages",
    "supports_audio_input",
    "supports_pdf_input",
    "supports_web_search",
    "supports_audio_output",
    "supports_computer_use",
    "supports_url_context",
    "supports_embedding_image_input",
    "supports_native_streaming",
    "get_max_tokens",
    "get_model_cost_map",
    "response_cost_calculator",
]

log = logging.getLogger("llmrelay")

_DATA = Path(__file__).parent / "data" / "model_prices.json"

#: Long-context tiers, highest first: (threshold in prompt tokens, suffix of the keys that apply
#: to the whole call when the prompt is longer).
_TIERS = ((272_000, "_above_272k_tokens"), (200_000, "_above_200k_tokens"), (128_000, "_above_128k_tokens"),
          (100_000, "_above_100k_tokens"))
_TIERED_KEYS = ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
                "cache_creation_input_token_cost")

#: Prices per second of the call (a Sagemaker-style deployment's): used where no token price is.
_SECOND_KEYS = ("input_cost_per_second", "output_cost_per_second")

#: Keys that price a call; a deployment's ``litellm_params``/``model_info`` may set any of them.
PRICE_KEYS = frozenset(
    {*_TIERED_KEYS, "output_cost_per_reasoning_token", *(key + suffix for key in _TIERED_KEYS for _, suffix in _TIERS),
     *_SECOND_KEYS}
)

#: Defaults of the capability flags in :func:`get_model_info` (LiteLLM's keys).
_FLAGS = (
    "supports_function_calling",
    "supports_parallel_function_calling",
    "supports_tool_choice",
    "supports_vision",
    "supports_reasoning",
    "supports_response_schema",
    "supports_prompt_caching",
    "supports_system_messages",
    "supports_pdf_input",
    "supports_audio_input",
    "supports_audio_output",
    "supports_web_search",
)

#: Bedrock cross-region inference profiles ("us.anthropic.claude-…") bill like the base model.
_REGION_PREFIX = re.compile(r"^(?:us|eu|apac|us-gov|global|jp|au|ca)\.")
#: A release date at the end of a model name (or before Bedrock's version): -2024-08-06, -20241022, @20241022.
_DATE_SUFFIX = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8})(?=$|-v\d)")


class ModelNotMappedError(LLMRelayError, ValueError):
    """The model is not in the price table (and no per-call prices were given)."""


# ============================================================================ the table
_lock = threading.Lock()
_table: dict[str, dict[str, Any]] | None = None
_meta: dict[str, Any] = {}
_families: dict[str, str] = {}  # provider -> provider whose prices it shares
_free: frozenset[str] = frozenset()
_routers: frozenset[str] = frozenset()
_resolved: dict[tuple[str, str | None], tuple[str, dict[str, Any]]] = {}
_unknown: dict[tuple[str, str | None], int] = {}  # misses, with the table size they were looked up at


def _load() -> dict[str, dict[str, Any]]:
    global _table, _meta, _families, _free, _routers
    with _lock:
        if _table is None:
            import orjson

            data = orjson.loads(_DATA.read_bytes())
            _meta = data["_meta"]
            _families = data["provider_families"]
            _free = frozenset(data["self_hosted_providers"])
            _routers = frozenset(data["router_providers"])
            _table = data["models"]
    return _table


def _models() -> dict[str, dict[str, Any]]:
    table = _table
    return table if table is not None else _load()


def __getattr__(name: str) -> Any:  # PEP 562: the table loads when first asked for
    if name == "model_cost":
        return _models()
    if name == "model_cost_meta":
        _models()
        return _meta
    if name in _MODEL_LISTS:
        return _model_list(name)
    raise AttributeError(f"module 'llmrelay.cost' has no attribute {name!r}")


#: LiteLLM's module-level model lists, computed from the table when asked for:
#: name → (litellm_provider or None for all, mode or None for all).
_MODEL_LISTS: dict[str, tuple[str | None, str | None]] = {
    "model_list": (None, None),
    "open_ai_chat_completion_models": ("openai", "chat"),
    "open_ai_embedding_models": ("openai", "embedding"),
    "open_ai_text_completion_models": ("openai", "completion"),
    "anthropic_models": ("anthropic", None),
    "cohere_models": ("cohere", None),
    "gemini_models": ("gemini", None),
    "mistral_chat_models": ("mistral", "chat"),
    "groq_models": ("groq", None),
    "bedrock_models": ("bedrock", None),
    "models_by_provider": (None, None),
}


def _model_list(name: str) -> Any:
    """``model_list`` (every model name), ``open_ai_chat_completion_models``… (a set per provider,
    as LiteLLM's), ``models_by_provider`` (provider → set of names), from the current table."""
    table = _models()
    if name == "models_by_provider":
        out: dict[str, set[str]] = {}
        for model, entry in table.items():
            out.setdefault(str(entry.get("litellm_provider")), set()).add(model)
        return out
    provider, mode = _MODEL_LISTS[name]
    names = [m for m, e in table.items() if (provider is None or e.get("litellm_provider") == provider)
             and (mode is None or e.get("mode") == mode)]
    return names if name == "model_list" else set(names)


def register_model(model_cost: Mapping[str, Mapping[str, Any]] | str) -> dict[str, dict[str, Any]]:
    """Add models to the table, or change the given keys of models already in it.

    ``model_cost`` maps a model name (``"openai/my-finetune"``, ``"my-model"``) to LiteLLM's keys
    (``input_cost_per_token``, ``output_cost_per_token``, ``litellm_provider``,
    ``max_input_tokens``, ``supports_function_calling``…). A path to a JSON file of that shape
    is accepted too. Returns the table.
    """
    if isinstance(model_cost, str):
        model_cost = json.loads(Path(model_cost).read_text(encoding="utf-8"))
    if not isinstance(model_cost, Mapping):
        raise TypeError(f"register_model takes a dict of model name -> facts, got {type(model_cost).__name__}")
    table = _models()
    with _lock:
        for name, facts in model_cost.items():
            if not isinstance(facts, Mapping):
                raise TypeError(f"register_model: the facts for {name!r} must be a dict")
            entry = table.get(name)
            if entry is None:
                entry = table[name] = {}
                head, sep, _ = name.partition("/")
                if sep and "litellm_provider" not in facts:
                    entry["litellm_provider"] = head
            entry.update(facts)
        _resolved.clear()
        _unknown.clear()
    return table


# ============================================================================ lookup
def _split(model: str, provider: str | None) -> tuple[str | None, str]:
    """(provider or None, model name without the provider prefix)."""
    if provider:
        prefix = provider + "/"
        return provider, model[len(prefix):] if model.startswith(prefix) else model
    from .providers.registry import resolve

    try:
        return resolve(model)
    except LLMRelayError:
        return None, model


def _variants(name: str) -> Iterable[str]:
    yield name
    if name.startswith("ft:") and name.count(":") > 1:
        # an OpenAI fine-tune (ft:gpt-4o-mini-2024-07-18:org:suffix:id) is billed at its base
        # model's fine-tuned prices ("ft:gpt-4o-mini" in the table), as LiteLLM prices it
        yield from _variants(name[: name.index(":", 3)])
        return
    short = name.removeprefix("accounts/fireworks/models/")
    short = _REGION_PREFIX.sub("", short)
    if short.startswith("gpt-35-"):  # Azure's name for gpt-3.5-* (azure/gpt-35-turbo)
        short = "gpt-3.5-" + short[7:]
    if short != name:
        yield short
    undated = _DATE_SUFFIX.sub("", short)
    if undated != short:
        yield undated


def _family_ok(entry: Mapping[str, Any], provider: str | None) -> bool:
    if provider is None:
        return True
    owner = entry.get("litellm_provider")
    return owner is None or owner == provider or owner == _families.get(provider)


def _lookup(model: str, provider: str | None) -> tuple[str, dict[str, Any]] | None:
    table = _table if _table is not None else _load()
    cache_key = (model, provider)
    hit = _resolved.get(cache_key)
    if hit is not None:
        return hit
    if _unknown.get(cache_key) == len(table):  # not found, and no model added since
        return None
    found = _search(table, model, provider)
    if found is not None:
        _resolved[cache_key] = found
    elif len(_unknown) < 10_000:
        _unknown[cache_key] = len(table)
    return found


def _search(table: dict[str, dict[str, Any]], model: str, provider: str | None) -> tuple[str, dict[str, Any]] | None:
    entry = table.get(model)
    if entry is not None and (provider is None or "/" in model or _family_ok(entry, provider)):
        return model, entry
    provider, name = _split(model, provider)
    family = _families.get(provider) if provider else None
    for variant in _variants(name):
        for owner in (provider, family):
            if owner:
                key = f"{owner}/{variant}"
                if key in table:
                    return key, table[key]
        entry = table.get(variant)
        if entry is not None and _family_ok(entry, provider):
            return variant, entry
    if provider in _routers and "/" in name:
        # A router (openrouter/openai/gpt-4o) bills what the model's own provider does.
        return _lookup(name, None)
    if provider is None:
        # A bare name from a response body ("gemini-2.5-pro"): any provider's entry for it.
        for variant in _variants(name):
            for key, entry in table.items():
                if key.endswith("/" + variant) and key.count("/") == 1:
                    return key, entry
    return None


def _find(model: str, custom_llm_provider: str | None) -> tuple[str, dict[str, Any]]:
    found = _lookup(model, custom_llm_provider) if isinstance(model, str) and model else None
    if found is None:
        raise ModelNotMappedError(  # LiteLLM's first sentence, which callers match on
            f"This model isn't mapped yet. model={model}, custom_llm_provider={custom_llm_provider}. "
            "It is not in llmrelay's price table: register it with llmrelay.register_model({name: "
            "{'input_cost_per_token': …, 'output_cost_per_token': …, 'litellm_provider': …}}) or give "
            "per-deployment prices."
        )
    return found


def _is_free(model: str, provider: str | None) -> bool:
    _models()
    if provider is None:
        provider = model.partition("/")[0] if "/" in model else None
    return provider in _free


# ============================================================================ model facts
def get_model_info(model: str, custom_llm_provider: str | None = None) -> dict[str, Any]:
    """LiteLLM's model info: prices, ``max_input_tokens``/``max_output_tokens``/``max_tokens``,
    ``mode``, ``litellm_provider`` and the ``supports_*`` flags (False when not known).

    Raises :class:`ModelNotMappedError` (a ``ValueError``) for a model not in the table.
    """
    key, entry = _find(model, custom_llm_provider)
    info: dict[str, Any] = dict.fromkeys(_FLAGS, False)
    info.update(
        key=key,
        max_tokens=None,
        max_input_tokens=None,
        max_output_tokens=None,
        input_cost_per_token=0.0,
        output_cost_per_token=0.0,
        cache_read_input_token_cost=None,
        cache_creation_input_token_cost=None,
        output_cost_per_reasoning_token=None,
        mode="chat",
    )
    info.update(entry)
    provider = _split(model, custom_llm_provider)[0]
    if provider and provider != entry.get("litellm_provider"):  # azure/ on OpenAI's prices, vertex_ai/…
        info["litellm_provider"] = provider
    return info


def _flag(model: str, custom_llm_provider: str | None, flag: str) -> bool:
    try:
        _, entry = _find(model, custom_llm_provider)
    except (ModelNotMappedError, TypeError):
        return False
    return bool(entry.get(flag))


def supports_function_calling(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model takes ``tools`` (False for models not in the table)."""
    return _flag(model, custom_llm_provider, "supports_function_calling")


def supports_parallel_function_calling(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model may call several tools in one turn."""
    return _flag(model, custom_llm_provider, "supports_parallel_function_calling")


def supports_tool_choice(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model honours ``tool_choice``."""
    return _flag(model, custom_llm_provider, "supports_tool_choice")


def supports_vision(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model takes images."""
    return _flag(model, custom_llm_provider, "supports_vision")


def supports_reasoning(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model reasons before answering (``reasoning_effort`` / thinking)."""
    return _flag(model, custom_llm_provider, "supports_reasoning")


def supports_response_schema(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model takes ``response_format={"type": "json_schema", …}``."""
    return _flag(model, custom_llm_provider, "supports_response_schema")


def supports_prompt_caching(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the provider caches prompt prefixes for this model (cheaper cached input)."""
    return _flag(model, custom_llm_provider, "supports_prompt_caching")


def supports_system_messages(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model takes ``system`` messages."""
    return _flag(model, custom_llm_provider, "supports_system_messages")


def supports_audio_input(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model takes audio in its messages (``input_audio`` parts)."""
    return _flag(model, custom_llm_provider, "supports_audio_input")


def supports_pdf_input(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model takes PDF documents in its messages (``file`` parts)."""
    return _flag(model, custom_llm_provider, "supports_pdf_input")


def supports_web_search(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model can search the web itself (``web_search_options``)."""
    return _flag(model, custom_llm_provider, "supports_web_search")


def supports_audio_output(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model can answer in audio (``modalities=["audio"]``)."""
    return _flag(model, custom_llm_provider, "supports_audio_output")


def supports_computer_use(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model has a computer-use tool."""
    return _flag(model, custom_llm_provider, "supports_computer_use")


def supports_url_context(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model can read URLs given in the prompt itself."""
    return _flag(model, custom_llm_provider, "supports_url_context")


def supports_embedding_image_input(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the embedding model takes images."""
    return _flag(model, custom_llm_provider, "supports_embedding_image_input")


def supports_native_streaming(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the provider streams the model's answer itself (True unless the table says
    ``supports_native_streaming: false``; a model not in the table: True, as LiteLLM)."""
    try:
        _, entry = _find(model, custom_llm_provider)
    except (ModelNotMappedError, ValueError, TypeError):
        return True
    return entry.get("supports_native_streaming") is not False


def get_model_cost_map(url: str | None = None) -> dict[str, dict[str, Any]]:
    """LiteLLM's ``get_model_cost_map(url)``: the price table. llmrelay's is the one it ships
    (never fetched; ``url`` is accepted and ignored): the live table, so
    ``llmrelay.model_cost = llmrelay.get_model_cost_map(url="")`` keeps lookups and the
    attribute the same object."""
    return _models()


def get_max_tokens(model: str, custom_llm_provider: str | None = None) -> int | None:
    """The most tokens the model can generate (``max_output_tokens``, else ``max_tokens``).

    Raises :class:`ModelNotMappedError` for a model not in the table, as LiteLLM does.
    """
    _, entry = _find(model, custom_llm_provider)
    return entry.get("max_output_tokens") or entry.get("max_tokens")


# ============================================================================ prices
def deployment_prices(*sources: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The price keys (and ``base_model``) set in a deployment's ``litellm_params`` and
    ``model_info``, later sources winning; None when there are none (the table applies)."""
    prices: dict[str, Any] = {}
    for source in sources:
        if not source:
            continue
        for key, value in source.items():
            if value is not None and (key in PRICE_KEYS or key == "base_model"):
                prices[key] = value
    return prices or None


def _num(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, (int, float)):
        return int(value)
    return int(float(value))


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if type(obj) is dict or isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _tokens(usage: Any) -> tuple[int, int, int, int, int]:
    """(prompt, completion, cache read, cache write, reasoning) from an OpenAI-shaped usage."""
    # (our Usage is no Mapping: asked first, it spares the ABC's isinstance check)
    if type(usage) is not dict and (isinstance(usage, OpenAIObject) or not isinstance(usage, Mapping)):
        # a Usage object: its fields (absent ones read as None below)
        fields = getattr(usage, "__dict__", None)
        usage = fields if fields is not None else {key: getattr(usage, key, None) for key in _USAGE_FIELDS}
    get = usage.get
    prompt = get("prompt_tokens")
    completion = get("completion_tokens")
    details = get("prompt_tokens_details")
    read = get("cache_read_input_tokens")
    write = get("cache_creation_input_tokens")
    if details is not None:
        if read is None:
            read = _get(details, "cached_tokens")
        if write is None:
            write = _get(details, "cache_creation_tokens")
    details = get("completion_tokens_details")
    reasoning = _get(details, "reasoning_tokens") if details is not None else None
    # (plain ints, the common case, are taken as they are: _num(n) is n)
    return (prompt if type(prompt) is int else _num(prompt), completion if type(completion) is int else _num(completion),
            0 if read is None else _num(read), 0 if write is None else _num(write),
            0 if reasoning is None else _num(reasoning))


_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details",
                 "cache_read_input_tokens", "cache_creation_input_tokens")
#: Per tier: its threshold and the names of its four rate keys (built once, not per call).
_TIER_NAMES = tuple((threshold, tuple(key + suffix for key in _TIERED_KEYS)) for threshold, suffix in _TIERS)
_SMALLEST_TIER = min(threshold for threshold, _ in _TIERS)


def _split_cost(
    prices: Mapping[str, Any], prompt: int, completion: int, read: int = 0, write: int = 0, reasoning: int = 0
) -> tuple[float, float]:
    """(prompt cost, completion cost) in USD."""
    if not (read or write or reasoning) and 0 <= prompt <= _SMALLEST_TIER:
        # no cached, cache-write or reasoning tokens, no long-context tier: what the rest computes
        get = prices.get
        return (prompt * float(get("input_cost_per_token") or 0.0),
                completion * float(get("output_cost_per_token") or 0.0))
    names = _TIERED_KEYS
    if prompt > _SMALLEST_TIER:
        for threshold, tier_names in _TIER_NAMES:
            if prompt > threshold and tier_names[0] in prices:
                names = tier_names
                break
    get = prices.get
    input_rate = float(get(names[0], get("input_cost_per_token")) or 0.0)
    output_rate = float(get(names[1], get("output_cost_per_token")) or 0.0)
    read_rate = get(names[2], get("cache_read_input_token_cost"))
    write_rate = get(names[3], get("cache_creation_input_token_cost"))
    read = min(read, prompt)
    write = min(write, prompt - read)
    prompt_cost = (prompt - read - write) * input_rate
    if read:
        prompt_cost += read * (input_rate if read_rate is None else float(read_rate))
    if write:
        prompt_cost += write * (input_rate if write_rate is None else float(write_rate))
    reasoning_rate = get("output_cost_per_reasoning_token")
    if reasoning and reasoning_rate is not None:
        reasoning = min(reasoning, completion)
        completion_cost = (completion - reasoning) * output_rate + reasoning * float(reasoning_rate)
    else:
        completion_cost = completion * output_rate
    return prompt_cost, completion_cost


def _prices_for(model: str, provider: str | None, overrides: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The price keys for a call: the table's entry under the deployment's overrides."""
    base = model
    if overrides and overrides.get("base_model"):
        base = overrides["base_model"]
    found = _lookup(base, provider) if base else None
    if found is None and overrides and base != model:
        found = _lookup(model, provider)
    if found is None:
        if overrides and ("input_cost_per_token" in overrides or "output_cost_per_token" in overrides
                          or "input_cost_per_second" in overrides or "output_cost_per_second" in overrides):
            return overrides
        if model and _is_free(model, provider):
            return {}
        return None
    entry = found[1]
    return {**entry, **overrides} if overrides else entry


def _timed(rates: Mapping[str, Any], prompt_cost: float, completion_cost: float,
           seconds: float | None) -> tuple[float, float]:
    """(prompt cost, completion cost) with the per-second prices (``input_cost_per_second``,
    ``output_cost_per_second``) where there is no token price: ``seconds`` × the rate."""
    if seconds is not None:
        get = rates.get
        rate = get("input_cost_per_second")
        if rate is not None and not get("input_cost_per_token"):
            prompt_cost = float(rate) * seconds
        rate = get("output_cost_per_second")
        if rate is not None and not get("output_cost_per_token"):
            completion_cost = float(rate) * seconds
    return prompt_cost, completion_cost


def usage_cost(
    model: str,
    usage: Any,
    custom_llm_provider: str | None = None,
    prices: Mapping[str, Any] | None = None,
    default: float | None = 0.0,
) -> float | None:
    """USD for one call: the gateway's and the spend tracker's entry point (no I/O, ~µs).

    ``model`` is ``"provider/model"`` or the provider's model name with ``custom_llm_provider``;
    ``usage`` is the OpenAI-shaped usage (object or dict); ``prices`` are the deployment's
    overrides (:func:`deployment_prices`). A model that is not priced costs ``default``.
    """
    rates = _prices_for(model, custom_llm_provider, prices)
    if rates is None or usage is None:
        return default
    prompt_cost, completion_cost = _split_cost(rates, *_tokens(usage))
    return prompt_cost + completion_cost


def cost_per_token(
    model: str = "",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    custom_llm_provider: str | None = None,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    usage_object: Any = None,
    custom_cost_per_token: Mapping[str, Any] | None = None,
    response_time_ms: float | None = None,
    custom_cost_per_second: float | None = None,
    **_: Any,
) -> tuple[float, float]:
    """``(prompt cost, completion cost)`` in USD, as LiteLLM's ``cost_per_token``.

    ``prompt_tokens`` includes the cached ones; ``usage_object`` (a ``Usage``) takes the place
    of the counts and also brings reasoning tokens. ``custom_cost_per_second`` (USD per second,
    without ``custom_cost_per_token``) prices the call's ``response_time_ms`` instead, as its
    completion cost; per-second prices of the model (``input_cost_per_second``…) apply to
    ``response_time_ms`` where it has no token price. Raises :class:`ModelNotMappedError`.
    """
    if custom_cost_per_second is not None and custom_cost_per_token is None:
        return 0.0, float(custom_cost_per_second) * float(response_time_ms or 0.0) / 1000.0
    rates = _prices_for(model, custom_llm_provider, custom_cost_per_token)
    if rates is None:
        _find(model, custom_llm_provider)  # raises the explanatory error
    if usage_object is not None:
        costs = _split_cost(rates, *_tokens(usage_object))
    else:
        costs = _split_cost(rates, _num(prompt_tokens), _num(completion_tokens), _num(cache_read_input_tokens),
                            _num(cache_creation_input_tokens))
    if response_time_ms is None:
        return costs
    return _timed(rates, *costs, float(response_time_ms) / 1000.0)


def completion_cost(
    completion_response: Any = None,
    model: str | None = None,
    prompt: str = "",
    messages: list[dict[str, Any]] | None = None,
    completion: str = "",
    custom_llm_provider: str | None = None,
    custom_cost_per_token: Mapping[str, Any] | None = None,
    total_time: float | None = 0.0,
    custom_cost_per_second: float | None = None,
    base_model: str | None = None,
    **_: Any,
) -> float:
    """USD for a call, from its response (a ``ModelResponse``, also a
    ``stream_chunk_builder`` result, or a dict) or from ``model`` + ``prompt``/``messages`` +
    ``completion`` text (counted offline). Raises :class:`ModelNotMappedError`.

    ``custom_cost_per_second`` (USD per second) prices the call's duration instead of its
    tokens, as do a model's per-second prices: the response's ``_response_ms``, else
    ``total_time`` (milliseconds, as LiteLLM passes it on). ``base_model`` (an Azure
    deployment's real model) is priced instead of ``model``."""
    if base_model:
        model = base_model
    if completion_response is not None:
        hidden = getattr(completion_response, "_hidden_params", None) or {}
        if (model is None and custom_llm_provider is None and custom_cost_per_token is None
                and custom_cost_per_second is None):
            # priced when it was made, with its deployment's prices
            priced = hidden.get("response_cost")
            if priced is not None:
                return float(priced)
        if model is None:
            model = hidden.get("model") or _get(completion_response, "model")
            if custom_llm_provider is None:
                custom_llm_provider = hidden.get("custom_llm_provider")
        took = getattr(completion_response, "_response_ms", None)
        if took is None:
            took = total_time or None
        usage = _get(completion_response, "usage")
        if usage is None:
            from .tokens import completion_text, counted_usage

            choices = _get(completion_response, "choices") or []
            usage = counted_usage(model, messages, completion_text(_get(c, "message") or {} for c in choices))
        try:
            prompt_cost, completion_cost_ = cost_per_token(
                model or "", usage_object=usage, custom_llm_provider=custom_llm_provider,
                custom_cost_per_token=custom_cost_per_token, response_time_ms=took,
                custom_cost_per_second=custom_cost_per_second,
            )
        except ModelNotMappedError:
            # model= named something unpriced (an Azure deployment's own name): price the model
            # the response says answered, as LiteLLM does
            answered = hidden.get("model") or _get(completion_response, "model")
            if not answered or answered == model:
                raise
            prompt_cost, completion_cost_ = cost_per_token(
                answered, usage_object=usage, custom_cost_per_token=custom_cost_per_token, response_time_ms=took,
            )
        return prompt_cost + completion_cost_
    if not model:
        raise ModelNotMappedError("completion_cost needs completion_response= or model=")
    from .tokens import token_counter

    if messages:
        prompt_tokens = token_counter(model=model, messages=messages)
    else:
        prompt_tokens = token_counter(model=model, text=prompt) if prompt else 0
    completion_tokens = token_counter(model=model, text=completion) if completion else 0
    prompt_cost, completion_cost_ = cost_per_token(
        model, prompt_tokens, completion_tokens, custom_llm_provider=custom_llm_provider,
        custom_cost_per_token=custom_cost_per_token, response_time_ms=total_time or None,
        custom_cost_per_second=custom_cost_per_second,
    )
    return prompt_cost + completion_cost_


def response_cost_calculator(
    response_object: Any,
    model: str | None,
    custom_llm_provider: str | None = None,
    call_type: str = "completion",
    optional_params: Mapping[str, Any] | None = None,
    cache_hit: bool | None = None,
    base_model: str | None = None,
    custom_pricing: bool | None = None,
    prompt: str = "",
    **_: Any,
) -> float:
    """LiteLLM's ``response_cost_calculator``: what a response cost (0.0 for a cache hit), by
    :func:`completion_cost` on ``base_model`` or ``model``."""
    if cache_hit:
        return 0.0
    return completion_cost(completion_response=response_object, model=base_model or model,
                           custom_llm_provider=custom_llm_provider, prompt=prompt)


# ============================================================================ on responses
def call_prices(extra: Mapping[str, Any]) -> dict[str, Any] | None:
    """Per-call prices among ``completion()``'s extra keyword arguments (and ``model_info``)."""
    if not extra:
        return None
    info = extra.get("model_info")
    return deployment_prices(info if isinstance(info, Mapping) else None, extra)


def response_cost(model: str, provider: str | None, usage: Any, prices: Mapping[str, Any] | None,
                  seconds: float | None = None) -> float | None:
    """``_hidden_params["response_cost"]``: USD, or None when the model is not priced.
    ``seconds``: how long the call took (for per-second prices)."""
    try:  # usage_cost(model, usage, provider, prices, default=None), one call less (once per call)
        rates = _prices_for(model, provider, prices)
        if rates is None or usage is None:
            return None
        prompt_cost, completion_cost = _split_cost(rates, *_tokens(usage))
        if seconds is not None and ("input_cost_per_second" in rates or "output_cost_per_second" in rates):
            prompt_cost, completion_cost = _timed(rates, prompt_cost, completion_cost, seconds)
        return prompt_cost + completion_cost
    except (TypeError, ValueError):
        log.debug("cannot price %s/%s", provider, model, exc_info=True)
        return None


def tokens_cost(model: str, provider: str | None, prompt: int, completion: int, prices: Mapping[str, Any] | None,
                seconds: float | None = None) -> float | None:
    """:func:`response_cost` of a usage that is ``prompt`` and ``completion`` tokens alone (no
    cached, cache-write or reasoning tokens: a stream's usage counted offline), without reading
    them out of a usage object."""
    try:
        rates = _prices_for(model, provider, prices)
        if rates is None:
            return None
        prompt_cost, completion_cost = _split_cost(rates, prompt, completion)
        if seconds is not None and ("input_cost_per_second" in rates or "output_cost_per_second" in rates):
            prompt_cost, completion_cost = _timed(rates, prompt_cost, completion_cost, seconds)
        return prompt_cost + completion_cost
    except (TypeError, ValueError):
        log.debug("cannot price %s/%s", provider, model, exc_info=True)
        return None


def apply_deployment_prices(
    result: Any, litellm_params: Mapping[str, Any] | None, model_info: Mapping[str, Any] | None
) -> None:
    """Price a router's result with its deployment's overrides (``litellm_params`` and
    ``model_info``): a response's ``response_cost`` is recomputed, a stream's is priced with
    them when read. Nothing happens for a deployment without prices."""
    prices = deployment_prices(model_info, litellm_params)
    if prices is not None:
        apply_prices(result, prices)


def apply_prices(result: Any, prices: Mapping[str, Any]) -> None:
    """:func:`apply_deployment_prices` with the deployment's prices already worked out."""
    hidden = getattr(result, "_hidden_params", None)
    if hidden is None:
        return
    if hasattr(hidden, "prices"):  # a stream: priced lazily at its end
        hidden.prices = prices
        return
    model = hidden.get("model") or _get(result, "model")
    if model:
        took = getattr(result, "_response_ms", None)
        hidden["response_cost"] = response_cost(model, hidden.get("custom_llm_provider"), _get(result, "usage"), prices,
                                                took / 1000.0 if took is not None else None)
