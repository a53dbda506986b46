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

Lenient like LiteLLM, but loud: a key llmrelay does not implement, anywhere in the file, is a
one-line warning (``file, line N: section.key: …``, with "did you mean …" for near misses), and
a deployment that cannot be served (unknown provider, missing optional extra, bad values) is
skipped with a warning saying why. ``strict=True`` (``llmrelay proxy --strict``,
``llmrelay check-config``) turns every warning into an error. What really cannot work raises
:class:`ConfigError`, one line naming the file and line: YAML that does not parse, a
``model_list`` that is not a list, a missing environment variable, nothing left to serve.
The key tables live in :mod:`.config_keys`. Nothing here starts a server or does network I/O.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from .. import settings as _settings
from ..litellm_params import LITELLM_PARAMS, PROVIDER_BODY_PARAMS
from . import config_keys as K

__all__ = [
    "validate_model_entry",
    "ConfigError",
    "Deployment",
    "ProxyConfig",
    "load_config",
    "parse_config",
    "default_config",
    "DEFAULT_MAX_BODY_BYTES",
]

log = logging.getLogger("llmrelay.proxy")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: ``litellm_settings`` keys naming the gateway's callbacks (proxy/observe.py builds them).
CALLBACK_SETTINGS = ("callbacks", "success_callback", "failure_callback")
ENV_PREFIX = "os.environ/"

#: ``general_settings`` of keys, budgets and spend (llmrelay.proxy.keys) and their types.
_DB_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "database_url": (str,), "store_prompts_in_spend_logs": (bool,), "disable_spend_logs": (bool,),
    "proxy_batch_write_at": (int, float), "database_connection_pool_limit": (int,),
    "user_api_key_cache_ttl": (int, float),
}

def _customer_header(mappings: Any, name: Any) -> str | tuple[str, str] | None:
    """The request header naming the end user (LiteLLM's ``user_header_mappings`` entry with
    ``litellm_user_role: customer``, else its older ``user_header_name``), or (key, what is wrong)."""
    if mappings is not None:
        items = mappings if isinstance(mappings, list) else [mappings]
        if not all(isinstance(m, dict) and isinstance(m.get("header_name"), str) and m["header_name"].strip()
                   and m["header_name"].isascii() for m in items):
            return "user_header_mappings", ("general_settings.user_header_mappings must be a list of "
                                            "{header_name: X-OpenWebUI-User-Id, litellm_user_role: customer}")
        for item in items:
            if str(item.get("litellm_user_role") or "").lower() == "customer":
                return item["header_name"]
    if name is None or (isinstance(name, str) and not name.strip()):
        return None
    if not isinstance(name, str) or not name.isascii():
        return "user_header_name", f"general_settings.user_header_name must be a header name, got {name!r}"
    return name


#: ``litellm_settings`` keys that configure the response cache rather than a module setting.
_CACHE_SETTINGS = frozenset({"cache", "cache_params"})
#: ``litellm_settings`` keys of ``/key/generate`` (proxy/management.py), not module settings.
KEY_GENERATE_SETTINGS = ("default_key_generate_params", "upperbound_key_generate_params")
INTERNAL_USER_SETTINGS = ("default_internal_user_params", "max_internal_user_budget", "internal_user_budget_duration")
#: ``litellm_settings`` keys of the whole gateway's budget (LiteLLM's global proxy budget).
PROXY_BUDGET_SETTINGS = ("max_budget", "budget_duration")

_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "REPEATED_STREAMING_CHUNK_LIMIT": (int,),
    "drop_params": (bool,),
    "num_retries": (int,),
    "request_timeout": (int, float),
    "set_verbose": (bool,),
    "api_key": (str,),
    "api_base": (str,),
    "ssl_verify": (bool, str),
    "turn_off_message_logging": (bool,),
    "json_logs": (bool,),
}

#: Optional extras a provider needs: prefix → (module that must be importable, extra name).
PROVIDER_EXTRAS: dict[str, tuple[str, str]] = {
    "bedrock": ("botocore", "bedrock"),
    "local": ("llama_cpp", "local"),
}


class ConfigError(Exception):
    """A problem with the config file; ``str(exc)`` is the whole message to show the user.

    ``warnings`` holds the warnings found before the error (to show first).
    """

    def __init__(self, message: str, warnings: list[str] | None = None) -> None:
        super().__init__(message)
        self.warnings = list(warnings or [])


# ============================================================================ YAML with lines
class _Map(dict):
    """A YAML mapping that remembers the line of itself and of each key (1-based), and its file
    when it came from an included one (``source``)."""

    line: int = 0
    key_lines: dict[Any, int]
    source: str | None = None
    #: the file of a key an included file set (its line in ``key_lines`` is that file's)
    key_sources: dict[Any, str] | None = None


class _Seq(list):
    line: int = 0
    item_lines: list[int]
    source: str | None = None


def _loader(duplicates: list[tuple[int, Any, int]]) -> type:
    """A SafeLoader keeping line numbers; a key repeated in one mapping is noted in
    ``duplicates`` as (line, key, first line) and the later value wins, as in LiteLLM."""
    import yaml

    # libyaml's parser when PyYAML has it (several times faster on a big model_list)
    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
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
                duplicates.append((line, key, data.key_lines[key]))
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


