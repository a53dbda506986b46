"""A deployment's prepared stream plan (``llmrelay.main.StreamPlan``, issue 18) sends what the
general path (``acompletion`` with the router's keyword arguments) sends, fails as it fails, and
steps aside when the deployment's arguments or the module settings it read change."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay import Router
from llmrelay.main import StreamPlan
from servers.openai_server import error_reply

from .conftest import MESSAGES, deployment

DEP_PARAMS = {"temperature": 0.3, "top_p": 0.9, "top_k": 5, "organization": "org-1",
              "extra_headers": {"X-Team": "blue"}, "extra_body": {"guided": True}}
REQUEST = {"max_tokens": 12, "stream_options": {"include_usage": True}, "user": "u1", "top_p": None,
           "response_format": {"type": "json_object"}, "seed": 3}


def _router(server, **params):
    return Router(model_list=[deployment(server, **params)], stream_timeout=5)


async def _stream(router, **kwargs):
    stream = await router.acompletion(model="g", messages=MESSAGES, stream=True, **kwargs)
    text = "".join([(c.choices[0].delta.content or "") if c.choices else "" async for c in stream])
    return text, stream


def _sent(server, index=-1):
    request = [r for r in server.requests if r.path.endswith("/chat/completions")][index]
    headers = {k.lower(): v for k, v in request.headers.items()
               if k.lower() not in ("content-length", "host", "user-agent", "x-stainless-retry-count")}
    return request.target, headers, request.body


async def _planned_and_general(server, dep_params, request):
    router = _router(server, **dep_params)
    planned = await _stream(router, **dict(request))
    dep = router._groups["g"][0]
    assert isinstance(dep.plan, StreamPlan)  # (the stream went through the plan)
    sent_planned = _sent(server)
    dep.plan = None  # the general path from now on
    general = await _stream(router, **dict(request))
    assert dep.plan is None
    return planned, sent_planned, general, _sent(server)


async def test_planned_stream_sends_and_returns_what_the_general_path_does(upstreams):
    a = upstreams[0]
    (text1, s1), sent1, (text2, s2), sent2 = await _planned_and_general(a, DEP_PARAMS, REQUEST)
    assert sent1 == sent2
    body = a.chat_requests[-1]
    assert body["temperature"] == 0.3 and "top_p" not in body and body["top_k"] == 5 and body["guided"] is True
    assert body["max_tokens"] == 12 and body["stream"] is True
    assert sent1[1]["x-team"] == "blue" and sent1[1]["openai-organization"] == "org-1"
    assert text1 == text2 == "from A"
    h1, h2 = dict(s1._hidden_params), dict(s2._hidden_params)
    assert h1 == h2


async def test_plain_deployment(upstreams):
    a = upstreams[0]
    _, sent1, _, sent2 = await _planned_and_general(a, {}, {})
    assert sent1 == sent2


@pytest.mark.parametrize("status", [400, 401, 500])
async def test_planned_stream_fails_as_the_general_path_does(upstreams, status):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], stream_timeout=5, num_retries=0, allowed_fails=100)
    errors = []
    for plan in (False, None):  # planned, then general
        router._groups["g"][0].plan = plan
        a.enqueue(error_reply(status))
        with pytest.raises(llmrelay.exceptions.APIError) as info:
            await _stream(router)
        exc = info.value
        errors.append((type(exc), exc.status_code, str(exc), exc.attempts[0]["error"] if exc.attempts else None))
    assert isinstance(router._groups["g"][0].plan, type(None))
    assert errors[0] == errors[1]


async def test_invalid_request_params_refused_as_before(upstreams):
    a = upstreams[0]
    router = _router(a)
    messages = []
    for plan in (False, None):
        router._groups["g"][0].plan = plan
        with pytest.raises(llmrelay.exceptions.BadRequestError) as info:
            await _stream(router, temperature="hot")
        messages.append(str(info.value))
        with pytest.raises(llmrelay.exceptions.BadRequestError) as info:
            await router.acompletion(model="g", messages=[{"role": "wizard", "content": "x"}], stream=True)
        messages.append(str(info.value))
    assert messages[:2] == messages[2:]
    assert len(a.chat_requests) == 0


async def test_plan_steps_aside_when_settings_or_deployment_change(upstreams, monkeypatch):
    a = upstreams[0]
    router = _router(a)
    await _stream(router)
    dep = router._groups["g"][0]
    assert isinstance(dep.plan, StreamPlan)
    assert a.chat_requests[-1]["model"] == "gpt-4o-mini"
    # a model alias set afterwards applies, as on the general path
    monkeypatch.setattr(llmrelay, "model_alias_map", {"openai/gpt-4o-mini": "openai/gpt-4.1"}, raising=False)
    await _stream(router)
    assert a.chat_requests[-1]["model"] == "gpt-4.1"
    monkeypatch.setattr(llmrelay, "model_alias_map", {}, raising=False)
    # the deployment's own arguments changed (a rotated key): the new key is sent
    dep.kwargs["api_key"] = "sk-rotated"
    await _stream(router)
    assert _sent(a)[1]["authorization"] == "Bearer sk-rotated"
    # a request argument the plan does not take (a call argument): the general path
    await _stream(router, extra_headers={"X-Once": "1"})
    assert _sent(a)[1]["x-once"] == "1"


def _settings_read(function) -> set[str]:
    """The module settings ``function`` reads (``user.get("name", …)``, ``_DEFAULTS["name"]``)."""
    import ast
    import inspect
    import textwrap

    names = set()
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "user"):
            names.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "_DEFAULTS":
            names.add(node.slice.value)
    return names


def test_every_setting_prepare_call_reads_is_accounted_for_by_the_plan():
    """A plan is right only while ``plan_applies`` checks every module setting ``prepare_call``
    reads (or ``astream_planned`` passes its own value): a new setting read there must be added
    to both, else planned streams would ignore it. This test names it when that happens."""
    from llmrelay import main

    checked_by_plan = _settings_read(main.plan_applies)  # compared with the plan's
    given_by_plan = {"request_timeout", "num_retries"}  # (the router's timeout; retries 0: the router retries)
    read = _settings_read(main.prepare_call)
    assert read, "the test no longer finds prepare_call's settings reads"
    assert read <= checked_by_plan | given_by_plan, read - checked_by_plan - given_by_plan
