"""The gateway's ``config.yaml``: load, validate, report errors as one clear message.

The format is LiteLLM's proxy config, so existing files work::

    model_list:
      - model_name: gpt-4o                 # the name clients ask for
        litellm_params:                    # everything completion() takes
          model: openai/gpt-4o
          api_key: os.environ/OPENAI_API_KEY
        model_info: {id: gpt4o-east}
    litellm_settings:                      # llmrelay's module settings
      REPEATED_STREAMING_CHUNK_LIMIT: 100
      drop_params: true
    general_settings:
      master_key: os.environ/LLMRELAY_MASTER_KEY
    router_settings:
      routing_strategy: simple-shuffle

Every problem raises :class:`ConfigError` whose text names the file, the line where the YAML
has one, and what to do about it. Nothing here starts a server or does network I/O.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from .. import settings as _settings

__all__ = [
    "ConfigError",
    "Deployment",
    "ProxyConfig",
    "load_config",
    "parse_config",
    "default_config",
    "IGNORED_LITELLM_SETTINGS",
    "IGNORED_GENERAL_SETTINGS",
    "DEFAULT_MAX_BODY_BYTES",
]

log = logging.getLogger("llmrelay.proxy")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
ENV_PREFIX = "os.environ/"

#: LiteLLM ``litellm_settings`` keys the gateway accepts and ignores (logging a warning):
#: callbacks, caching, telemetry and UI features llmrelay does not have.
IGNORED_LITELLM_SETTINGS = frozenset(
    {
        "callbacks", "success_callback", "failure_callback", "service_callback",
        "input_callback", "cache", "cache_params", "json_logs", "turn_off_message_logging",
        "redact_user_api_key_info", "redact_messages_in_exceptions", "telemetry",
        "max_budget", "budget_duration", "default_team_settings", "upperbound_key_generate_params",
        "default_key_generate_params", "key_generation_settings", "default_internal_user_params",
        "modify_params", "enable_preview_features", "return_response_headers",
        "set_verbose_callbacks", "disable_end_user_cost_tracking", "enable_json_schema_validation",
        "content_policy_fallbacks", "mcp_aliases", "guardrails", "allowed_fails",
        "cooldown_time", "fallbacks", "context_window_fallbacks", "default_fallbacks",
        "request_timeout_seconds", "force_ipv4", "ssl_verify", "tag_budget_config",
    }
)

#: LiteLLM ``general_settings`` keys accepted and ignored with a warning (database, UI, alerting…).
IGNORED_GENERAL_SETTINGS = frozenset(
    {
        "database_url", "database_connection_pool_limit", "database_connection_timeout",
        "store_model_in_db", "store_prompts_in_spend_logs", "alerting", "alerting_threshold",
        "alert_types", "alert_to_webhook_url", "proxy_batch_write_at", "disable_spend_logs",
        "disable_master_key_return", "disable_reset_budget", "disable_adding_master_key_hash_to_db",
        "ui_access_mode", "allowed_routes", "admin_only_routes", "custom_auth", "custom_key_generate",
        "enforce_user_param", "enable_jwt_auth", "litellm_jwtauth", "background_health_checks",
        "health_check_interval", "health_check_details", "use_redis_transaction_buffer",
        "infer_model_from_keys", "proxy_budget_rescheduler_min_time",
        "proxy_budget_rescheduler_max_time", "pass_through_endpoints", "allow_requests_on_db_unavailable",
        "maximum_spend_logs_retention_period", "user_header_name", "disable_retry_on_max_parallel_request_limit_error",
        "max_parallel_requests", "global_max_parallel_requests", "key_management_system",
        "key_management_settings", "use_client_credentials_pass_through_routes", "forward_client_headers_to_llm_api",
        "max_response_size_mb", "supported_db_objects", "public_routes", "allowed_ips",
        "use_x_forwarded_for", "service_account_settings",
    }
)
#: ``general_settings`` keys the gateway uses.
KNOWN_GENERAL_SETTINGS = frozenset({"master_key", "max_request_size_mb", "allow_unauthenticated"})

#: Top-level keys: ours, and LiteLLM's we ignore with a warning.
KNOWN_TOP = ("model_list", "litellm_settings", "general_settings", "router_settings", "environment_variables")
IGNORED_TOP = frozenset({"guardrails", "credential_list", "include", "mcp_servers", "callback_settings",
                         "files_settings", "assistant_settings", "finetune_settings", "vector_store_registry"})

_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "REPEATED_STREAMING_CHUNK_LIMIT": (int,),
    "drop_params": (bool,),
    "num_retries": (int,),
    "request_timeout": (int, float),
    "set_verbose": (bool,),
    "api_key": (str,),
    "api_base": (str,),
}


class ConfigError(Exception):
    """A problem with the config file; ``str(exc)`` is the whole message to show the user."""


# ============================================================================ YAML with lines
class _Map(dict):
    """A YAML mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class _Seq(list):
    line: int = 0
    item_lines: list[int]


