"""Exceptions as LiteLLM documents them: also instances of the ``openai`` package's classes (when
openai is imported; ``import llmrelay`` never imports it), LiteLLM's constructor arguments, and
``.status_code`` / ``.code`` / ``.type`` / ``.message`` / ``.llm_provider`` / ``.model``."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import httpx
import openai
import pytest

import llmrelay
from e2e.conftest import kwargs_for
from servers.openai_server import context_length_exceeded_reply, error_reply, rate_limit_reply

PAIRS = [
    (llmrelay.APIError, openai.APIError),
    (llmrelay.APIConnectionError, openai.APIConnectionError),
    (llmrelay.Timeout, openai.APITimeoutError),
    (llmrelay.BadRequestError, openai.BadRequestError),
    (llmrelay.ContextWindowExceededError, openai.BadRequestError),
    (llmrelay.ContentPolicyViolationError, openai.BadRequestError),
    (llmrelay.UnsupportedParamsError, openai.BadRequestError),
    (llmrelay.AuthenticationError, openai.AuthenticationError),
    (llmrelay.PermissionDeniedError, openai.PermissionDeniedError),
    (llmrelay.NotFoundError, openai.NotFoundError),
    (llmrelay.UnprocessableEntityError, openai.UnprocessableEntityError),
    (llmrelay.RateLimitError, openai.RateLimitError),
    (llmrelay.InternalServerError, openai.InternalServerError),
    (llmrelay.BadGatewayError, openai.APIStatusError),
    (llmrelay.ServiceUnavailableError, openai.APIStatusError),
]


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_ours_are_openais(ours, theirs):
    exc = ours("boom", llm_provider="openai", model="gpt-4o")
    assert isinstance(exc, theirs) and isinstance(exc, openai.OpenAIError)
    assert type(exc) is ours  # still exactly our class
    with pytest.raises(theirs):
        raise exc
    if isinstance(exc, openai.APIStatusError):
        assert exc.response.status_code == exc.status_code  # openai's attributes are there too
    assert exc.request is not None and exc.body is None
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is ours and copy.message == "boom" and isinstance(copy, theirs)


def test_documented_example_except_openai_error_catches_real_errors(server):
    """LiteLLM's exception-mapping page: ``except openai.APITimeoutError`` and friends."""
    server.enqueue(rate_limit_reply(retry_after=1))
    with pytest.raises(openai.RateLimitError) as info:
        llmrelay.completion(**kwargs_for(server))
    assert info.value.llm_provider == "openai" and info.value.status_code == 429
    assert isinstance(info.value, llmrelay.RateLimitError)
    server.enqueue(context_length_exceeded_reply())
    with pytest.raises(openai.BadRequestError) as info2:
        llmrelay.completion(**kwargs_for(server))
    assert isinstance(info2.value, llmrelay.ContextWindowExceededError)
    server.enqueue(error_reply(503, "overloaded"))
    stream_error = None
    try:
        list(llmrelay.completion(**kwargs_for(server), stream=True))
    except openai.APIStatusError as exc:
        stream_error = exc
    assert isinstance(stream_error, llmrelay.ServiceUnavailableError)


