"""LiteLLM's router fallback events (``CustomLogger.log_success_fallback_event`` /
``log_failure_fallback_event``, router_utils/fallback_event_handlers.py): called with
``original_model_group``, ``kwargs`` and ``original_exception`` when a fallback group answers
or fails — against fake upstreams, with the real transport."""

from __future__ import annotations

import pytest

import llmrelay as litellm
from llmrelay import Router
from llmrelay.integrations.custom_logger import CustomLogger
from llmrelay.integrations.dispatch import wait_pending
from router.conftest import MODES, STREAM, call, deployment
from servers.openai_server import error_reply


class FallbackLogger(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str, dict, BaseException]] = []

    async def log_success_fallback_event(self, original_model_group, kwargs, original_exception):
        self.events.append(("success", original_model_group, kwargs, original_exception))

    async def log_failure_fallback_event(self, original_model_group, kwargs, original_exception):
        self.events.append(("failure", original_model_group, kwargs, original_exception))


@MODES
@STREAM
async def test_success_fallback_event(upstreams, mode, stream):
    a, b = upstreams[:2]
    logger = FallbackLogger()
    litellm.callbacks = [logger]
    router = Router(model_list=[deployment(a), deployment(b, "backup")], fallbacks=[{"g": ["backup"]}])
    a.enqueue(error_reply(500))
    text, _ = await call(router, mode, stream, metadata={"team": "t1"})
    await wait_pending()
    assert text == "from B"
    assert [(e[0], e[1]) for e in logger.events] == [("success", "g")]
    kwargs, exc = logger.events[0][2], logger.events[0][3]
    assert kwargs["model"] == "backup"
    assert kwargs["metadata"] == {"team": "t1", "model_group": "backup"}
    assert kwargs["messages"] == [{"role": "user", "content": "hi"}]
    assert isinstance(exc, litellm.InternalServerError)
    # no fallback: no event
    logger.events.clear()
    assert (await call(router, mode, stream))[0] == "from A"
    await wait_pending()
    assert logger.events == []


@MODES
async def test_failure_fallback_event_per_failed_group(upstreams, mode):
    a, b, c = upstreams[:3]
    logger = FallbackLogger()
    litellm.callbacks = [logger]
    router = Router(model_list=[deployment(a), deployment(b, "b1"), deployment(c, "b2")],
                    fallbacks=[{"g": ["b1", "b2"]}])
    a.enqueue(error_reply(500))
    b.enqueue(error_reply(502))
    c.enqueue(error_reply(503))
    with pytest.raises(litellm.ServiceUnavailableError):
        await call(router, mode, False)
    await wait_pending()
    assert [(e[0], e[1], e[2]["model"]) for e in logger.events] == [("failure", "g", "b1"), ("failure", "g", "b2")]
    assert all(isinstance(e[3], litellm.InternalServerError) for e in logger.events)


async def test_a_raising_hook_does_not_break_the_call(upstreams):
    a, b = upstreams[:2]

    class Broken(CustomLogger):
        async def log_success_fallback_event(self, original_model_group, kwargs, original_exception):
            raise RuntimeError("boom")

    litellm.callbacks = [Broken()]
    router = Router(model_list=[deployment(a), deployment(b, "backup")], fallbacks=[{"g": ["backup"]}])
    a.enqueue(error_reply(500))
    assert (await call(router, "async", False))[0] == "from B"
    await wait_pending()
