"""Config loading: LiteLLM-compatible keys, os.environ/ values, and one clear message per error."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay.proxy.config import ConfigError, parse_config
from proxy.harness import Gateway, run_cli

OK = """
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/CFG_TEST_KEY
      api_base: http://127.0.0.1:9/v1
      rpm: 100
    model_info:
      id: gpt-1
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "conf.yaml")
    return str(info.value)


def test_valid_config(monkeypatch):
    monkeypatch.setenv("CFG_TEST_KEY", "sk-from-env-123456")
    config = parse_config(OK + "litellm_settings:\n  drop_params: true\n  REPEATED_STREAMING_CHUNK_LIMIT: 7\n"
                          "general_settings:\n  master_key: sk-1234\nrouter_settings:\n  num_retries: 2\n")
    d = config.deployments[0]
    assert d.model_name == "gpt" and d.provider == "openai"
    assert d.litellm_params["api_key"] == "sk-from-env-123456"
    assert d.model_info == {"id": "gpt-1"}
    assert config.master_key == "sk-1234"
    assert config.router_settings == {"num_retries": 2}
    assert "sk-from-env-123456" in config.secrets
    old = (llmrelay.drop_params, llmrelay.REPEATED_STREAMING_CHUNK_LIMIT)
    try:
        config.apply_settings()
        assert llmrelay.drop_params is True and llmrelay.REPEATED_STREAMING_CHUNK_LIMIT == 7
    finally:
        llmrelay.drop_params, llmrelay.REPEATED_STREAMING_CHUNK_LIMIT = old


def test_missing_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("CFG_TEST_KEY", raising=False)
    message = error_of(OK)
    assert "conf.yaml, line 6" in message and "CFG_TEST_KEY" in message and "not set" in message


def test_a_deployment_whose_variable_is_unset_is_skipped_and_the_rest_served(monkeypatch):
    """As LiteLLM starts with such a deployment (its calls then fail), the gateway starts without
    it and says which variable to set; settings outside model_list stay errors."""
    monkeypatch.delenv("CFG_TEST_KEY", raising=False)
    monkeypatch.delenv("CFG_UNSET_MASTER", raising=False)
    config = parse_config(OK + "  - model_name: b\n    litellm_params: {model: openai/y, api_key: plain}\n",
                          "conf.yaml")
    assert [d.model_name for d in config.deployments] == ["b"]
    warning = next(w for w in config.warnings if "CFG_TEST_KEY" in w)
    assert "conf.yaml, line 6" in warning and "model 'gpt'" in warning and "skipped" in warning
    message = error_of(OK.replace("os.environ/CFG_TEST_KEY", "k") + "general_settings:\n  master_key: os.environ/CFG_UNSET_MASTER\n")
    assert "CFG_UNSET_MASTER" in message and "not set" in message


def test_yaml_syntax_error_names_line():
    message = error_of("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x\n")
    assert message.startswith("conf.yaml, line") and "YAML syntax error" in message


@pytest.mark.parametrize(
    "text, words",
    [
        ("litellm_settings:\n  drop_params: yes please\n" + OK, ["line 2", "drop_params must be bool"]),
        ("litellm_settings:\n  REPEATED_STREAMING_CHUNK_LIMIT: 0\n" + OK, ["at least 1"]),
        ("model_list:\n  - model_name: a\n    litellm_params:\n      model: nosuch/model\n",
         ["line 4", "'nosuch' is not a known provider", "no other model to serve"]),
        ("model_list:\n  - model_name: a\n    litellm_params:\n      model: nosuch/model\n"
         "  - model_name: b\n    litellm_params: {model: alsonot/y}\n",
         ["line 1", "none of the 2 model_list entries can be served"]),
        ("model_list: {a: 1}\n", ["model_list must be a list"]),
        ("- just a list\n", ["must be a mapping"]),
        ("general_settings: {}\n", ["no model_list"]),
    ],
)
def test_config_errors(monkeypatch, text, words):
    monkeypatch.setenv("CFG_TEST_KEY", "k")
    message = error_of(text)
    assert message.startswith("conf.yaml")
    for word in words:
        assert word in message, message


