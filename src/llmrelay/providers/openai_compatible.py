"""OpenAI-compatible hosts as a table: default api_base, API-key variable, parameter limits.

Every host speaks OpenAI's chat-completions wire format, so one provider class serves them all;
a row of :data:`HOSTS` is everything that differs. ``api_base`` means what it means for
``openai/``: the URL ``/chat/completions`` is appended to (LiteLLM's meaning for these prefixes).

Parameter limits come from each host's OpenAI-compatibility documentation. A parameter a host
rejects raises ``UnsupportedParamsError`` unless ``drop_params`` is on (then it is dropped);
parameters a host spells differently are renamed. Limits that depend on the model (reasoning
models refusing ``temperature`` and the like) are left to the host's own error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import AuthenticationError, UnsupportedParamsError
from .base import OPENAI_PARAMS, Call
from .. import settings
from .common import first_env, require_key
from .openai import OpenAIProvider

__all__ = ["Host", "HOSTS", "HostProvider", "make_provider"]

log = logging.getLogger("llmrelay")


@dataclass(frozen=True)
class Host:
    api_base: str | None  # None: the user must give one (a self-hosted server)
    api_key_env: tuple[str, ...] = ()
    api_base_env: tuple[str, ...] = ()
    requires_key: bool = False
    #: Parameters the host rejects (the rest of OPENAI_PARAMS is forwarded).
    unsupported_params: frozenset[str] = frozenset()
    #: Or: the only parameters the host accepts (hosts that reject unknown fields).
    supported_params: frozenset[str] | None = None
    #: OpenAI name → the host's name for the same parameter.
    rename_params: dict[str, str] = field(default_factory=dict)
    #: Prepended to model names that have no "/" (Fireworks' "accounts/fireworks/models/").
    model_prefix: str = ""
    #: The host accepts ``n`` only when it is 1.
    single_choice: bool = False


def _only(*names: str) -> frozenset[str]:
    return frozenset(names) | {"stream_options"}


HOSTS: dict[str, Host] = {
    # console.groq.com/docs/openai: logprobs, logit_bias, top_logprobs are a 400; "If N is
    # supplied, it must be equal to 1" (messages[].name is also refused: not handled here).
    "groq": Host(
        "https://api.groq.com/openai/v1", ("GROQ_API_KEY",), ("GROQ_API_BASE",), True,
        unsupported_params=frozenset({"logprobs", "logit_bias", "top_logprobs"}),
        single_choice=True,
    ),
    # api-docs.deepseek.com (Create Chat Completion): base_url https://api.deepseek.com; the
    # documented body has max_tokens (no max_completion_tokens) and no n, logit_bias or seed,
    # which DeepSeek would ignore silently; refused here so the caller knows.
    "deepseek": Host(
        "https://api.deepseek.com", ("DEEPSEEK_API_KEY",), ("DEEPSEEK_API_BASE",), True,
        unsupported_params=frozenset({"logit_bias", "seed", "n"}),
        rename_params={"max_completion_tokens": "max_tokens"},
    ),
    # docs.mistral.ai (chat completions): extra fields are rejected; seed is random_seed.
    "mistral": Host(
        "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), ("MISTRAL_API_BASE",), True,
        supported_params=_only(
            "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "n",
            "presence_penalty", "frequency_penalty", "response_format", "tools", "tool_choice",
            "parallel_tool_calls", "prediction", "reasoning_effort",
        ),
        rename_params={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
    ),
    "together_ai": Host(
        "https://api.together.xyz/v1", ("TOGETHERAI_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHER_API_KEY"),
        ("TOGETHERAI_API_BASE", "TOGETHER_AI_API_BASE"), True,
    ),
    "fireworks_ai": Host(
        "https://api.fireworks.ai/inference/v1",
        ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"),
        ("FIREWORKS_API_BASE", "FIREWORKS_AI_API_BASE"), True,
        # docs.fireworks.ai/tools-sdks/openai-compatibility lists no refused parameter today
        # (only max_tokens being lowered to fit the context): nothing is filtered.
        model_prefix="accounts/fireworks/models/",
    ),
    "openrouter": Host(
        "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY", "OR_API_KEY"),
        ("OPENROUTER_API_BASE", "OR_API_BASE"), True,
    ),
    "xai": Host("https://api.x.ai/v1", ("XAI_API_KEY",), ("XAI_API_BASE",), True),
    # docs.perplexity.ai (OpenAI compatibility): base_url https://api.perplexity.ai; the standard
    # parameters it documents are these (plus response_format, web_search_options and
    # reasoning_effort); no tools, n, logprobs, logit_bias, seed, stop.
    "perplexity": Host(
        "https://api.perplexity.ai", ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
        ("PERPLEXITY_API_BASE",), True,
        supported_params=_only(
            "temperature", "top_p", "max_tokens", "max_completion_tokens", "presence_penalty",
            "frequency_penalty", "response_format", "web_search_options", "reasoning_effort",
        ),
        rename_params={"max_completion_tokens": "max_tokens"},
    ),
    # inference-docs.cerebras.ai (OpenAI compatibility): these fields are rejected with a 400.
    "cerebras": Host(
        "https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",), ("CEREBRAS_API_BASE",), True,
        unsupported_params=frozenset(
            {"frequency_penalty", "logit_bias", "presence_penalty", "parallel_tool_calls", "service_tier"}
        ),
    ),
    "deepinfra": Host(
        "https://api.deepinfra.com/v1/openai", ("DEEPINFRA_API_KEY",), ("DEEPINFRA_API_BASE",), True,
    ),
    # build.nvidia.com (NVIDIA NIM API catalog): OpenAI-compatible at integrate.api.nvidia.com/v1.
    "nvidia_nim": Host(
        "https://integrate.api.nvidia.com/v1", ("NVIDIA_NIM_API_KEY", "NVIDIA_API_KEY"),
        ("NVIDIA_NIM_API_BASE",), True,
    ),
    # huggingface.co/docs/inference-providers: the router's OpenAI-compatible chat endpoint.
    "huggingface": Host(
        "https://router.huggingface.co/v1", ("HF_TOKEN", "HUGGINGFACE_API_KEY", "HUGGINGFACEHUB_API_TOKEN"),
        ("HF_API_BASE", "HUGGINGFACE_API_BASE"), True,
    ),
    # docs.github.com (GitHub Models): models.github.ai/inference with a GitHub token.
    "github": Host(
        "https://models.github.ai/inference", ("GITHUB_API_KEY", "GITHUB_TOKEN"), ("GITHUB_API_BASE",), True,
    ),
    # developers.cloudflare.com/workers-ai/configuration/open-ai-compatibility: the base URL
    # carries the account id ({CLOUDFLARE_ACCOUNT_ID} is read from the environment).
    "cloudflare": Host(
        "https://api.cloudflare.com/client/v4/accounts/{CLOUDFLARE_ACCOUNT_ID}/ai/v1",
        ("CLOUDFLARE_API_KEY", "CLOUDFLARE_API_TOKEN"), ("CLOUDFLARE_API_BASE",), True,
    ),
    # platform.minimax.io (OpenAI-compatible API): api.minimax.io/v1.
    "minimax": Host("https://api.minimax.io/v1", ("MINIMAX_API_KEY",), ("MINIMAX_API_BASE",), True),
    # docs.sambanova.ai (OpenAI compatibility): api.sambanova.ai/v1.
    "sambanova": Host("https://api.sambanova.ai/v1", ("SAMBANOVA_API_KEY",), ("SAMBANOVA_API_BASE",), True),
    # Nebius Token Factory (formerly AI Studio): OpenAI-compatible at api.tokenfactory.nebius.com/v1.
    "nebius": Host(
        "https://api.tokenfactory.nebius.com/v1", ("NEBIUS_API_KEY",), ("NEBIUS_API_BASE",), True,
    ),
    # novita.ai/docs (LLM API): api.novita.ai/openai/v1.
    "novita": Host("https://api.novita.ai/openai/v1", ("NOVITA_API_KEY",), ("NOVITA_API_BASE",), True),
    # Alibaba Cloud Model Studio (DashScope) compatible mode, international endpoint.
    "dashscope": Host(
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", ("DASHSCOPE_API_KEY",),
        ("DASHSCOPE_API_BASE",), True,
    ),
    # platform.moonshot.ai (Kimi API): api.moonshot.ai/v1.
    "moonshot": Host("https://api.moonshot.ai/v1", ("MOONSHOT_API_KEY",), ("MOONSHOT_API_BASE",), True),
    # Self-hosted OpenAI-compatible servers: the config gives api_base (a key only if the server wants one).
    "vllm": Host(None, ("VLLM_API_KEY", "HOSTED_VLLM_API_KEY"), ("VLLM_API_BASE", "HOSTED_VLLM_API_BASE")),
    "openai_like": Host(None, ("OPENAI_LIKE_API_KEY",), ("OPENAI_LIKE_API_BASE",)),
    "custom_openai": Host(None, ("CUSTOM_OPENAI_API_KEY", "OPENAI_API_KEY"), ("CUSTOM_OPENAI_API_BASE",)),
    # Local servers: no key needed; LM Studio and llama.cpp's llama-server default ports.
    "lm_studio": Host("http://localhost:1234/v1", ("LM_STUDIO_API_KEY",), ("LM_STUDIO_API_BASE",)),
    "hosted_vllm": Host(None, ("HOSTED_VLLM_API_KEY",), ("HOSTED_VLLM_API_BASE",)),
    "llamacpp": Host("http://127.0.0.1:8080/v1", ("LLAMACPP_API_KEY",), ("LLAMACPP_API_BASE",)),
    # Mozilla's llamafile serves llama.cpp's OpenAI-compatible API on port 8080.
    "llamafile": Host("http://127.0.0.1:8080/v1", ("LLAMAFILE_API_KEY",), ("LLAMAFILE_API_BASE",)),
    # Another LiteLLM (or llmrelay) gateway: its api_base and, usually, a virtual key.
    "litellm_proxy": Host(None, ("LITELLM_PROXY_API_KEY",), ("LITELLM_PROXY_API_BASE",)),
    # docs.databricks.com (Foundation Model APIs, OpenAI client): base URL
    # https://<workspace>/serving-endpoints, the serving endpoint's name as the model, a PAT.
    "databricks": Host(None, ("DATABRICKS_API_KEY", "DATABRICKS_TOKEN"), ("DATABRICKS_API_BASE",)),
    # Hosted OpenAI-compatible APIs under LiteLLM's prefixes and key variables.
    # docs.mistral.ai (Codestral): its own endpoint and key, Mistral's chat parameters.
    "codestral": Host(
        "https://codestral.mistral.ai/v1", ("CODESTRAL_API_KEY",), ("CODESTRAL_API_BASE",), True,
        supported_params=_only(
            "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "n",
            "presence_penalty", "frequency_penalty", "response_format", "tools", "tool_choice",
            "parallel_tool_calls", "prediction",
        ),
        rename_params={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
    ),
    "hyperbolic": Host("https://api.hyperbolic.xyz/v1", ("HYPERBOLIC_API_KEY",), ("HYPERBOLIC_API_BASE",), True),
    "lambda_ai": Host("https://api.lambda.ai/v1", ("LAMBDA_API_KEY",), ("LAMBDA_API_BASE",), True),
    # Meta's Llama API, OpenAI-compatible endpoint.
    "meta_llama": Host("https://api.llama.com/compat/v1", ("LLAMA_API_KEY",), ("LLAMA_API_BASE",), True),
    "nscale": Host("https://inference.api.nscale.com/v1", ("NSCALE_API_KEY",), ("NSCALE_API_BASE",), True),
    "friendliai": Host(
        "https://api.friendli.ai/serverless/v1", ("FRIENDLI_TOKEN", "FRIENDLIAI_API_KEY"),
        ("FRIENDLI_API_BASE", "FRIENDLIAI_API_BASE"), True,
    ),
    "featherless_ai": Host(
        "https://api.featherless.ai/v1", ("FEATHERLESS_AI_API_KEY", "FEATHERLESS_API_KEY"),
        ("FEATHERLESS_AI_API_BASE",), True,
    ),
    # Volcengine Ark (ByteDance), OpenAI-compatible.
    "volcengine": Host(
        "https://ark.cn-beijing.volces.com/api/v3", ("VOLCENGINE_API_KEY", "ARK_API_KEY"),
        ("VOLCENGINE_API_BASE",), True,
    ),
}


class HostProvider(OpenAIProvider):
    """The OpenAI provider plus one :class:`Host` row (renames, model prefix)."""

    def __init__(self, name: str, host: Host) -> None:
        super().__init__(name)
        self.host = host
        self.default_api_base = host.api_base
        self.api_key_env = host.api_key_env
        self.api_base_env = host.api_base_env
        self.requires_key = host.requires_key
        if host.supported_params is not None:
            self.supported_params = host.supported_params
        elif host.unsupported_params:
            self.supported_params = OPENAI_PARAMS - host.unsupported_params

    def resolve_api_base(self, call: Call) -> str:
        base = super().resolve_api_base(call)
        return _fill(base, call) if "{" in base else base

    def resolve_api_key(self, call: Call, base: str) -> str | None:
        default = self.default_api_base or ""
        if self.requires_key and "{" in default and base.startswith(default.split("{", 1)[0]):
            key = call.api_key or settings.get("api_key") or first_env(self.api_key_env)
            return require_key(key, call.provider, call.user_model, self.api_key_env)
        return super().resolve_api_key(call, base)

    def check_params(self, call: Call) -> dict[str, Any]:
        params = super().check_params(call)
        if self.host.single_choice and params.get("n", 1) != 1:
            if not call.drop_params:
                raise UnsupportedParamsError(
                    f"{call.provider} supports only n=1 (got n={params['n']})."
                    " Pass drop_params=True (or set llmrelay.drop_params = True) to drop it.",
                    llm_provider=call.provider,
                    model=call.user_model or call.model,
                )
            log.debug("dropping n=%s unsupported by %s", params["n"], call.provider)
            params = {k: v for k, v in params.items() if k != "n"}
        return params

    def build_body(self, call: Call, params: dict[str, Any]) -> dict[str, Any]:
        host = self.host
        if host.rename_params:
            params = {host.rename_params.get(k, k): v for k, v in params.items()}
        body = super().build_body(call, params)
        if host.model_prefix and "/" not in call.model:
            body["model"] = host.model_prefix + call.model
        return body


def _fill(base: str, call: Call) -> str:
    """A default base URL with per-account parts (``{CLOUDFLARE_ACCOUNT_ID}``) from the environment."""
    import os
    import re

    def value(match: "re.Match[str]") -> str:
        found = os.environ.get(match.group(1))
        if not found:
            raise AuthenticationError(
                f"{call.provider} needs {match.group(1)} (set the environment variable) or an api_base.",
                llm_provider=call.provider, model=call.user_model,
            )
        return found

    return re.sub(r"\{([A-Z0-9_]+)\}", value, base)


def make_provider(prefix: str) -> OpenAIProvider:
    """An OpenAI provider configured from :data:`HOSTS`."""
    return HostProvider(prefix, HOSTS[prefix])
