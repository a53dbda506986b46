"""Pytest fixtures for the test servers.

Import them into a ``conftest.py`` to use them in a test folder::

    from servers.fixtures import loopback, openai_server  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from servers.loopback import Handler, LoopbackServer
from servers.openai_server import FakeOpenAIServer


@pytest.fixture
def loopback() -> Iterator[Callable[..., LoopbackServer]]:
    """A factory ``loopback(handler=None) -> LoopbackServer``; every server is stopped at teardown."""
    servers: list[LoopbackServer] = []

    def start(handler: Handler | None = None) -> LoopbackServer:
        server = LoopbackServer(handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A running :class:`FakeOpenAIServer` with default settings."""
    with FakeOpenAIServer() as server:
        yield server
