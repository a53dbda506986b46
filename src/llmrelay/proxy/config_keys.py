"""What every key of a LiteLLM ``config.yaml`` means to llmrelay: one table per section.

Each section is a :class:`Keys`: ``used`` (llmrelay applies the key) and ``ignored`` (a LiteLLM
key llmrelay accepts without implementing it: a warning, never a refusal). A key in neither is
unknown: also a warning, with "did you mean …" when it is close to a known key or belongs to
another section. To teach the gateway a new key, move it from ``ignored`` to ``used`` (or add
it) here and read it where the section is parsed; nothing else needs to change.

``litellm_params`` keys are described by the library's own table
(:mod:`llmrelay.litellm_params`), because ``Router`` and ``completion`` consume them too.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

__all__ = ["Keys", "TOP", "LITELLM_SETTINGS", "GENERAL_SETTINGS", "ROUTER_SETTINGS", "MODEL_ENTRY",
           "MODEL_INFO", "ROUTER_KEYS_IN_LITELLM_SETTINGS", "SECTIONS", "suggest", "other_section"]


@dataclass
class Keys:
    """The keys of one section: applied (``used``) and accepted-but-ignored (``ignored``)."""

    section: str
    used: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)

    def known(self, key: object) -> bool:
        return key in self.used or key in self.ignored

    def all(self) -> set[str]:
        return self.used | self.ignored


def _keys(section: str, used: str, ignored: str = "") -> Keys:
    return Keys(section, set(used.split()), set(ignored.split()))


TOP = _keys(
    "top level",
    "model_list litellm_settings general_settings router_settings environment_variables credential_list include",
    "guardrails mcp_servers callback_settings files_settings assistant_settings "
    "finetune_settings vector_store_registry search_tools prompts pass_through_endpoints",
)

#: Router options LiteLLM also reads from ``litellm_settings``: they configure the Router here
#: too (``router_settings`` wins when both give one).
ROUTER_KEYS_IN_LITELLM_SETTINGS = frozenset(
    {
        "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
        "num_retries", "retry_policy", "allowed_fails", "allowed_fails_policy", "cooldown_time",
        "request_timeout", "timeout", "stream_timeout", "disable_cooldowns", "retry_after",
        "model_group_alias", "routing_strategy", "enable_pre_call_checks",
    }
)

LITELLM_SETTINGS = _keys(
    "litellm_settings",
    # the library's module settings (llmrelay.settings) and the Router options above
    "REPEATED_STREAMING_CHUNK_LIMIT drop_params num_retries request_timeout set_verbose api_key api_base "
    "ssl_verify cache cache_params turn_off_message_logging json_logs " + " ".join(sorted(ROUTER_KEYS_IN_LITELLM_SETTINGS))
    # the gateway's callbacks (proxy/observe.py)
    + " callbacks success_callback failure_callback"
    # /key/generate's defaults and upper bounds (proxy/management.py)
    + " default_key_generate_params upperbound_key_generate_params"
    # the budget tier of end users without one (proxy/keys.py)
    + " max_end_user_budget_id max_end_user_budget"
    # what /user/new fills in (proxy/management.py)
    + " default_internal_user_params max_internal_user_budget internal_user_budget_duration"
    # the whole gateway's budget (proxy/keys.py)
    + " max_budget budget_duration",
    "service_callback input_callback "
    "redact_user_api_key_info redact_messages_in_exceptions "
    "telemetry default_team_settings "
    "key_generation_settings modify_params "
    "enable_preview_features return_response_headers set_verbose_callbacks "
    "disable_end_user_cost_tracking enable_json_schema_validation mcp_aliases guardrails "
    "request_timeout_seconds force_ipv4 tag_budget_config "
    "default_max_internal_user_budget "
    "drop_params_for_unsupported_models add_function_to_prompt public_model_groups "
    "public_model_groups_links check_provider_endpoint disable_add_transform_inline_image_block "
    "cache_control_injection_points logging callback_settings langfuse_default_tags "
    "success_callback_params use_chat_completions_url_for_anthropic_messages "
    "disable_token_counter enable_loadbalancing_on_batch_endpoints suppress_debug_info "
    "model_alias_map model_cost_map_url forward_traceparent_to_llm_provider",
)

GENERAL_SETTINGS = _keys(
    "general_settings",
    "master_key max_request_size_mb allow_unauthenticated database_url database_connection_pool_limit "
    "store_prompts_in_spend_logs proxy_batch_write_at disable_spend_logs always_include_stream_usage "
    "user_api_key_cache_ttl user_header_name user_header_mappings enforce_user_param allowed_ips "
    "use_x_forwarded_for max_parallel_requests global_max_parallel_requests allowed_routes admin_only_routes "
    "background_health_checks health_check_interval store_model_in_db",
    "database_connection_timeout "
    "alerting alerting_threshold alert_types alert_to_webhook_url "
    "alerting_args disable_master_key_return "
    "disable_reset_budget disable_adding_master_key_hash_to_db ui_access_mode "
    "custom_auth custom_key_generate enable_jwt_auth "
    "litellm_jwtauth health_check_details "
    "use_redis_transaction_buffer infer_model_from_keys proxy_budget_rescheduler_min_time "
    "proxy_budget_rescheduler_max_time pass_through_endpoints allow_requests_on_db_unavailable "
    "maximum_spend_logs_retention_period "
    "disable_retry_on_max_parallel_request_limit_error "
    "key_management_system key_management_settings "
    "use_client_credentials_pass_through_routes forward_client_headers_to_llm_api "
    "max_response_size_mb supported_db_objects public_routes "
    "service_account_settings disable_prisma_schema_update enable_oauth2_auth "
    "enable_oauth2_proxy_auth embedding_model completion_model default_team_disabled "
    "disable_responses_id_security control_plane_url mcp_client_side_auth_header_name "
    "moderation_model spend_report_frequency allowed_domains proxy_admin_email "
    "maximum_spend_logs_retention_interval",
)

ROUTER_SETTINGS = _keys(
    "router_settings",
    # llmrelay.Router's own options
    "routing_strategy routing_strategy_args num_retries retry_after timeout stream_timeout "
    "stream_idle_timeout fallbacks context_window_fallbacks content_policy_fallbacks "
    "default_fallbacks allowed_fails cooldown_time allowed_fails_window disable_cooldowns "
    "rate_limit_wait model_group_alias request_timeout max_retries "
    "retry_policy model_group_retry_policy allowed_fails_policy default_litellm_params "
    "enable_pre_call_checks provider_budget_config "
    # shared state through Redis (llmrelay.routing.shared)
    "redis_host redis_port redis_password redis_url redis_db redis_prefix redis_timeout",
    # LiteLLM Router options accepted and ignored (shared caches, alerting…)
    "cache_responses cache_kwargs caching_groups "
    "client_ttl debug_level set_verbose alerting_config polling_interval "
    "router_general_settings assistants_config "
    "enable_tag_filtering optional_pre_call_checks "
    "ignore_invalid_deployments tag_filtering_match_any "
    "deployment_affinity_ttl_seconds",
)

#: Keys of a ``model_list`` entry itself (LiteLLM also reads rpm/tpm and friends here).
MODEL_ENTRY = _keys(
    "model_list entry",
    "model_name litellm_params model_info rpm tpm order weight cooldown_time max_parallel_requests tags",
)

MODEL_INFO = _keys(
    "model_info",
    "id mode base_model input_cost_per_token output_cost_per_token max_tokens max_input_tokens "
    "max_output_tokens description allowed_client_params health_check_model health_check_timeout",
    "db_model team_id team_public_model_name access_groups tier litellm_provider key "
    "supports_vision supports_function_calling supports_parallel_function_calling "
    "supports_tool_choice supports_response_schema supports_system_messages supports_reasoning "
    "supports_audio_input supports_audio_output supports_prompt_caching supports_pdf_input "
    "supports_web_search supports_computer_use supports_embedding_image_input "
    "supports_native_streaming supports_assistant_prefill input_cost_per_second "
    "output_cost_per_second cache_read_input_token_cost cache_creation_input_token_cost "
    "input_cost_per_character output_cost_per_character output_vector_size created_at updated_at "
    "created_by updated_by rpm tpm tags "
    "input_cost_per_token_batches output_cost_per_token_batches output_cost_per_reasoning_token "
    "input_cost_per_audio_token output_cost_per_audio_token input_cost_per_image "
    "output_cost_per_image access_via_team_ids direct_access",
)

SECTIONS = {
    "litellm_settings": LITELLM_SETTINGS,
    "general_settings": GENERAL_SETTINGS,
    "router_settings": ROUTER_SETTINGS,
}


def suggest(key: object, candidates: set[str] | list[str]) -> str | None:
    """The known key ``key`` is probably a misspelling of, if any."""
    if not isinstance(key, str):
        return None
    lowered = {c.lower(): c for c in candidates}
    if key.lower() in lowered:
        return lowered[key.lower()]
    match = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.8)
    return lowered[match[0]] if match else None


def other_section(key: object, here: str) -> str | None:
    """The section (other than ``here``) where ``key`` belongs, if it is known in exactly one."""
    found = [name for name, keys in SECTIONS.items() if name != here and keys.known(key)]
    return found[0] if len(found) == 1 else None
