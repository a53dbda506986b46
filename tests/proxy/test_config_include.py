"""LiteLLM's ``include:`` in config.yaml: other YAML files merged in (docs: proxy/config_management)."""

from __future__ import annotations

import openai
import pytest

from llmrelay.proxy.config import ConfigError, load_config
from proxy.harness import Gateway
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer

MODEL = "  - model_name: {name}\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: \"{base}\", api_key: k}}\n"


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_litellm_docs_example(tmp_path):
    # the parent has no model_list; the included file brings it (LiteLLM's documented example)
    write(tmp_path, "model_config.yaml", "model_list:\n" + MODEL.format(name="gpt-4o", base="http://h/v1")
          + MODEL.format(name="fake-anthropic-endpoint", base="http://h/v1"))
    parent = write(tmp_path, "parent_config.yaml",
                   "include:\n  - model_config.yaml\n\nlitellm_settings:\n  callbacks: [\"prometheus\"]\n")
    config = load_config(str(parent))
    assert config.model_names == ["gpt-4o", "fake-anthropic-endpoint"]
    assert config.callbacks.get("callbacks") == ["prometheus"]
    assert not any("include" in w for w in config.warnings)


def test_lists_extend_and_other_sections_are_replaced_in_order(tmp_path):
    write(tmp_path, "one.yaml", "model_list:\n" + MODEL.format(name="b", base="http://h/v1")
          + "general_settings:\n  master_key: sk-from-one\n")
    write(tmp_path, "sub/two.yaml", "model_list:\n" + MODEL.format(name="c", base="http://h/v1"))
    parent = write(tmp_path, "config.yaml", "include: [one.yaml, sub/two.yaml]\nmodel_list:\n"
                   + MODEL.format(name="a", base="http://h/v1") + "general_settings:\n  master_key: sk-parent\n")
    config = load_config(str(parent))
    assert config.model_names == ["a", "b", "c"]
    assert config.master_key == "sk-from-one"  # (as LiteLLM: an included section replaces the parent's)


def test_a_single_file_name(tmp_path):
    write(tmp_path, "m.yaml", "model_list:\n" + MODEL.format(name="only", base="http://h/v1"))
    config = load_config(str(write(tmp_path, "c.yaml", "include: m.yaml\n")))
    assert config.model_names == ["only"]


def test_messages_name_the_included_file_and_its_line(tmp_path):
    write(tmp_path, "m.yaml", "model_list:\n" + MODEL.format(name="ok", base="http://h/v1")
          + "  - model_name: bad\n    litellm_params: {model: nosuch/x}\n")
    config = load_config(str(write(tmp_path, "c.yaml", "include: [m.yaml]\n")))
    assert config.model_names == ["ok"]
    assert any(w.startswith(f"{tmp_path / 'm.yaml'}, line 5: model 'bad'") for w in config.warnings)


@pytest.mark.parametrize("files, files_text, words", [
    ("include: [missing.yaml]\n", {}, ["missing.yaml", "no such file"]),
    ("include: [bad.yaml]\n", {"bad.yaml": "model_list: [\n"}, ["bad.yaml", "YAML syntax error"]),
    ("include: [list.yaml]\n", {"list.yaml": "- a\n- b\n"}, ["list.yaml", "must be a mapping"]),
    ("include: {a: 1}\n", {}, ["include must be a file name or a list"]),
])
def test_errors(tmp_path, files, files_text, words):
    for name, text in files_text.items():
        write(tmp_path, name, text)
    with pytest.raises(ConfigError) as info:
        load_config(str(write(tmp_path, "c.yaml", files)))
    for word in words:
        assert word in str(info.value)


def test_an_included_files_own_include_is_not_read(tmp_path):
    write(tmp_path, "m.yaml", "include: [other.yaml]\nmodel_list:\n" + MODEL.format(name="m", base="http://h/v1"))
    config = load_config(str(write(tmp_path, "c.yaml", "include: [m.yaml]\n")))
    assert config.model_names == ["m"]
    assert any("m.yaml, line 1: include:" in w for w in config.warnings)


def test_the_gateway_serves_included_models(tmp_path):
    with FakeOpenAIServer(api_key="k") as upstream:
        write(tmp_path, "models.yaml", "model_list:\n" + MODEL.format(name="inc", base=upstream.url + "/v1"))
        parent = write(tmp_path, "config.yaml", "include:\n  - models.yaml\ngeneral_settings:\n  master_key: sk-inc-1\n")
        with Gateway(str(parent)) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-inc-1", max_retries=0)
            assert [m.id for m in client.models.list()] == ["inc"]
            resp = client.chat.completions.create(model="inc", messages=[{"role": "user", "content": "hi"}])
            assert resp.choices[0].message.content == DEFAULT_TEXT


def test_a_top_level_section_from_an_included_file_is_named_by_that_file(tmp_path):
    write(tmp_path, "m.yaml", "model_list:\n" + MODEL.format(name="m", base="http://h/v1") + "\n\nmy_section: {a: 1}\n")
    config = load_config(str(write(tmp_path, "c.yaml", "include: [m.yaml]\n")))
    assert any(w.startswith(f"{tmp_path / 'm.yaml'}, line 6: my_section: unknown top-level section")
               for w in config.warnings), config.warnings