SECOND = "  - model_name: b\n    litellm_params: {model: openai/y}\n"


@pytest.mark.parametrize(
    "text, words",
    [
        ("litellm_settings:\n  foo_bar: 1\n" + OK, ["conf.yaml, line 2: litellm_settings.foo_bar: unknown key"]),
        ("litellm_settings:\n  drop_param: true\n" + OK, ["line 2", "did you mean 'drop_params'?"]),
        ("general_settings:\n  master_keyy: x\n" + OK, ["line 2", "general_settings.master_keyy",
                                                          "did you mean 'master_key'?"]),
        ("litellm_settings:\n  master_key: x\n" + OK, ["line 2", "belongs under general_settings"]),
        ("logging:\n  level: info\n" + OK, ["line 1", "logging: unknown top-level section"]),
        ("modle_list: []\n" + OK, ["line 1", "did you mean 'model_list'?"]),
        (OK + SECOND + "  - model_name: a\n    litellm_params:\n      model: nosuch/model\n",
         ["line 15", "model 'a'", "'nosuch' is not a known provider", "skipped"]),
        (OK + SECOND + "  - model_name: a\n", ["line 13", "litellm_params must be a mapping", "skipped"]),
        (OK + SECOND + "  - model_name: a\n    litellm_params: {api_base: x}\n", ["litellm_params.model"]),
        (OK + SECOND + "  - litellm_params: {model: openai/x}\n", ["model_name must be"]),
        (OK + SECOND + SECOND, ["line 13", "already listed on line 11"]),
        (OK + SECOND + "  - model_name: a\n    litellm_params: {model: openai/x, rpm: lots}\n",
         ["line 14", "rpm must be"]),
        (OK + "    extra: 1\n", ["line 11", "model_list[0].extra: unknown key"]),
        (OK + SECOND + "  - model_name: a\n    model_name: b\n    litellm_params: {model: openai/x}\n",
         ["line 14", "appears twice", "first on line 13"]),
        (OK + "      tier: gold\n      colour: blue\n", ["line 12", "model_info.colour"]),
        (OK + SECOND + "router_settings:\n  routing_stratgy: latency-based-routing\n",
         ["line 14", "did you mean 'routing_strategy'?"]),
    ],
)
def test_config_warnings_and_strict(monkeypatch, text, words):
    monkeypatch.setenv("CFG_TEST_KEY", "k")
    config = parse_config(text, "conf.yaml")
    joined = "\n".join(config.warnings)
    for word in words:
        assert word in joined, joined
    assert all("\n" not in w and w.startswith("conf.yaml, line ") for w in config.warnings), config.warnings
    with pytest.raises(ConfigError) as info:
        parse_config(text, "conf.yaml", strict=True)
    assert "strict" in str(info.value) and info.value.warnings == config.warnings


def test_ignored_litellm_settings_warn(monkeypatch):
    monkeypatch.setenv("CFG_TEST_KEY", "k")
    config = parse_config(OK + "litellm_settings:\n  success_callback: [datadog]\n"
                          "general_settings:\n  alerting: [slack]\n", "conf.yaml")
    assert any("success_callback" in w and "ignored" in w for w in config.warnings)
    assert any("alerting" in w for w in config.warnings)


def test_langfuse_without_its_keys_is_off_with_a_warning(monkeypatch):
    """LiteLLM's own `langfuse` logger (sent through Langfuse's OTel endpoint here) in a config
    copied without its keys: the gateway starts, says why it is off."""
    monkeypatch.setenv("CFG_TEST_KEY", "k")
    for name in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"):
        monkeypatch.setenv(name, "x")  # (so that the values environment_variables sets below are undone)
        monkeypatch.delenv(name)
    config = parse_config(OK + "litellm_settings:\n  success_callback: [langfuse]\n", "conf.yaml")
    assert config.callbacks.get("success_callback", []) == []
    assert any("'langfuse' needs LANGFUSE_PUBLIC_KEY" in w for w in config.warnings)
    config = parse_config(OK + "environment_variables:\n  LANGFUSE_PUBLIC_KEY: pk-1\n  LANGFUSE_SECRET_KEY: sk-2\n"
                          "litellm_settings:\n  success_callback: [langfuse]\n", "conf.yaml")
    assert config.callbacks["success_callback"] == ["langfuse"]


