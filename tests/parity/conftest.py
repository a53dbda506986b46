"""Fixtures for the LiteLLM parity tests: every test starts with llmrelay's module-level
settings (cache, callbacks) cleared, as LiteLLM's own tests reset ``litellm.*`` by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import llmrelay
from router.conftest import upstreams  # noqa: F401 - four fake upstreams answering "from A" … "from D"
from servers.openai_server import FakeOpenAIServer

_GLOBALS = ("callbacks", "success_callback", "failure_callback", "input_callback",
            "_async_success_callback", "_async_failure_callback")


@pytest.fixture(autouse=True)
def clean_litellm_globals() -> Iterator[None]:
    saved = {name: list(getattr(llmrelay, name, []) or []) for name in _GLOBALS}
    llmrelay.cache = None
    yield
    if llmrelay.cache is not None:
        try:
            llmrelay.cache.clear()
        finally:
            llmrelay.cache = None
    for name, value in saved.items():
        setattr(llmrelay, name, value)


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server
