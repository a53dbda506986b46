"""Fixtures for the server self-tests."""

from servers.fixtures import loopback, openai_server  # noqa: F401
