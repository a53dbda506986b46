"""Model prefix → provider, as a table.

``"anthropic/claude-…"`` resolves through :data:`PROVIDERS` (a prefix → ``"module:Class"``
string, imported on first use so ``import llmrelay`` stays light). Adding a provider adds one
line here and one module. Bare model names (``gpt-4o-mini``) resolve through
:data:`BARE_MODEL_PREFIXES`.
"""

from __future__ import annotations

import importlib
import threading

from ..exceptions import BadRequestError
from .base import Provider

__all__ = ["PROVIDERS", "resolve", "get_provider", "known_prefixes", "register", "get_supported_openai_params"]

#: prefix → "module:attribute" of a Provider class (or a factory taking the prefix).
PROVIDERS: dict[str, str] = {
    "openai": "llmrelay.providers.openai:OpenAIProvider",
    "text-completion-openai": "llmrelay.providers.openai:OpenAIProvider",
    "anthropic": "llmrelay.providers.anthropic:AnthropicProvider",
    "azure": "llmrelay.providers.azure:AzureProvider",
    "gemini": "llmrelay.providers.gemini:GeminiProvider",
    "vertex_ai": "llmrelay.providers.gemini:VertexProvider",
    "hosted_vllm": "llmrelay.providers.openai_compatible:make_provider",
    "local": "llmrelay.providers.local:make_provider",
    "ollama": "llmrelay.providers.ollama:make_provider",
    "ollama_chat": "llmrelay.providers.ollama:make_provider",
    "bedrock": "llmrelay.providers.bedrock:make_provider",
    "cohere": "llmrelay.providers.cohere:make_provider",
    "cohere_chat": "llmrelay.providers.cohere:make_provider",
    "groq": "llmrelay.providers.openai_compatible:make_provider",
    "deepseek": "llmrelay.providers.openai_compatible:make_provider",
    "mistral": "llmrelay.providers.openai_compatible:make_provider",
    "together_ai": "llmrelay.providers.openai_compatible:make_provider",
    "fireworks_ai": "llmrelay.providers.openai_compatible:make_provider",
    "openrouter": "llmrelay.providers.openai_compatible:make_provider",
    "xai": "llmrelay.providers.openai_compatible:make_provider",
    "perplexity": "llmrelay.providers.openai_compatible:make_provider",
    "cerebras": "llmrelay.providers.openai_compatible:make_provider",
    "deepinfra": "llmrelay.providers.openai_compatible:make_provider",
    "lm_studio": "llmrelay.providers.openai_compatible:make_provider",
    "llamacpp": "llmrelay.providers.openai_compatible:make_provider",
    "nvidia_nim": "llmrelay.providers.openai_compatible:make_provider",
    "huggingface": "llmrelay.providers.openai_compatible:make_provider",
    "github": "llmrelay.providers.openai_compatible:make_provider",
    "cloudflare": "llmrelay.providers.openai_compatible:make_provider",
    "minimax": "llmrelay.providers.openai_compatible:make_provider",
    "sambanova": "llmrelay.providers.openai_compatible:make_provider",
    "nebius": "llmrelay.providers.openai_compatible:make_provider",
    "novita": "llmrelay.providers.openai_compatible:make_provider",
    "dashscope": "llmrelay.providers.openai_compatible:make_provider",
    "moonshot": "llmrelay.providers.openai_compatible:make_provider",
    "vllm": "llmrelay.providers.openai_compatible:make_provider",
    "openai_like": "llmrelay.providers.openai_compatible:make_provider",
    "custom_openai": "llmrelay.providers.openai_compatible:make_provider",
    "llamafile": "llmrelay.providers.openai_compatible:make_provider",
    "litellm_proxy": "llmrelay.providers.openai_compatible:make_provider",
    "databricks": "llmrelay.providers.openai_compatible:make_provider",
    "azure_ai": "llmrelay.providers.azure_ai:make_provider",
    "codestral": "llmrelay.providers.openai_compatible:make_provider",
    "hyperbolic": "llmrelay.providers.openai_compatible:make_provider",
    "lambda_ai": "llmrelay.providers.openai_compatible:make_provider",
    "meta_llama": "llmrelay.providers.openai_compatible:make_provider",
    "nscale": "llmrelay.providers.openai_compatible:make_provider",
    "friendliai": "llmrelay.providers.openai_compatible:make_provider",
    "featherless_ai": "llmrelay.providers.openai_compatible:make_provider",
    "volcengine": "llmrelay.providers.openai_compatible:make_provider",
}