def test_litellm_constructor_arguments_and_attributes():
    response = httpx.Response(429, headers={"retry-after": "2", "x-request-id": "req_1"},
                              request=httpx.Request("POST", "https://api.openai.com/v1/chat/completions"))
    # keyword form, as in LiteLLM's docs and tests
    e = llmrelay.RateLimitError(message="slow down", llm_provider="openai", model="gpt-4o", response=response,
                                litellm_debug_info="dbg", max_retries=3, num_retries=1)
    assert (e.status_code, e.code, e.type) == (429, "429", "throttling_error")
    assert (e.message, e.llm_provider, e.model) == ("slow down", "openai", "gpt-4o")
    assert (e.litellm_debug_info, e.max_retries, e.num_retries) == ("dbg", 3, 1)
    assert e.response is response and e.retry_after == 2 and e.request_id == "req_1"
    # positional form, in LiteLLM's order per class
    e = llmrelay.RateLimitError("slow", "anthropic", "claude")
    assert (e.llm_provider, e.model) == ("anthropic", "claude")
    e = llmrelay.BadRequestError("bad", "gpt-4o", "openai")
    assert (e.model, e.llm_provider, e.status_code, e.code) == ("gpt-4o", "openai", 400, "400")
    e = llmrelay.ContextWindowExceededError("long", "gpt-4o", "openai", response)
    assert isinstance(e, llmrelay.BadRequestError) and e.model == "gpt-4o"
    e = llmrelay.NotFoundError("nope", "gpt-9", "openai")
    assert e.model == "gpt-9" and e.status_code == 404
    e = llmrelay.Timeout("slow", "gpt-4o", "openai", exception_status_code=504)
    assert e.status_code == 504 and e.model == "gpt-4o"
    e = llmrelay.APIError(status_code=502, message="upstream", llm_provider="openai", model="gpt-4o")
    assert e.status_code == 502 and e.message == "upstream"
    e = llmrelay.APIError(500, "positional", "openai", "gpt-4o")
    assert (e.status_code, e.message, e.llm_provider, e.model) == (500, "positional", "openai", "gpt-4o")
    e = llmrelay.APIError("from a response", response=httpx.Response(418, request=response.request))
    assert e.status_code == 418
    e = llmrelay.APIConnectionError(message="refused", llm_provider="openai", model="m", request=response.request)
    assert e.request is response.request
    e = llmrelay.ContentPolicyViolationError("nope", "m", "openai", provider_specific_fields={"x": 1})
    assert e.provider_specific_fields == {"x": 1}
    e = llmrelay.RateLimitError("x", code="rate_limit_exceeded", error_type="requests")
    assert (e.code, e.type) == ("rate_limit_exceeded", "requests")  # the upstream's own, when it sent them
    with pytest.raises(TypeError):
        llmrelay.RateLimitError("x", not_an_argument=1)


_WITHOUT_OPENAI = textwrap.dedent(
    """
    import sys

    class Block:  # openai is not installed, as far as this interpreter can tell
        def find_spec(self, name, path=None, target=None):
            if name == "openai" or name.startswith("openai."):
                raise ModuleNotFoundError("No module named 'openai'")
            return None

    sys.meta_path.insert(0, Block())
    import llmrelay
    e = llmrelay.RateLimitError("slow", llm_provider="openai", model="m")
    assert type(e).__mro__[1:] == (llmrelay.APIError, llmrelay.LLMRelayError, Exception, BaseException, object), type(e).__mro__
    assert (e.status_code, e.code, e.type, e.message) == (429, "429", "throttling_error", "slow")
    try:
        llmrelay.completion(model="gpt-4o", messages=[{"role": "user", "content": "x"}], mock_response=e)
    except llmrelay.RateLimitError as caught:
        assert caught is e
    import pickle
    assert type(pickle.loads(pickle.dumps(e))) is llmrelay.RateLimitError
    assert "openai" not in sys.modules
    print("ok")
    """
)


def test_without_openai_installed():
    out = subprocess.run([sys.executable, "-c", _WITHOUT_OPENAI], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_import_llmrelay_does_not_import_openai_and_links_lazily():
    code = textwrap.dedent(
        """
        import sys, llmrelay
        assert "openai" not in sys.modules
        early = llmrelay.RateLimitError("early")
        import openai
        late = llmrelay.AuthenticationError("late")  # the first exception after openai is imported links
        assert isinstance(late, openai.AuthenticationError)
        assert isinstance(early, openai.RateLimitError)  # and covers those created before
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_openai_imported_first_links_at_import():
    code = "import openai, llmrelay; assert issubclass(llmrelay.RateLimitError, openai.RateLimitError); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_docs_exception_mapping_timeout_example(server):
    """LiteLLM's exception-mapping page, with ``import llmrelay as litellm`` and a slow upstream."""
    from servers.openai_server import slow_headers_reply

    import llmrelay as litellm

    server.enqueue(slow_headers_reply(2.0, stream=False), slow_headers_reply(2.0))
    base = {"api_base": server.url + "/v1", "api_key": "sk-test"}
    try:
        response = litellm.completion(
            model="gpt-4",
            messages=[{"role": "user", "content": "hello, write a 20 pageg essay"}],
            timeout=0.01,  # this will raise a timeout exception
            **base,
        )
    except openai.APITimeoutError as e:
        print("Passed: Raised correct exception. Got openai.APITimeoutError\nGood Job", e)
        print(type(e))
    else:
        pytest.fail(f"no timeout: {response}")
    try:
        response = litellm.completion(
            model="gpt-3.5-turbo",
            messages=[{"role": "user", "content": "hello, write a 20 pg essay"}],
            timeout=0.0001,  # this will raise an exception
            stream=True,
            **base,
        )
        for chunk in response:
            print(chunk)
    except openai.APITimeoutError as e:
        print("Passed: Raised correct exception. Got openai.APITimeoutError\nGood Job", e)
    else:
        pytest.fail("no timeout")