def _loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct_map(loader: Any, node: Any):
        data = _Map()
        data.line = node.start_mark.line + 1
        data.key_lines = {}
        yield data
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                raise ConfigError(f"line {line}: a mapping key must be a plain value, got {key!r}") from None
            if key in data:
                raise ConfigError(
                    f"line {line}: the key {key!r} appears twice in the same mapping "
                    f"(first on line {data.key_lines[key]}); keep one."
                )
            data[key] = loader.construct_object(value_node, deep=True)
            data.key_lines[key] = line

    def construct_seq(loader: Any, node: Any):
        data = _Seq()
        data.line = node.start_mark.line + 1
        data.item_lines = [n.start_mark.line + 1 for n in node.value]
        yield data
        data.extend(loader.construct_object(n, deep=True) for n in node.value)

    Loader.add_constructor("tag:yaml.org,2002:map", construct_map)
    Loader.add_constructor("tag:yaml.org,2002:seq", construct_seq)
    return Loader


def _line_of(container: Any, key: Any) -> int | None:
    if isinstance(container, _Map):
        return container.key_lines.get(key) or container.line or None
    if isinstance(container, _Seq) and isinstance(key, int) and key < len(container.item_lines):
        return container.item_lines[key]
    return getattr(container, "line", None) or None


# ============================================================================ the result
@dataclass
class Deployment:
    """One ``model_list`` entry."""

    model_name: str
    litellm_params: dict[str, Any]
    model_info: dict[str, Any]
    provider: str
    line: int | None = None


@dataclass
class ProxyConfig:
    """A validated config: what the gateway serves and how."""

    path: str | None
    deployments: list[Deployment]
    litellm_settings: dict[str, Any] = field(default_factory=dict)
    router_settings: dict[str, Any] = field(default_factory=dict)
    master_key: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allow_unauthenticated: bool = False
    #: Values that must never appear in a response or a log line (keys read from the config).
    secrets: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def model_names(self) -> list[str]:
        """Public model names, in config order, without duplicates."""
        return list(dict.fromkeys(d.model_name for d in self.deployments))

    def groups(self) -> dict[str, list[Deployment]]:
        out: dict[str, list[Deployment]] = {}
        for d in self.deployments:
            out.setdefault(d.model_name, []).append(d)
        return out

    def apply_settings(self) -> None:
        """Apply ``litellm_settings`` to the library's module settings (this process)."""
        import llmrelay

        for key, value in self.litellm_settings.items():
            setattr(llmrelay, key, value)


