"""Fixtures for the callback tests: a recording CustomLogger and clean callback lists."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import llmrelay
from llmrelay.integrations.custom_logger import CustomLogger
from llmrelay.integrations.dispatch import LIST_NAMES


class Recorder(CustomLogger):
    """Records every hook call as (hook name, kwargs, response, thread id)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, dict, Any, int]] = []
        self.first_seen = threading.Event()

    def _add(self, name: str, kwargs: Any, response: Any) -> None:
        self.events.append((name, kwargs, response, threading.get_ident()))
        self.first_seen.set()

    def names(self) -> list[str]:
        return [e[0] for e in self.events]

    def log_pre_api_call(self, model, messages, kwargs):
        self._add("pre", kwargs, None)

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._add("success", kwargs, response_obj)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._add("failure", kwargs, response_obj)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._add("async_success", kwargs, response_obj)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._add("async_failure", kwargs, response_obj)

    def outcomes(self) -> list[str]:
        return [n for n in self.names() if n != "pre"]


@pytest.fixture(autouse=True)
def clean_callbacks():
    saved = {name: list(getattr(llmrelay, name)) for name in LIST_NAMES}
    for name in LIST_NAMES:
        setattr(llmrelay, name, [])
    yield
    for name, value in saved.items():
        setattr(llmrelay, name, value)


@pytest.fixture
def recorder() -> Recorder:
    rec = Recorder()
    llmrelay.callbacks = [rec]
    return rec


def two_groups_config(upstream: str, down: str, callback: str) -> str:
    """Group ``m`` on ``upstream``; group ``flaky`` on ``down``, retried once, falling back to ``m``."""
    return f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/gpt-4o-mini, api_base: {upstream}/v1, api_key: sk-up}}
  - model_name: flaky
    litellm_params: {{model: openai/gpt-4o-mini, api_base: {down}/v1, api_key: sk-up}}
router_settings:
  disable_cooldowns: true
  num_retries: 1
  retry_after: 0
  fallbacks: [{{"flaky": ["m"]}}]
litellm_settings:
  callbacks: [{callback}]
"""