def test_database_settings_are_read(monkeypatch):
    monkeypatch.setenv("CFG_TEST_KEY", "k")
    monkeypatch.setenv("CFG_DB_URL", "postgresql://u:pw-secret@h/db")
    config = parse_config(OK + "general_settings:\n  database_url: os.environ/CFG_DB_URL\n"
                          "  store_prompts_in_spend_logs: true\n  proxy_batch_write_at: 2\n", "conf.yaml")
    settings = config.general_settings
    assert (settings["database_url"], settings["store_prompts_in_spend_logs"], settings["proxy_batch_write_at"]) == (
        "postgresql://u:pw-secret@h/db", True, 2)
    assert "postgresql://u:pw-secret@h/db" in config.secrets
    assert not config.warnings
    message = error_of(OK + "general_settings:\n  disable_spend_logs: 3\n")
    assert "disable_spend_logs must be bool" in message


def test_same_name_different_params_is_a_group(monkeypatch):
    monkeypatch.setenv("CFG_TEST_KEY", "k")
    config = parse_config(OK + "  - model_name: gpt\n    litellm_params: {model: openai/gpt-4o}\n")
    assert [len(v) for v in config.groups().values()] == [2]
    assert config.model_names == ["gpt"]


# ------------------------------------------------------------------ through the command
def test_cli_config_error_is_one_message_no_traceback(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n"
                    "litellm_settings:\n  not_a_setting: 3\n")
    status, err = run_cli(["--config", str(path), "--port", "0", "--strict"])
    assert status == 2
    assert "Traceback" not in err
    assert f"{path}, line 6" in err and "not_a_setting" in err
    assert len([line for line in err.splitlines() if line.strip()]) <= 2


def test_cli_missing_file_and_missing_env(tmp_path):
    status, err = run_cli(["--config", str(tmp_path / "nope.yaml")])
    assert status == 2 and "no such file" in err and "Traceback" not in err
    path = tmp_path / "c.yaml"
    path.write_text(OK)
    status, err = run_cli(["--config", str(path)], )
    assert status == 2 and "CFG_TEST_KEY" in err and "Traceback" not in err


def test_cli_router_settings_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(OK + "router_settings:\n  routing_strategy: no-such-strategy\n")
    status, err = run_cli(["--config", str(path)], env={"CFG_TEST_KEY": "k"})
    assert status == 2 and "router_settings" in err and "no-such-strategy" in err and "Traceback" not in err


def test_no_master_key_refuses_non_loopback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(OK)
    status, err = run_cli(["--config", str(path), "--host", "0.0.0.0", "--port", "0"], env={"CFG_TEST_KEY": "k"})
    assert status == 2 and "master_key" in err and "--allow-unauthenticated" in err


def test_start_prints_address_models_and_warnings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(OK + "litellm_settings:\n  json_logs: true\n  telemetry: false\n")
    with Gateway(str(path), env={"CFG_TEST_KEY": "k"}) as gw:
        text = "\n".join(gw.lines)
        assert "listening on http://127.0.0.1:" in text
        assert "models: gpt" in text
        assert "telemetry" in text and "no general_settings.master_key" in text
        assert "json_logs" not in text  # (used: the log lines are JSON)


def test_without_config_serves_local_model_or_says_why():
    from llmrelay.providers import registry

    if "local" in registry.PROVIDERS:
        with Gateway(None) as gw:
            assert "models: smollm2" in "\n".join(gw.lines)
    else:
        status, err = run_cli(["--port", "0"])
        assert status == 2 and "local" in err and "--config" in err and "Traceback" not in err


def test_missing_extra_skips_the_deployment_with_the_install_command(monkeypatch):
    from llmrelay.proxy import config as config_module

    monkeypatch.setitem(config_module.PROVIDER_EXTRAS, "bedrock", ("no_such_module_xyz", "bedrock"))
    monkeypatch.setenv("CFG_TEST_KEY", "k")
    config = parse_config(OK + "  - model_name: claude\n    litellm_params:\n"
                          "      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0\n", "conf.yaml")
    assert config.model_names == ["gpt"]
    [warning] = [w for w in config.warnings if "claude" in w]
    assert warning.startswith("conf.yaml, line 13:") and "pip install 'llmrelay[bedrock]'" in warning