def _mark_source(value: Any, path: str) -> None:
    """Name ``path`` as the file of every mapping and list in ``value`` (an included file's)."""
    if isinstance(value, (_Map, _Seq)):
        value.source = path
        for item in value.values() if isinstance(value, dict) else value:
            _mark_source(item, path)


def _line_of(container: Any, key: Any) -> int | None:
    if isinstance(container, _Map):
        return container.key_lines.get(key) or container.line or None
    if isinstance(container, _Seq) and isinstance(key, int) and key < len(container.item_lines):
        return container.item_lines[key]
    return getattr(container, "line", None) or None


# ============================================================================ the result
@dataclass
class Deployment:
    """One ``model_list`` entry that the gateway serves."""

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
    #: ``Cache(**cache_params)`` when ``litellm_settings.cache`` is true (see proxy/response_cache.py).
    cache_params: dict[str, Any] | None = None
    #: Values that must never appear in a response or a log line (keys read from the config).
    secrets: list[str] = field(default_factory=list)
    #: One line each: ``file, line N: section.key: what and why``.
    warnings: list[str] = field(default_factory=list)
    #: Every ``general_settings`` key llmrelay uses, ``os.environ/`` values resolved.
    general_settings: dict[str, Any] = field(default_factory=dict)
    #: Why each skipped deployment was skipped (also in ``warnings``).
    skipped: list[str] = field(default_factory=list)
    #: ``litellm_settings.callbacks`` / ``success_callback`` / ``failure_callback``: lists of names
    #: (built by proxy/observe.py; not library settings, so ``apply_settings`` leaves them alone).
    callbacks: dict[str, list[str]] = field(default_factory=dict)
    #: ``litellm_settings.default_key_generate_params`` / ``upperbound_key_generate_params``
    #: (name → its mapping), applied by ``/key/generate`` and ``/key/update``.
    key_generate_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``litellm_settings.max_end_user_budget_id``: the budget tier of end users without one
    end_user_budget_id: str | None = None
    #: ``litellm_settings.max_end_user_budget``: the budget of end users without one
    end_user_max_budget: float | None = None
    #: ``litellm_settings.default_internal_user_params`` (a mapping), ``max_internal_user_budget``,
    #: ``internal_user_budget_duration``: what /user/new fills in
    internal_user_settings: dict[str, Any] = field(default_factory=dict)
    #: ``litellm_settings.max_budget`` (> 0; 0 is off, as in LiteLLM) and ``budget_duration``:
    #: the whole gateway's budget
    proxy_budget: dict[str, Any] | None = None

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
def load_config(path: str, strict: bool = False) -> ProxyConfig:
    """Read and validate ``path``; raise :class:`ConfigError` with one clear message.

    ``strict``: every warning is an error (the warnings are in the exception's ``warnings``).
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file. Pass the path of your config.yaml to --config.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    return parse_config(text, path, strict)


def parse_config(text: str, path: str = "<config>", strict: bool = False) -> ProxyConfig:
    """Validate config text (``path`` is only used in messages)."""
    parser = _Parser(path)
    try:
        config = parser.parse(text)
    except ConfigError as exc:
        message = str(exc)
        if not message.startswith(path):
            message = f"{path}: {message}"
        raise ConfigError(message, parser.warnings) from None
    if strict and config.warnings:
        count = len(config.warnings)
        raise ConfigError(
            f"{path}: strict mode: {count} warning{'s' if count > 1 else ''} (listed above) "
            "count as errors; fix them, or start without --strict.",
            config.warnings,
        )
    return config


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


def validate_model_entry(entry: Any, label: str = "model") -> tuple[Deployment, list[str], list[str]]:
    """Validate one ``model_list`` entry exactly as a config's entries are (``os.environ/NAME``
    values resolved now): (the deployment, its warnings, the secret values it holds). Raises
    :class:`ValueError` whose message names the problem (the management API's 400)."""
    parser = _Parser(label)
    parser.skipped, parser.seen, parser.ids = [], {}, {}
    try:
        dep = parser.deployment([entry], 0, entry)
    except _Skip as skip:
        raise ValueError(str(skip)) from None
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix(f"{label}: ")) from None
    dep.line = None
    return dep, parser.warnings, [s for s in parser.secrets if s and len(s) >= 4]


class _Skip(Exception):
    """This deployment cannot be served (the message says why and how to fix it)."""

    def __init__(self, container: Any, key: Any, message: str) -> None:
        super().__init__(message)
        self.container = container
        self.key = key


_NUMBER_PARAMS = ("rpm", "tpm", "max_retries", "num_retries", "timeout", "stream_timeout", "stream_idle_timeout",
                  "order", "weight", "cooldown_time", "max_parallel_requests", "input_cost_per_token",
                  "output_cost_per_token")
#: Entry-level keys LiteLLM reads as if they were in litellm_params.
_ENTRY_PARAMS = ("rpm", "tpm", "order", "weight", "cooldown_time", "max_parallel_requests", "tags")
#: Router options that are also library settings: applied as settings (the Router reads them).
_ROUTER_ALIASES = {"request_timeout": "timeout", "max_retries": "num_retries"}