# ============================================================================ loading
def load_config(path: str) -> ProxyConfig:
    """Read and validate ``path``; raise :class:`ConfigError` with one clear message."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file. Pass the path of your config.yaml to --config.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    return parse_config(text, path)


def parse_config(text: str, path: str = "<config>") -> ProxyConfig:
    """Validate config text (``path`` is only used in messages)."""
    try:
        return _Parser(path).parse(text)
    except ConfigError as exc:
        message = str(exc)
        if not message.startswith(path):
            message = f"{path}: {message}"
        raise ConfigError(message) from None


def default_config() -> ProxyConfig:
    """The config without ``--config``: the bundled local model as ``smollm2``."""
    from ..providers import registry

    warnings = []
    deployments = []
    if "local" in registry.PROVIDERS:
        deployments.append(
            Deployment("smollm2", {"model": "local/smollm2"}, {}, "local", None)
        )
    else:
        warnings.append(
            "no --config given and the local model provider ('local/', issue 7) is not available "
            "in this installation, so no model is served; pass --config config.yaml"
        )
    return ProxyConfig(path=None, deployments=deployments, warnings=warnings)


class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path
        self.secrets: list[str] = []
        self.warnings: list[str] = []

    def fail(self, container: Any, key: Any, message: str) -> ConfigError:
        line = _line_of(container, key)
        where = f"{self.path}, line {line}" if line else self.path
        return ConfigError(f"{where}: {message}")

    def parse(self, text: str) -> ProxyConfig:
        import yaml

        try:
            data = yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
        except ConfigError as exc:
            raise ConfigError(f"{self.path}, {exc}") from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = exc.problem or exc.context or "invalid YAML"
            raise ConfigError(
                f"{self.path}{line}: YAML syntax error: {problem}. Check the indentation and "
                "quoting there (values containing ': ' or '#' need quotes)."
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.path}: YAML error: {exc}") from None
        if data is None:
            data = _Map()
            data.key_lines = {}
        if not isinstance(data, dict):
            raise self.fail(data, None, "the config must be a mapping with a model_list: section")
        for key in data:
            if key in IGNORED_TOP:
                self.warn(data, key, f"the top-level section {key!r} is a LiteLLM feature llmrelay does not have; ignored")
            elif key not in KNOWN_TOP:
                raise self.fail(
                    data, key,
                    f"unknown top-level section {key!r}. Known sections: {', '.join(KNOWN_TOP)}.",
                )
        env = data.get("environment_variables")
        if env is not None:
            self.environment(data, env)
        deployments = self.model_list(data)
        settings = self.litellm_settings(data)
        general = self.general_settings(data)
        router = data.get("router_settings") or {}
        if not isinstance(router, dict):
            raise self.fail(data, "router_settings", "router_settings must be a mapping")
        router = {k: self.resolve_env(router, k, v) for k, v in router.items()}
        return ProxyConfig(
            path=self.path,
            deployments=deployments,
            litellm_settings=settings,
            router_settings=router,
            master_key=general.get("master_key"),
            max_body_bytes=general.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES),
            allow_unauthenticated=general.get("allow_unauthenticated", False),
            secrets=sorted({s for s in self.secrets if s and len(s) >= 4}, key=len, reverse=True),
            warnings=self.warnings,
        )

    def warn(self, container: Any, key: Any, message: str) -> None:
        line = _line_of(container, key)
        where = f"{self.path}, line {line}" if line else self.path
        self.warnings.append(f"{where}: {message}")

    # ------------------------------------------------------------------ values
    def resolve_env(self, container: Any, key: Any, value: Any, secret: bool = False) -> Any:
        """``os.environ/NAME`` → the variable's value (recursively in dicts and lists)."""
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX):]
            if not name:
                raise self.fail(container, key, f"{value!r} names no variable; write os.environ/NAME")
            env = os.environ.get(name)
            if env is None:
                raise self.fail(
                    container, key,
                    f"{key} refers to the environment variable {name}, which is not set. "
                    f"Set it (export {name}=...) or write the value in the file.",
                )
            if secret or _secret_name(str(key)):
                self.secrets.append(env)
            return env
        if isinstance(value, dict):
            return {k: self.resolve_env(value, k, v, secret) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve_env(value, i, v, secret) for i, v in enumerate(value)]
        if secret and isinstance(value, str):
            self.secrets.append(value)
        return value

    def environment(self, data: Any, env: Any) -> None:
        if not isinstance(env, dict):
            raise self.fail(data, "environment_variables", "environment_variables must be a mapping NAME: value")
        for name, value in env.items():
            if not isinstance(name, str) or not isinstance(value, (str, int, float, bool)):
                raise self.fail(env, name, "environment_variables entries must be NAME: value")
            os.environ[name] = str(value)

    # ------------------------------------------------------------------ model_list
    def model_list(self, data: Any) -> list[Deployment]:
        from ..exceptions import BadRequestError
        from ..providers import registry

        models = data.get("model_list")
        if models is None:
            raise self.fail(
                data, None,
                "the config has no model_list: section. Add one, e.g.\n"
                "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o",
            )
        if not isinstance(models, list):
            raise self.fail(data, "model_list", "model_list must be a list of entries (each starting with '- model_name:')")
        out: list[Deployment] = []
        seen: dict[tuple, int | None] = {}
        for i, entry in enumerate(models):
            if not isinstance(entry, dict):
                raise self.fail(models, i, "each model_list entry must be a mapping with model_name and litellm_params")
            for key in entry:
                if key not in ("model_name", "litellm_params", "model_info"):
                    raise self.fail(
                        entry, key,
                        f"unknown key {key!r} in a model_list entry; use model_name, litellm_params, model_info",
                    )
            name = entry.get("model_name")
            if not isinstance(name, str) or not name.strip():
                raise self.fail(entry, "model_name", "model_name must be a non-empty string (the name clients ask for)")
            params = entry.get("litellm_params")
            if not isinstance(params, dict):
                raise self.fail(
                    entry, "litellm_params" if "litellm_params" in entry else None,
                    f"model {name!r}: litellm_params must be a mapping with at least model: provider/model",
                )
            resolved = {k: self.resolve_env(params, k, v, secret=_secret_name(str(k))) for k, v in params.items()}
            model = resolved.get("model")
            if not isinstance(model, str) or not model.strip():
                raise self.fail(
                    params, "model" if "model" in params else None,
                    f"model {name!r}: litellm_params.model must be a string like 'openai/gpt-4o'",
                )
            try:
                provider, _ = registry.resolve(model, resolved.get("custom_llm_provider"))
            except BadRequestError as exc:
                raise self.fail(params, "model", f"model {name!r}: {exc.message}") from None
            try:
                registry.get_provider(provider)
            except ImportError as exc:
                raise self.fail(
                    params, "model",
                    f"model {name!r}: the provider {provider!r} cannot be loaded ({exc}); "
                    "install its optional dependencies",
                ) from None
            info = entry.get("model_info") or {}
            if not isinstance(info, dict):
                raise self.fail(entry, "model_info", f"model {name!r}: model_info must be a mapping")
            info = {k: self.resolve_env(info, k, v) for k, v in info.items()}
            for key in ("rpm", "tpm", "max_retries", "timeout", "stream_timeout"):
                value = resolved.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                    raise self.fail(params, key, f"model {name!r}: {key} must be a non-negative number, got {value!r}")
            identity = (name, _freeze(resolved))
            if identity in seen:
                raise self.fail(
                    models, i,
                    f"duplicate deployment: model {name!r} with the same litellm_params is already "
                    f"listed on line {seen[identity]}; remove one.",
                )
            seen[identity] = _line_of(models, i)
            out.append(Deployment(name, resolved, dict(info), provider, _line_of(models, i)))
        return out

    # ------------------------------------------------------------------ settings
    def litellm_settings(self, data: Any) -> dict[str, Any]:
        raw = data.get("litellm_settings") or {}
        if not isinstance(raw, dict):
            raise self.fail(data, "litellm_settings", "litellm_settings must be a mapping")
        known = sorted(_settings.KNOWN_SETTINGS)
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key in IGNORED_LITELLM_SETTINGS:
                self.warn(raw, key, f"litellm_settings.{key} is a LiteLLM setting llmrelay does not implement; ignored")
                continue
            if key not in _settings.KNOWN_SETTINGS:
                raise self.fail(
                    raw, key,
                    f"unknown litellm_settings key {key!r}. Known keys: {', '.join(known)}.",
                )
            value = self.resolve_env(raw, key, value, secret=key == "api_key")
            types = _SETTING_TYPES.get(key)
            if types is not None and value is not None:
                ok = isinstance(value, types) and not (bool not in types and isinstance(value, bool))
                if not ok:
                    names = " or ".join(t.__name__ for t in types)
                    raise self.fail(raw, key, f"litellm_settings.{key} must be {names}, got {value!r}")
            if key in ("REPEATED_STREAMING_CHUNK_LIMIT",) and value is not None and value < 1:
                raise self.fail(raw, key, f"{key} must be at least 1, got {value}")
            if key in ("num_retries",) and value < 0:
                raise self.fail(raw, key, f"{key} must be 0 or more, got {value}")
            if key == "request_timeout" and value is not None and value <= 0:
                raise self.fail(raw, key, f"{key} must be a positive number of seconds, got {value}")
            out[key] = value
        return out

    def general_settings(self, data: Any) -> dict[str, Any]:
        raw = data.get("general_settings") or {}
        if not isinstance(raw, dict):
            raise self.fail(data, "general_settings", "general_settings must be a mapping")
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key in IGNORED_GENERAL_SETTINGS:
                self.warn(raw, key, f"general_settings.{key} is a LiteLLM feature llmrelay does not have; ignored")
                continue
            if key not in KNOWN_GENERAL_SETTINGS:
                raise self.fail(
                    raw, key,
                    f"unknown general_settings key {key!r}. Known keys: {', '.join(sorted(KNOWN_GENERAL_SETTINGS))}.",
                )
        if "master_key" in raw and raw["master_key"] is not None:
            key = self.resolve_env(raw, "master_key", raw["master_key"], secret=True)
            if not isinstance(key, str) or not key:
                raise self.fail(raw, "master_key", "master_key must be a non-empty string (e.g. sk-...)")
            out["master_key"] = key
        size = raw.get("max_request_size_mb")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
                raise self.fail(raw, "max_request_size_mb", f"max_request_size_mb must be a positive number, got {size!r}")
            out["max_body_bytes"] = int(size * 1024 * 1024)
        allow = raw.get("allow_unauthenticated")
        if allow is not None:
            if not isinstance(allow, bool):
                raise self.fail(raw, "allow_unauthenticated", "allow_unauthenticated must be true or false")
            out["allow_unauthenticated"] = allow
        return out


def _secret_name(key: str) -> bool:
    key = key.lower()
    return (
        key.endswith("api_key") or key.endswith("access_key") or key.endswith("_token") and "max" not in key
        or any(word in key for word in ("secret", "password", "credential"))
    )


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value
