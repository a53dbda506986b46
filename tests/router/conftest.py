"""Fixtures for the router tests: several fake OpenAI upstreams and a helper to call through."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from servers.openai_server import FakeOpenAIServer

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def upstreams() -> Iterator[list[FakeOpenAIServer]]:
    """Four fake OpenAI servers answering "from A" … "from D"."""
    servers = [FakeOpenAIServer(text=f"from {name}").start() for name in "ABCD"]
    yield servers
    for server in servers:
        server.stop()


def deployment(server: FakeOpenAIServer, group: str = "g", model: str = "openai/gpt-4o-mini", **params: Any) -> dict[str, Any]:
    """A ``model_list`` entry pointing at ``server`` (``model_info=`` goes to model_info)."""
    info = params.pop("model_info", None)
    entry = {
        "model_name": group,
        "litellm_params": {"model": model, "api_base": server.url + "/v1", "api_key": "sk-test", **params},
    }
    if info is not None:
        entry["model_info"] = info
    return entry


def counts(servers: list[FakeOpenAIServer]) -> list[int]:
    """Chat requests each server received."""
    return [len(s.chat_requests) for s in servers]


async def call(router: Any, mode: str, stream: bool, model: str = "g", **kwargs: Any) -> tuple[str, Any]:
    """Call through the router (sync or async), read a stream to its end; (text, response)."""
    if mode == "sync":
        response = router.completion(model=model, messages=MESSAGES, stream=stream, **kwargs)
        if stream:
            return "".join(c.choices[0].delta.content or "" for c in response), response
        return response.choices[0].message.content, response
    response = await router.acompletion(model=model, messages=MESSAGES, stream=stream, **kwargs)
    if stream:
        return "".join([c.choices[0].delta.content or "" async for c in response]), response
    return response.choices[0].message.content, response


MODES = pytest.mark.parametrize("mode", ["sync", "async"])
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
