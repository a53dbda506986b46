"""Fixtures shared by the scaling suites: one Redis namespace per test module, one fake upstream."""

from __future__ import annotations

import pytest

from servers.openai_server import FakeOpenAIServer
from servers.redis_server import SKIP_REASON, delete_matching, redis_url, unique_prefix


@pytest.fixture(scope="module")
def redis_conf(request):
    """(Redis URL, a key prefix of this module's own), its keys deleted afterwards."""
    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    prefix = unique_prefix(request.module.__name__.rsplit(".", 1)[-1])
    yield url, prefix
    delete_matching(url, prefix + "*")


@pytest.fixture(scope="module")
def upstream(request):
    """A fake OpenAI upstream that requires the module's ``UP_KEY``."""
    with FakeOpenAIServer(api_key=request.module.UP_KEY) as srv:
        yield srv