class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path
        self.secrets: list[str] = []
        self.warnings: list[str] = []
        self.callbacks: dict[str, list[str]] = {}
        self.key_generate: dict[str, dict[str, Any]] = {}
        self.end_user_budget_id: str | None = None
        self.end_user_max_budget: float | None = None
        self.internal_user: dict[str, Any] = {}
        self.proxy_budget: dict[str, Any] = {}
        self.credentials: dict[str, dict] = {}

    def where(self, container: Any, key: Any) -> str:
        line = _line_of(container, key)
        path = (getattr(container, "key_sources", None) or {}).get(key) or getattr(container, "source", None) or self.path
        return f"{path}, line {line}" if line else path

    def fail(self, container: Any, key: Any, message: str) -> ConfigError:
        return ConfigError(f"{self.where(container, key)}: {message}")

    def warn(self, container: Any, key: Any, message: str) -> None:
        """One warning line: ``file, line N: message`` (``message`` starts with the key)."""
        self.warnings.append(f"{self.where(container, key)}: {message}")

    def check_keys(self, container: dict, keys: K.Keys, prefix: str) -> None:
        """Warn about each key of ``container`` that is not a used key of ``keys``."""
        for key in container:
            if key in keys.used:
                continue
            if key in keys.ignored:
                self.warn(container, key, f"{prefix}{key}: a LiteLLM setting llmrelay does not implement; ignored")
            else:
                self.unknown(container, key, keys, prefix)

    def unknown(self, container: Any, key: Any, keys: K.Keys | set[str], prefix: str,
                what: str = "unknown key; ignored") -> None:
        names = keys.all() if isinstance(keys, K.Keys) else keys
        hint = ""
        guess = K.suggest(key, names)
        if guess is not None:
            hint = f" (did you mean {guess!r}?)"
        elif isinstance(keys, K.Keys):
            other = K.other_section(key, keys.section)
            if other is not None:
                hint = f" (it belongs under {other}:)"
        self.warn(container, key, f"{prefix}{key}: {what}{hint}")

    def load_yaml(self, text: str, path: str) -> Any:
        """The YAML document of ``text`` (``path`` names it in messages), line numbers kept."""
        import yaml

        duplicates: list[tuple[int, Any, int]] = []
        try:
            data = yaml.load(text, Loader=_loader(duplicates))  # noqa: S506 - a SafeLoader subclass
        except ConfigError as exc:
            raise ConfigError(f"{path}, {exc}") from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = exc.problem or exc.context or "invalid YAML"
            raise ConfigError(
                f"{path}{line}: YAML syntax error: {problem}. Check the indentation and "
                "quoting there (values containing ': ' or '#' need quotes)."
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: YAML error: {exc}") from None
        for line, key, first in duplicates:
            self.warnings.append(
                f"{path}, line {line}: {key}: appears twice in the same mapping (first on line "
                f"{first}); the later value is used"
            )
        return data

    def include(self, data: _Map, files: Any) -> None:
        """LiteLLM's ``include:`` (a file or a list of files, relative to this config's
        directory): each file's sections are merged in, in order — a list extends the same
        section (``model_list``), anything else replaces it. Messages about what came from an
        included file name that file."""
        import os

        if isinstance(files, str):
            files = [files]
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise self.fail(data, "include", "include must be a file name or a list of file names")
        base = os.path.dirname(os.path.abspath(self.path)) if self.path != "<config>" else os.getcwd()
        for name in files:
            path = os.path.join(base, name)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                raise self.fail(data, "include", f"include: {name!r}: no such file (looked for {path})") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise self.fail(data, "include", f"include: {name!r}: cannot read it: {exc}") from None
            included = self.load_yaml(text, path)
            if included is None:
                continue
            if not isinstance(included, dict):
                raise ConfigError(f"{path}: an included file must be a mapping of config sections")
            _mark_source(included, path)
            for key, value in included.items():
                if key == "include":
                    self.warn(included, key, "include: an included file's own include is not read")
                    continue
                if isinstance(value, list) and isinstance(data.get(key), list):
                    data[key].extend(value)
                    if isinstance(data[key], _Seq) and isinstance(value, _Seq):
                        data[key].item_lines.extend(value.item_lines)
                else:
                    data[key] = value
                    data.key_lines[key] = _line_of(included, key) or 0
                    data.key_sources = {**(data.key_sources or {}), key: path}

    def parse(self, text: str) -> ProxyConfig:
        data = self.load_yaml(text, self.path)
        if data is None:
            data = _Map()
            data.key_lines = {}
        if not isinstance(data, dict):
            raise self.fail(data, None, "the config must be a mapping with a model_list: section")
        if "include" in data:
            self.include(data, data.pop("include"))
        for key in data:
            if key in K.TOP.ignored:
                self.warn(data, key, f"{key}: a LiteLLM section llmrelay does not implement; ignored")
            elif key not in K.TOP.used:
                self.unknown(data, key, K.TOP, "", "unknown top-level section; ignored")
        env = data.get("environment_variables")
        if env is not None:
            self.environment(data, env)
        if data.get("credential_list") is not None:
            self.credential_list(data, data["credential_list"])
        settings, router_from_settings = self.litellm_settings(data)
        cache_params = self.cache_settings(data)
        general = self.general_settings(data)
        router = self.router_settings(data)
        for key, value in router_from_settings.items():
            router.setdefault(key, value)  # router_settings wins
        deployments = self.model_list(data)
        self.check_router_references(data, router, deployments)
        return ProxyConfig(
            path=self.path,
            deployments=deployments,
            litellm_settings=settings,
            router_settings=router,
            cache_params=cache_params,
            master_key=general.get("master_key"),
            max_body_bytes=general.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES),
            allow_unauthenticated=general.get("allow_unauthenticated", False),
            secrets=sorted({s for s in self.secrets if s and len(s) >= 4}, key=len, reverse=True),
            warnings=self.warnings,
            general_settings=general,
            skipped=self.skipped,
            callbacks=self.callbacks,
            key_generate_params=self.key_generate,
            end_user_budget_id=self.end_user_budget_id,
            end_user_max_budget=self.end_user_max_budget,
            internal_user_settings=self.internal_user,
            proxy_budget=self.proxy_budget if self.proxy_budget.get("max_budget") else None,
        )

    # ------------------------------------------------------------------ values
    def resolve_env(self, container: Any, key: Any, value: Any, secret: bool = False, skip: bool = False) -> Any:
        """``os.environ/NAME`` → the variable's value (recursively in dicts and lists).

        An unset variable is a config error, or with ``skip`` (a deployment's values) a
        :class:`_Skip`: that deployment is left out and the others are served, as LiteLLM
        starts with such a deployment (its calls then fail)."""
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX):]
            if not name:
                raise self.fail(container, key, f"{value!r} names no variable; write os.environ/NAME")
            env = os.environ.get(name)
            if env is None and skip:
                raise _Skip(container, key, f"{key} refers to the environment variable {name}, which is not set "
                                            f"(export {name}=... to serve it)")
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
            return {k: self.resolve_env(value, k, v, secret, skip) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve_env(value, i, v, secret, skip) for i, v in enumerate(value)]
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

    def credential_list(self, data: Any, entries: Any) -> None:
        """LiteLLM's ``credential_list``: named ``credential_values`` (``api_key``, ``api_base``,
        ``api_version``…) that deployments take with ``litellm_params.litellm_credential_name``."""
        if not isinstance(entries, list):
            raise self.fail(data, "credential_list", "credential_list must be a list of entries with credential_name "
                                                     "and credential_values")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise self.fail(entries, i, "each credential_list entry must be a mapping with credential_name and "
                                            "credential_values")
            name, values = entry.get("credential_name"), entry.get("credential_values")
            if not isinstance(name, str) or not name:
                raise self.fail(entry, "credential_name" if "credential_name" in entry else None,
                                "credential_list entries need a credential_name (the name deployments use in "
                                "litellm_params.litellm_credential_name)")
            if not isinstance(values, dict):
                raise self.fail(entry, "credential_values" if "credential_values" in entry else None,
                                f"credential {name!r}: credential_values must be a mapping (api_key, api_base…)")
            if name in self.credentials:
                raise self.fail(entry, "credential_name", f"credential_name {name!r} is listed twice")
            for key in entry:
                if key not in ("credential_name", "credential_values", "credential_info"):
                    self.warn(entry, key, f"credential_list.{name}.{key}: unknown key; ignored "
                                          "(use credential_name, credential_values, credential_info)")
            self.credentials[name] = values

    def section(self, data: Any, name: str) -> dict:
        raw = data.get(name)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise self.fail(data, name, f"{name} must be a mapping (key: value lines indented under it)")
        return raw

    # ------------------------------------------------------------------ model_list
    def model_list(self, data: Any) -> list[Deployment]:
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
        self.skipped: list[str] = []
        self.seen: dict[Any, int | None] = {}
        self.ids: dict[str, int | None] = {}
        only: tuple[_Skip, str] | None = None
        for i, entry in enumerate(models):
            try:
                out.append(self.deployment(models, i, entry))
            except _Skip as skip:
                name = entry.get("model_name") if isinstance(entry, dict) else None
                label = f"model {name!r}" if isinstance(name, str) else f"model_list entry {i + 1}"
                message = f"{label}: {skip}; this deployment is skipped, the others are served"
                self.skipped.append(message)
                self.warn(skip.container, skip.key, message)
                only = (skip, label)
        if models and not out:
            if len(models) == 1 and only is not None:  # (the one reason, where it is)
                raise self.fail(only[0].container, only[0].key, f"{only[1]}: {only[0]}; no other model to serve")
            raise self.fail(
                data, "model_list",
                f"none of the {len(models)} model_list entries can be served (the warnings above say why)",
            )
        return out

    def deployment(self, models: list, i: int, entry: Any) -> Deployment:
        from ..exceptions import BadRequestError
        from ..providers import registry

        if not isinstance(entry, dict):
            raise _Skip(models, i, "each model_list entry must be a mapping with model_name and litellm_params")
        for key in entry:
            if not K.MODEL_ENTRY.known(key):
                self.unknown(entry, key, K.MODEL_ENTRY, f"model_list[{i}].",
                             "unknown key; ignored (use model_name, litellm_params, model_info)")
        name = entry.get("model_name")
        if not isinstance(name, str) or not name.strip():
            raise _Skip(entry, "model_name", "model_name must be a non-empty string (the name clients ask for)")
        params = entry.get("litellm_params")
        if not isinstance(params, dict):
            raise _Skip(entry, "litellm_params" if "litellm_params" in entry else None,
                        "litellm_params must be a mapping with at least model: provider/model")
        model = self.resolve_env(params, "model", params.get("model"), skip=True)
        if not isinstance(model, str) or not model.strip():
            raise _Skip(params, "model" if "model" in params else None,
                        "litellm_params.model must be a string like 'openai/gpt-4o'")
        provider = self.provider_of(params, model, registry, BadRequestError)
        resolved = {"model": model}
        for key, value in params.items():
            if key != "model":
                resolved[key] = self.resolve_env(params, key, value, secret=_secret_name(str(key)), skip=True)
                self.check_param(params, key)
        for key in _ENTRY_PARAMS:
            if key in entry and key not in resolved:
                resolved[key] = self.resolve_env(entry, key, entry[key], skip=True)
        credential = resolved.pop("litellm_credential_name", None)
        if credential is not None:
            values = self.credentials.get(credential) if isinstance(credential, str) else None
            if values is None:  # (as in LiteLLM: the deployment is served with what its own params give)
                known = ", ".join(sorted(self.credentials)) or "none: the config has no credential_list"
                self.warn(params, "litellm_credential_name",
                          f"litellm_params.litellm_credential_name: {credential!r} names no credential_list entry "
                          f"(known: {known}); ignored, the deployment uses its own litellm_params")
                values = {}
            for key, value in values.items():  # (what litellm_params give themselves wins)
                if key not in resolved:
                    resolved[key] = self.resolve_env(values, key, value, secret=_secret_name(str(key)), skip=True)
                    self.check_param(values, key)
        self.check_values(params, resolved)
        info = entry.get("model_info") or {}
        if not isinstance(info, dict):
            raise _Skip(entry, "model_info", "model_info must be a mapping")
        for key in info:
            if not K.MODEL_INFO.known(key):
                self.unknown(info, key, K.MODEL_INFO, "model_info.", "unknown key; kept as information only")
        info = {k: self.resolve_env(info, k, v, skip=True) for k, v in info.items()}
        line = _line_of(models, i)
        model_id = info.get("id")
        if model_id is not None:
            model_id = info["id"] = str(model_id)
            if model_id in self.ids:
                raise _Skip(info, "id", f"model_info.id {model_id!r} is already used on line {self.ids[model_id]}")
            self.ids[model_id] = line
        identity = (name, _freeze(resolved))
        if identity in self.seen:
            raise _Skip(models, i, f"the same deployment is already listed on line {self.seen[identity]}")
        self.seen[identity] = line
        return Deployment(name, resolved, dict(info), provider, line)

    def provider_of(self, params: dict, model: str, registry: Any, bad_request: type) -> str:
        """The provider prefix of a deployment; :class:`_Skip` when it cannot be served."""
        if model == "*" or model.endswith("/*") and model[:-2] in registry.PROVIDERS:
            provider = "*" if model == "*" else model[:-2]
        else:
            try:
                provider, _ = registry.resolve(model, params.get("custom_llm_provider"))
            except bad_request as exc:
                raise _Skip(params, "model", exc.message) from None
        if provider == "*":
            if params.get("api_key") and not (params.get("api_base") or params.get("base_url")):
                raise _Skip(params, "model", "a catch-all model '*' with an api_key needs an api_base (otherwise "
                                             "the key would go to whichever provider a client names); use "
                                             "'openai/*' and the like to serve one provider's models")
            return provider
        needed = PROVIDER_EXTRAS.get(provider)
        if needed is not None and not _importable(needed[0]):
            raise _Skip(params, "model", f"the {provider} provider needs {needed[0]}, which is not installed: "
                                         f"pip install 'llmrelay[{needed[1]}]'")
        if provider == "vertex_ai" and not (params.get("vertex_access_token") or params.get("api_key")
                                            or os.environ.get("VERTEXAI_ACCESS_TOKEN")) \
                and not _importable("google.auth"):
            raise _Skip(params, "model", "vertex_ai without vertex_access_token needs google-auth for its "
                                         "credentials: pip install 'llmrelay[vertex]'")
        try:
            registry.get_provider(provider)
        except ImportError as exc:
            raise _Skip(params, "model", f"the provider {provider!r} cannot be loaded ({exc}); "
                                         "install its optional dependencies") from None
        return provider

    def check_param(self, params: dict, key: Any) -> None:
        from ..providers.base import OPENAI_PARAMS

        known = LITELLM_PARAMS.get(key)
        if known is not None:
            if known[0] == "accepted":
                self.warn(params, key, f"litellm_params.{key}: {known[1]}; a LiteLLM feature llmrelay does not "
                                       "implement: ignored, never sent upstream")
        elif key not in OPENAI_PARAMS and key not in PROVIDER_BODY_PARAMS:
            self.unknown(params, key, set(LITELLM_PARAMS) | OPENAI_PARAMS, "litellm_params.",
                         "not a parameter llmrelay knows; passed to the provider as it is")

    def check_values(self, params: dict, resolved: dict) -> None:
        for key in _NUMBER_PARAMS:
            value = resolved.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise _Skip(params, key, f"{key} must be a non-negative number, got {value!r}")
        tags = resolved.get("tags")
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise _Skip(params, "tags", f"tags must be a list of strings, got {tags!r}")
        verify = resolved.get("ssl_verify")
        if verify is not None and not isinstance(verify, bool):
            if not isinstance(verify, str) or not os.path.exists(verify):
                raise _Skip(params, "ssl_verify",
                            f"ssl_verify must be true, false or the path of a CA bundle file, got {verify!r}")
        for key in ("headers", "extra_headers", "extra_body"):
            value = resolved.get(key)
            if value is not None and not isinstance(value, dict):
                raise _Skip(params, key, f"{key} must be a mapping, got {value!r}")

    # ------------------------------------------------------------------ settings
    def litellm_settings(self, data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(library settings, router options found in litellm_settings)."""
        raw = self.section(data, "litellm_settings")
        out: dict[str, Any] = {}
        router: dict[str, Any] = {}
        self.check_keys(raw, K.LITELLM_SETTINGS, "litellm_settings.")
        for key, value in raw.items():
            if key not in K.LITELLM_SETTINGS.used or key in _CACHE_SETTINGS:
                continue  # the cache's keys: see cache_settings()
            if key in CALLBACK_SETTINGS:
                self.callbacks[key] = self.callback_names(raw, key, value)
                continue
            if key in KEY_GENERATE_SETTINGS:
                value = self.resolve_env(raw, key, value)
                if value is not None and not isinstance(value, dict):
                    raise self.fail(raw, key, f"litellm_settings.{key} must be a mapping of /key/generate "
                                              f"fields (max_budget: 10, duration: 30d, …), got {value!r}")
                self.key_generate[key] = dict(value or {})
                self.check_key_generate(raw, key, self.key_generate[key])
                continue
            value = self.resolve_env(raw, key, value, secret=key == "api_key")
            if key == "max_end_user_budget_id":
                if value is not None and (not isinstance(value, str) or not value):
                    raise self.fail(raw, key, f"litellm_settings.{key} must be a budget tier's id (made with "
                                              f"/budget/new), got {value!r}")
                self.end_user_budget_id = value
                continue
            if key in INTERNAL_USER_SETTINGS:
                self.internal_user[key] = self.internal_user_setting(raw, key, value)
                continue
            if key in PROXY_BUDGET_SETTINGS:
                if value is not None:
                    self.proxy_budget[key] = self.budget_setting(raw, key, value)
                continue
            if key == "max_end_user_budget":
                self.end_user_max_budget = self.budget_setting(raw, key, value)
                continue
            if key in K.ROUTER_KEYS_IN_LITELLM_SETTINGS and key not in _settings.KNOWN_SETTINGS:
                if key in _router_options():
                    router[key] = value
                else:
                    self.warn(raw, key, f"litellm_settings.{key}: a LiteLLM router option llmrelay does not "
                                        "implement; ignored")
                continue
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
        return out, router

    def internal_user_setting(self, raw: Any, key: str, value: Any) -> Any:
        """``default_internal_user_params`` (a mapping of /user/new fields), ``max_internal_user_budget``
        (USD), ``internal_user_budget_duration`` (a duration), checked."""
        if value is None:
            return None
        if key == "default_internal_user_params":
            if not isinstance(value, dict):
                raise self.fail(raw, key, f"litellm_settings.{key} must be a mapping of /user/new fields "
                                          f"(max_budget: 10, models: [...], …), got {value!r}")
            self.check_key_generate(raw, key, value)
            return dict(value)
        return self.budget_setting(raw, key, value)

    def budget_setting(self, raw: Any, key: str, value: Any) -> Any:
        """A budget setting of ``litellm_settings``: a duration for the keys that end in
        ``duration``, else a number of USD ≥ 0 (a float); None stays None."""
        from .budgets import DurationError, parse_duration

        if value is None:
            return None
        if key.endswith("duration"):
            try:
                parse_duration(value)
            except DurationError as exc:
                raise self.fail(raw, key, f"litellm_settings.{key}: {exc}") from None
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise self.fail(raw, key, f"litellm_settings.{key} must be a number ≥ 0 (USD), got {value!r}")
        return float(value)

    def check_key_generate(self, raw: Any, key: str, values: dict[str, Any]) -> None:
        """The numbers and durations of ``default_/upperbound_key_generate_params``."""
        from .budgets import DurationError, parse_duration

        for name, value in values.items():
            if value is None:
                continue
            if name in ("max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit"):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise self.fail(raw, key, f"litellm_settings.{key}.{name} must be a number ≥ 0, got {value!r}")
            elif name in ("duration", "budget_duration"):
                try:
                    parse_duration(value)
                except DurationError as exc:
                    raise self.fail(raw, key, f"litellm_settings.{key}.{name}: {exc}") from None

    def callback_names(self, raw: Any, key: str, value: Any) -> list[str]:
        """``callbacks: [prometheus, otel, my_module.handler]`` (a single name is accepted too);
        names of LiteLLM integrations llmrelay does not have are dropped with a warning."""
        from ..integrations.dispatch import BUILTIN

        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(
                raw, key,
                f"litellm_settings.{key} must be a list of callback names: built-in ones (prometheus, otel, "
                f"langfuse_otel) or module.attribute paths of CustomLogger instances, got {value!r}",
            )
        names = []
        for name in (v.strip() for v in value):
            if name.lower() == "langfuse" and not (os.environ.get("LANGFUSE_PUBLIC_KEY")
                                                   and os.environ.get("LANGFUSE_SECRET_KEY")):
                # (LiteLLM's own logger, common in copied configs: off, not a start error, without its keys)
                self.warn(raw, key, f"litellm_settings.{key}: the callback 'langfuse' needs LANGFUSE_PUBLIC_KEY and "
                                    "LANGFUSE_SECRET_KEY in the environment, which are not set; it is off")
            elif name.lower() in BUILTIN or "." in name:
                names.append(name)
            else:
                self.warn(raw, key, f"litellm_settings.{key}: the callback {name!r} is a LiteLLM integration "
                                    f"llmrelay does not implement; ignored (built in: {', '.join(sorted(BUILTIN))}, "
                                    "or module.attribute of your own CustomLogger)")
        return names

    def cache_settings(self, data: Any) -> dict[str, Any] | None:
        """``litellm_settings.cache`` + ``cache_params`` → ``Cache(**kwargs)``, or None."""
        from .response_cache import cache_settings

        raw = self.section(data, "litellm_settings")
        missing = _unset_env(raw.get("cache_params")) if raw.get("cache") is True else []
        if missing:
            self.warn(raw, "cache_params", f"litellm_settings.cache_params: refers to the environment variable "
                                           f"{missing[0]}, which is not set; the response cache is off")
            return None
        params = self.resolve_env(raw, "cache_params", raw.get("cache_params"))
        try:
            out = cache_settings(raw.get("cache"), params)
        except ValueError as exc:
            raise self.fail(raw, "cache_params" if "cache_params" in raw else "cache", str(exc)) from None
        if out:
            self.secrets.extend(_redis_secrets(out))
        return out

    def general_settings(self, data: Any) -> dict[str, Any]:
        raw = self.section(data, "general_settings")
        self.check_keys(raw, K.GENERAL_SETTINGS, "general_settings.")
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "database_url" and isinstance(value, str) and value.startswith(ENV_PREFIX) \
                    and value[len(ENV_PREFIX):] and os.environ.get(value[len(ENV_PREFIX):]) is None:
                self.warn(raw, key, f"general_settings.database_url: the environment variable "
                                    f"{value[len(ENV_PREFIX):]} is not set; virtual keys and spend use the "
                                    "SQLite file in the data directory instead (docs/keys.md)")
                continue
            if key in K.GENERAL_SETTINGS.used and key != "master_key":
                out[key] = self.resolve_env(raw, key, value, secret=key == "database_url")
        for key, types in _DB_SETTING_TYPES.items():
            value = out.get(key)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool) and bool not in types):
                names = " or ".join(t.__name__ for t in types)
                raise self.fail(raw, key, f"general_settings.{key} must be {names}, got {value!r}")
        if "master_key" in raw and raw["master_key"] is not None:
            key = self.resolve_env(raw, "master_key", raw["master_key"], secret=True)
            if not isinstance(key, str) or not key:
                raise self.fail(raw, "master_key", "master_key must be a non-empty string (e.g. sk-...)")
            out["master_key"] = key
        elif os.environ.get("LITELLM_MASTER_KEY", "").strip():
            # LiteLLM's documented alternative to the config key: a gateway its operator meant to
            # lock must not come up open
            out["master_key"] = os.environ["LITELLM_MASTER_KEY"].strip()
            self.secrets.append(out["master_key"])
        for key in ("allowed_routes", "admin_only_routes"):
            if out.get(key) is not None:
                from .route_policy import parse_routes

                try:
                    out[key], unknown = parse_routes(out[key], f"general_settings.{key}")
                except ValueError as exc:
                    raise self.fail(raw, key, str(exc)) from None
                for name in unknown:
                    self.warn(raw, key, f"general_settings.{key}: {name} is not a route group llmrelay knows; "
                                        "ignored (known: LiteLLMRoutes.public_routes, openai_routes, llm_api_routes, "
                                        "info_routes, management_routes, spend_tracking_routes)")
        interval = out.get("health_check_interval")
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0):
            raise self.fail(raw, "health_check_interval",
                            f"general_settings.health_check_interval must be a positive number of seconds, got {interval!r}")
        for key in ("max_parallel_requests", "global_max_parallel_requests"):
            value = out.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise self.fail(raw, key, f"general_settings.{key} must be a positive integer, got {value!r}")
        size = out.get("max_request_size_mb")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
                raise self.fail(raw, "max_request_size_mb", f"max_request_size_mb must be a positive number, got {size!r}")
            out["max_body_bytes"] = int(size * 1024 * 1024)
        header = _customer_header(out.get("user_header_mappings"), out.get("user_header_name"))
        if isinstance(header, str):
            out["customer_header"] = header.strip().lower().encode("latin-1")
        elif header is not None:
            raise self.fail(raw, header[0], header[1])
        if out.get("allowed_ips") is not None:
            from .ip_filter import parse_allowed_ips

            try:
                out["allowed_ips"] = parse_allowed_ips(out["allowed_ips"])
            except ValueError as exc:
                raise self.fail(raw, "allowed_ips", f"general_settings.{exc}") from None
        for key in ("allow_unauthenticated", "always_include_stream_usage", "enforce_user_param",
                    "use_x_forwarded_for", "background_health_checks"):
            if out.get(key) is not None and not isinstance(out[key], bool):
                raise self.fail(raw, key, f"{key} must be true or false")
        store_models = out.get("store_model_in_db")
        if isinstance(store_models, str):  # (LiteLLM reads "True" from the environment)
            store_models = store_models.strip().lower() == "true"
        if store_models is not None and not isinstance(store_models, bool):
            raise self.fail(raw, "store_model_in_db", "store_model_in_db must be true or false")
        if store_models is None and os.environ.get("STORE_MODEL_IN_DB", "").strip().lower() == "true":
            store_models = True  # LiteLLM's environment switch for the same setting
        out.pop("store_model_in_db", None)
        if store_models:
            out["store_model_in_db"] = True
        if "always_include_stream_usage" not in out and os.environ.get("LITELLM_ENFORCE_STREAMED_USAGE", "").strip().lower() == "true":
            out["always_include_stream_usage"] = True  # LiteLLM's environment switch for the same setting
        return out

    def router_settings(self, data: Any) -> dict[str, Any]:
        raw = self.section(data, "router_settings")
        implemented = _router_options()
        out: dict[str, Any] = {}
        redis = [k for k in raw if str(k).startswith("redis_")]
        missing = [(k, name) for k in redis for name in _unset_env(raw[k])]
        if missing:
            key, name = missing[0]
            self.warn(raw, key, f"router_settings.{key}: refers to the environment variable {name}, which is not "
                                "set; shared state through Redis is off")
            raw = {k: v for k, v in raw.items() if k not in redis}
        for key, value in raw.items():
            if key in K.ROUTER_SETTINGS.used or key in implemented:
                out[key] = self.resolve_env(raw, key, value)
            elif key in K.ROUTER_SETTINGS.ignored:
                self.warn(raw, key, f"router_settings.{key}: a LiteLLM router option llmrelay does not "
                                    "implement; ignored")
            else:
                self.unknown(raw, key, K.ROUTER_SETTINGS, "router_settings.")
        for alias, name in _ROUTER_ALIASES.items():
            if alias in out:
                out.setdefault(name, out.pop(alias))
        self.secrets.extend(_redis_secrets({"password": out.get("redis_password"), "url": out.get("redis_url")}))
        return out

    def check_router_references(self, data: Any, router: dict[str, Any], deployments: list[Deployment]) -> None:
        """Fallbacks naming a group that is not served (e.g. skipped) are dropped with a warning."""
        names = {d.model_name for d in deployments}
        aliases = router.get("model_group_alias") or {}
        if isinstance(aliases, dict):
            names |= set(aliases)
        if any(d.provider == "*" or d.model_name.endswith("*") for d in deployments):
            return  # a wildcard group may serve any name
        container = data.get("router_settings") or data.get("litellm_settings") or data
        # (a fallback may also name one deployment by its model_info.id: LiteLLM's "fallback to
        # a specific model id")
        names |= {d.model_info["id"] for d in deployments if isinstance((d.model_info or {}).get("id"), str)}
        for what in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            value = router.get(what)
            if not isinstance(value, list):
                continue
            kept = []
            for item in value:
                if not isinstance(item, dict):
                    kept.append(item)
                    continue
                fixed = {}
                for group, targets in item.items():
                    targets = [targets] if isinstance(targets, str) else targets
                    if not isinstance(targets, list):
                        fixed[group] = targets
                        continue
                    good = [t for t in targets if t in names]
                    for target in targets:
                        if target not in names:
                            self.warn(container, what, f"{what}: {group!r} falls back to {target!r}, which is "
                                                       "not a served model_name; that fallback is dropped")
                    if good:
                        fixed[group] = good
                if fixed:
                    kept.append(fixed)
            router[what] = kept
        default = router.get("default_fallbacks")
        if isinstance(default, list):
            for target in default:
                if target not in names:
                    self.warn(container, "default_fallbacks", f"default_fallbacks: {target!r} is not a served "
                                                              "model_name; dropped")
            router["default_fallbacks"] = [t for t in default if t in names]


def _unset_env(value: Any) -> list[str]:
    """The ``os.environ/NAME`` references in ``value`` whose variable is not set."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        return [name] if name and name not in os.environ else []
    if isinstance(value, dict):
        return [n for v in value.values() for n in _unset_env(v)]
    if isinstance(value, list):
        return [n for v in value for n in _unset_env(v)]
    return []


def _redis_secrets(settings: dict[str, Any]) -> list[str]:
    """The password of Redis settings (given as ``password`` or inside ``url``)."""
    from urllib.parse import urlsplit

    out = [str(settings["password"])] if settings.get("password") else []
    try:
        password = urlsplit(str(settings.get("url") or "")).password
    except ValueError:
        password = None
    return out + [password] if password else out


@functools.lru_cache(maxsize=1)
def _router_options() -> frozenset[str]:
    """The Router's implemented options: its named parameters (so an option implemented there
    later is passed on without touching the tables here)."""
    import inspect

    from ..router import Router

    params = inspect.signature(Router.__init__).parameters
    return frozenset(n for n, p in params.items() if n not in ("self", "model_list") and p.kind is not p.VAR_KEYWORD)


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _secret_name(key: str) -> bool:
    key = key.lower()
    return (
        key.endswith("api_key") or key.endswith("access_key") or key.endswith("_token") and "max" not in key
        or any(word in key for word in ("secret", "password", "credential", "authorization", "api-key"))
    )


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value
