"""Fixtures for provider tests."""

from servers.fixtures import loopback, openai_server  # noqa: F401
