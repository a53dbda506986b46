"""The framework tests run without the real LiteLLM: `import litellm` is llmrelay."""

from __future__ import annotations

import importlib.metadata
import sys

import llmrelay


def test_litellm_is_llmrelay_and_not_installed():
    import litellm

    assert litellm is llmrelay and sys.modules["litellm"] is llmrelay
    try:
        dist = importlib.metadata.distribution("litellm")
    except importlib.metadata.PackageNotFoundError:
        return
    raise AssertionError(
        f"the real litellm {dist.version} is installed; scripts/setup-env.sh installs the "
        "frameworks with --no-deps so that it never is"
    )
