"""Fixtures and helpers for end-to-end tests of the library against loopback servers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import llmrelay
from servers.fixtures import loopback, openai_server  # noqa: F401
from servers.openai_server import FakeOpenAIServer

MODES = ["sync", "async"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Run a test once through ``completion`` and once through ``acompletion``."""
    return request.param


@pytest.fixture
def server() -> Any:
    with FakeOpenAIServer() as srv:
        yield srv


def kwargs_for(srv: FakeOpenAIServer, **overrides: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hey, how's it going?"}],
        "api_base": srv.url + "/v1",
        "api_key": "sk-test",
        "timeout": 10,
    }
    kw.update(overrides)
    return kw


def call(mode: str, **kw: Any) -> Any:
    """A non-streaming call in the given mode."""
    if mode == "sync":
        return llmrelay.completion(**kw)
    return asyncio.run(llmrelay.acompletion(**kw))


def stream_all(mode: str, **kw: Any) -> tuple[Any, list[Any]]:
    """Open a stream and read it to the end; returns (stream, chunks). Errors propagate."""
    kw["stream"] = True
    if mode == "sync":
        stream = llmrelay.completion(**kw)
        return stream, list(stream)

    async def run() -> tuple[Any, list[Any]]:
        stream = await llmrelay.acompletion(**kw)
        return stream, [chunk async for chunk in stream]

    return asyncio.run(run())


def stream_until_error(mode: str, **kw: Any) -> tuple[list[Any], BaseException | None, Any]:
    """Read a stream, catching the error raised from the iteration: (chunks, error, next-after-error)."""
    kw["stream"] = True
    chunks: list[Any] = []
    if mode == "sync":
        stream = llmrelay.completion(**kw)
        try:
            for chunk in stream:
                chunks.append(chunk)
        except llmrelay.LLMRelayError as exc:
            after = list(stream)
            return chunks, exc, after
        return chunks, None, []

    async def run() -> tuple[list[Any], BaseException | None, Any]:
        stream = await llmrelay.acompletion(**kw)
        try:
            async for chunk in stream:
                chunks.append(chunk)
        except llmrelay.LLMRelayError as exc:
            after = [c async for c in stream]
            return chunks, exc, after
        return chunks, None, []

    return asyncio.run(run())


def text_of(chunks: list[Any], index: int = 0) -> str:
    return "".join(
        c.choices[i].delta.content or ""
        for c in chunks
        for i in range(len(c.choices))
        if c.choices[i].index == index
    )
