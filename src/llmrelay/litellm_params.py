"""The one table of LiteLLM ``litellm_params`` that llmrelay consumes itself.

A ``litellm_params`` mapping (a config's ``model_list`` entry, a ``Router`` deployment, or the
keyword arguments of ``completion``) mixes three kinds of keys:

* parameters llmrelay consumes (this table): they configure the router or the call and are
  never sent to the provider;
* OpenAI parameters (``temperature``, ``max_tokens``…, :data:`~llmrelay.providers.base.OPENAI_PARAMS`),
  translated for each provider;
* anything else, forwarded to OpenAI-compatible providers as it is (vLLM's ``top_k``,
  ``guided_json``…), as LiteLLM does.

Each entry says who consumes the key: ``router`` (a deployment setting of ``Router``), ``call``
(``completion`` itself: connection, transport and response options), ``provider`` (a provider
setting read by one provider, e.g. AWS or Vertex credentials), or ``accepted`` (a LiteLLM
feature llmrelay does not have: accepted, ignored, never forwarded).
"""

from __future__ import annotations

__all__ = ["LITELLM_PARAMS", "ROUTER_PARAMS", "NOT_FORWARDED", "PROVIDER_BODY_PARAMS"]

#: key → (who consumes it, what it does). Documented in docs/proxy.md ("Moving from LiteLLM").
LITELLM_PARAMS: dict[str, tuple[str, str]] = {
    # ---- the router (one deployment of a model group)
    "rpm": ("router", "requests per minute this deployment may take"),
    "tpm": ("router", "tokens per minute this deployment may take"),
    "weight": ("router", "relative share of traffic under simple-shuffle"),
    "order": ("router", "priority: lower order is tried first; higher only when lower ones fail or cool down"),
    "max_parallel_requests": ("router", "most requests in flight at once on this deployment"),
    "cooldown_time": ("router", "seconds this deployment cools down after failing (overrides the router's)"),
    "tags": ("router", "tags for tag-based routing (a request's tags / metadata.tags)"),
    "stream_idle_timeout": ("router", "seconds allowed between two stream chunks"),
    "input_cost_per_token": ("router", "price of a prompt token (USD), kept on the deployment for cost tracking"),
    "output_cost_per_token": ("router", "price of a completion token (USD), kept on the deployment for cost tracking"),
    "cache_read_input_token_cost": ("router", "price of a cached prompt token (USD), for cost tracking"),
    "cache_creation_input_token_cost": ("router", "price of a prompt token written to the cache (USD), for cost tracking"),
    "output_cost_per_reasoning_token": ("router", "price of a reasoning token (USD), for cost tracking"),
    "region_name": ("router", "the deployment's region (informational; shown by /model/info)"),
    "use_in_pass_through": ("router", "LiteLLM pass-through routing flag; accepted (no pass-through endpoints)"),
    # ---- the call itself
    "api_base": ("call", "the provider's base URL"),
    "base_url": ("call", "same as api_base"),
    "api_key": ("call", "the provider's API key"),
    "custom_llm_provider": ("call", "the provider, when the model name has no prefix"),
    "timeout": ("call", "seconds for a whole non-streaming call"),
    "request_timeout": ("call", "same as timeout"),
    "stream_timeout": ("call", "seconds until a stream's first chunk"),
    "num_retries": ("call", "retries of retryable failures"),
    "max_retries": ("call", "same as num_retries"),
    "headers": ("call", "extra HTTP headers sent to the provider"),
    "extra_headers": ("call", "extra HTTP headers sent to the provider"),
    "extra_body": ("call", "extra JSON fields merged into the provider's request body"),
    "drop_params": ("call", "drop parameters the provider does not support"),
    "ssl_verify": ("call", "false to skip TLS verification, or the path of a CA bundle"),
    "merge_reasoning_content_in_choices": ("call", "put reasoning into content as <think>…</think>"),
    "mock_response": ("call", "answer with this text without calling the provider"),
    "mock_tool_calls": ("call", "answer with these tool calls without calling the provider"),
    "mock_timeout": ("call", "raise Timeout after the call's timeout without calling the provider"),
    "mock_delay": ("call", "seconds a mock answer waits"),
    "organization": ("call", "OpenAI-Organization header (OpenAI-compatible providers)"),
    # ---- provider settings (read by one provider, never part of the body)
    "api_version": ("provider", "Azure API version"),
    "azure_ad_token": ("provider", "Azure AD token"),
    "azure_ad_token_provider": ("provider", "Azure AD token provider"),
    "aws_access_key_id": ("provider", "Bedrock credentials"),
    "aws_secret_access_key": ("provider", "Bedrock credentials"),
    "aws_session_token": ("provider", "Bedrock credentials"),
    "aws_region_name": ("provider", "Bedrock region"),
    "aws_profile_name": ("provider", "Bedrock credentials profile"),
    "aws_bedrock_runtime_endpoint": ("provider", "Bedrock endpoint"),
    "aws_role_name": ("provider", "Bedrock assumed role (not supported: refused by the provider)"),
    "aws_session_name": ("provider", "Bedrock assumed role session"),
    "aws_web_identity_token": ("provider", "Bedrock web identity (not supported: refused by the provider)"),
    "aws_sts_endpoint": ("provider", "Bedrock STS endpoint"),
    "vertex_project": ("provider", "Vertex AI project"),
    "vertex_location": ("provider", "Vertex AI location"),
    "vertex_credentials": ("provider", "Vertex AI service account credentials"),
    "vertex_access_token": ("provider", "Vertex AI access token"),
    "model_path": ("provider", "local model: the GGUF file"),
    "n_ctx": ("provider", "local model: context size"),
    "n_threads": ("provider", "local model: threads"),
    "safety_settings": ("provider", "Gemini safety settings"),
    # ---- LiteLLM features llmrelay accepts and ignores
    "litellm_credential_name": ("router", "the credential_list entry (gateway config) whose credential_values fill in the params this entry does not give"),
    "use_litellm_proxy": ("accepted", "LiteLLM SDK-to-proxy flag"),
    "max_budget": ("router", "USD this deployment may spend per budget_duration (budget routing)"),
    "budget_duration": ("router", "the period of max_budget (default 1mo)"),
    "input_cost_per_second": ("accepted", "per-second pricing"),
    "output_cost_per_second": ("accepted", "per-second pricing"),
    "configurable_clientside_auth_params": ("accepted", "client-side credentials (never allowed by llmrelay)"),
    "litellm_trace_id": ("accepted", "LiteLLM logging"),
    "litellm_metadata": ("accepted", "LiteLLM logging"),
    "metadata": ("accepted", "LiteLLM logging metadata"),
    "model_info": ("accepted", "belongs next to litellm_params"),
    "auto_router_config": ("accepted", "LiteLLM auto router"),
    "auto_router_config_path": ("accepted", "LiteLLM auto router"),
    "health_check_model": ("accepted", "LiteLLM health checks"),
    "mock_testing_fallbacks": ("accepted", "LiteLLM fallback testing"),
}