def test_fallback_to_a_skipped_group_is_dropped(monkeypatch):
    monkeypatch.setenv("CFG_TEST_KEY", "k")
    config = parse_config(OK + "  - model_name: gone\n    litellm_params: {model: nosuch/x}\n"
                          "router_settings:\n  fallbacks: [{gpt: [gone]}]\n", "conf.yaml")
    assert config.router_settings["fallbacks"] == []
    assert any("falls back to 'gone'" in w for w in config.warnings)


def test_router_settings_in_litellm_settings_are_moved(monkeypatch):
    monkeypatch.setenv("CFG_TEST_KEY", "k")
    config = parse_config(OK + "  - model_name: b\n    litellm_params: {model: openai/y}\n"
                          "litellm_settings:\n  fallbacks: [{gpt: [b]}]\n  cooldown_time: 9\n  retry_policy: {}\n"
                          "router_settings:\n  cooldown_time: 3\n", "conf.yaml")
    assert config.router_settings["fallbacks"] == [{"gpt": ["b"]}]
    assert config.router_settings["cooldown_time"] == 3  # router_settings wins
    assert "fallbacks" not in config.litellm_settings
    assert config.router_settings["retry_policy"] == {}  # (LiteLLM's per-error retries: a Router option)
    assert not any("retry_policy" in w for w in config.warnings)


def test_litellm_master_key_environment_variable(monkeypatch):
    """LiteLLM's documented alternative to general_settings.master_key: the gateway is locked."""
    monkeypatch.setenv("CFG_TEST_KEY", "k")
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-from-litellm-env")
    config = parse_config(OK, "conf.yaml")
    assert config.master_key == "sk-from-litellm-env" and "sk-from-litellm-env" in config.secrets
    config = parse_config(OK + "general_settings:\n  master_key: sk-in-file\n", "conf.yaml")
    assert config.master_key == "sk-in-file"  # the config's own wins
    monkeypatch.setenv("LITELLM_MASTER_KEY", " ")
    assert parse_config(OK, "conf.yaml").master_key is None


def test_gateway_locked_by_litellm_master_key(tmp_path):
    import httpx

    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: k, "
                    "api_base: 'http://127.0.0.1:9/v1'}\n")
    with Gateway(str(path), env={"LITELLM_MASTER_KEY": "sk-env-master-1"}) as gw:
        assert not [line for line in gw.lines if "no general_settings.master_key" in line]
        assert httpx.get(gw.url + "/v1/models").status_code == 401
        ok = httpx.get(gw.url + "/v1/models", headers={"authorization": "Bearer sk-env-master-1"})
        assert ok.status_code == 200 and [m["id"] for m in ok.json()["data"]] == ["m"]


@pytest.mark.parametrize("how", ["config", "env"])
def test_json_logs(tmp_path, how):
    import json

    path = tmp_path / "c.yaml"
    # a deployment skipped at start logs a warning through the gateway's logger
    text = OK + ("litellm_settings:\n  json_logs: true\n" if how == "config" else "")
    path.write_text(text)
    env = {"CFG_TEST_KEY": "k", **({"JSON_LOGS": "True"} if how == "env" else {})}
    with Gateway(str(path), env=env, args=["--log-level", "debug"]) as gw:
        import httpx

        httpx.get(gw.url + "/v1/models")
        gw.wait_log(lambda r: r.get("path") == "/v1/models")
        lines = [line for line in gw.lines if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    logged = [r for r in records if "level" in r and "message" in r]
    assert logged, gw.lines
    assert all(set(r) >= {"timestamp", "level", "name", "message"} for r in logged)


def test_json_logs_must_be_a_bool():
    with pytest.raises(ConfigError, match="json_logs must be bool"):
        parse_config(OK + "litellm_settings:\n  json_logs: yes please\n")
