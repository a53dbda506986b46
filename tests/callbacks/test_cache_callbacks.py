"""Callbacks hear of cache hits: ``cache_hit`` is true and the hit costs nothing."""

from __future__ import annotations

import time

import llmrelay
from timing import DEADLINE

MESSAGES = [{"role": "user", "content": "price me"}]


def _wait(recorder, n: int) -> list:
    deadline = time.monotonic() + DEADLINE
    while len([e for e in recorder.events if e[0] == "success"]) < n:
        assert time.monotonic() < deadline, recorder.names()
        time.sleep(0.01)
    return [e for e in recorder.events if e[0] == "success"]


def test_hit_is_reported_with_cache_hit_and_no_cost(recorder):
    llmrelay.cache = llmrelay.Cache()
    try:
        kw = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "mock_response": "Cached words here."}
        first = llmrelay.completion(**kw)
        second = llmrelay.completion(**kw)
        assert second._hidden_params["cache_hit"] is True
        list(llmrelay.completion(**kw, stream=True))
        events = _wait(recorder, 3)
        assert [e[1]["cache_hit"] for e in events] == [False, True, True]
        assert events[0][1]["response_cost"] == first._hidden_params.get("response_cost")
        assert events[1][1]["response_cost"] == 0.0 and events[2][1]["response_cost"] == 0.0
        assert events[1][1]["standard_logging_object"]["cache_hit"] is True
    finally:
        llmrelay.cache = None