#: Beginnings of bare model names and the provider they belong to, as LiteLLM resolves them
#: (documented in docs/proxy.md, "Moving from LiteLLM"). ``gemini-…`` goes to Vertex AI, as in
#: LiteLLM; write ``gemini/gemini-…`` for Google AI Studio.
BARE_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("ft:gpt", "openai"),
    ("davinci", "openai"),
    ("babbage", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "vertex_ai"),
    ("command-", "cohere_chat"),
    ("command", "cohere_chat"),
    ("mistral-", "mistral"),
    ("open-mistral-", "mistral"),
    ("open-mixtral-", "mistral"),
    ("codestral-", "mistral"),
    ("ministral-", "mistral"),
    ("magistral-", "mistral"),
    ("pixtral-", "mistral"),
    ("devstral-", "mistral"),
    ("deepseek-chat", "deepseek"),
    ("deepseek-reasoner", "deepseek"),
    ("grok-", "xai"),
    # OpenAI's other models (LiteLLM resolves embeddings, images, audio and moderation names too)
    ("text-embedding-", "openai"),
    ("dall-e-", "openai"),
    ("gpt-image-", "openai"),
    ("whisper-", "openai"),
    ("tts-", "openai"),
    ("omni-moderation-", "openai"),
    ("text-moderation-", "openai"),
    # Bedrock model ids (LiteLLM's bedrock_models): the vendor's name then a dot, possibly
    # behind a cross-region inference profile ("us.", "eu.", "apac.", "global.").
    *((f"{region}{vendor}.", "bedrock")
      for region in ("", "us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")
      for vendor in ("anthropic", "amazon", "meta", "cohere", "ai21", "mistral", "deepseek", "writer", "qwen",
                     "openai", "twelvelabs", "stability")),
)

_cache: dict[str, Provider] = {}
_lock = threading.Lock()


def register(prefix: str, target: str) -> None:
    """Add (or replace) a provider at run time; ``target`` is ``"module:factory"`` as in
    :data:`PROVIDERS` (the factory is called with the prefix)."""
    with _lock:
        PROVIDERS[prefix] = target
        _cache.pop(prefix, None)


def known_prefixes() -> list[str]:
    return sorted(PROVIDERS)


def get_provider(prefix: str) -> Provider:
    """The provider for a prefix (instantiated once per process)."""
    provider = _cache.get(prefix)
    if provider is not None:
        return provider
    target = PROVIDERS.get(prefix)
    if target is None:
        raise BadRequestError(
            f"Unknown provider {prefix!r}. Known provider prefixes: {', '.join(known_prefixes())}."
        )
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    with _lock:
        provider = _cache.get(prefix)
        if provider is None:
            provider = _cache[prefix] = factory(prefix)
    return provider


def resolve(model: str, custom_llm_provider: str | None = None) -> tuple[str, str]:
    """``(provider prefix, model name for the provider)`` for a user's model string."""
    if not isinstance(model, str) or not model.strip():
        raise BadRequestError(f"model must be a non-empty string like 'openai/gpt-4o-mini', got {model!r}")
    if custom_llm_provider:
        if custom_llm_provider not in PROVIDERS:
            raise BadRequestError(
                f"Unknown custom_llm_provider {custom_llm_provider!r} for model {model!r}. "
                f"Known provider prefixes: {', '.join(known_prefixes())}."
            )
        prefix = custom_llm_provider + "/"
        return custom_llm_provider, model[len(prefix):] if model.startswith(prefix) else model
    head, sep, rest = model.partition("/")
    if sep and head in PROVIDERS:
        if not rest:
            raise BadRequestError(f"model {model!r} names the provider {head!r} but no model after the '/'.")
        return head, rest
    for start, provider in BARE_MODEL_PREFIXES:
        if model.startswith(start) and provider in PROVIDERS:
            return provider, model
    hint = (
        f"the prefix {head!r} is not a known provider"
        if sep
        else "a bare model name must be a known OpenAI model or carry a provider prefix"
    )
    raise BadRequestError(
        f"Cannot resolve the model {model!r}: {hint}. Write it as 'provider/model', with one of "
        f"the known provider prefixes: {', '.join(known_prefixes())}; or pass custom_llm_provider=.",
        model=model,
    )


def get_supported_openai_params(
    model: str, custom_llm_provider: str | None = None, request_type: str = "chat_completion"
) -> list[str] | None:
    """LiteLLM's ``get_supported_openai_params``: the OpenAI chat parameters llmrelay accepts for
    this model's provider (others raise ``UnsupportedParamsError`` or are dropped with
    ``drop_params``); None for a model of no known provider, or another ``request_type``."""
    if request_type != "chat_completion":
        return None
    try:
        prefix, _ = resolve(model, custom_llm_provider)
        provider = get_provider(prefix)
    except BadRequestError:
        return None
    params = provider.supported_params
    if params is None:
        from .base import OPENAI_PARAMS

        params = OPENAI_PARAMS
    return sorted(params)