#: Keys a ``Router`` deployment consumes (never passed on to ``completion``).
ROUTER_PARAMS = frozenset(k for k, (who, _) in LITELLM_PARAMS.items() if who in ("router", "accepted")) | {
    "timeout", "stream_timeout",
}

#: Keys never put into a provider's request body (OpenAI-compatible providers forward the rest),
#: with the internal keyword arguments LiteLLM callers pass.
NOT_FORWARDED = frozenset(LITELLM_PARAMS) | {
    "litellm_call_id", "litellm_logging_obj", "logger_fn", "caching", "cache", "client", "fallbacks",
    "context_window_fallback_dict", "model_list", "proxy_server_request", "user_api_key",
    "aws_bedrock_client", "vertex_ai_project", "vertex_ai_location",
}

#: Non-OpenAI body parameters OpenAI-compatible servers commonly take (known, so not warned about).
PROVIDER_BODY_PARAMS = frozenset(
    {
        "top_k", "min_p", "repetition_penalty", "guided_json", "guided_regex", "guided_choice",
        "guided_grammar", "chat_template_kwargs", "keep_alive", "format", "options", "num_ctx",
        "additionalModelRequestFields", "response_format", "reasoning", "enable_thinking", "top_a",
        "transforms", "provider", "route", "models", "safe_prompt", "random_seed", "search_parameters",
    }
)
