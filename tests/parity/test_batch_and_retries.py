"""LiteLLM's batch helpers and completion_with_retries (docs/completion/batching.md,
docs/completion/reliable_completions.md), against fake OpenAI servers."""

from __future__ import annotations

import asyncio

import pytest

import llmrelay as litellm
from servers.openai_server import FakeOpenAIServer, error_reply, slow_headers_reply


@pytest.fixture
def openai_env(monkeypatch):
    """Bare OpenAI model names reach a fake server (as OPENAI_API_BASE points them)."""
    with FakeOpenAIServer(text=lambda body: f"answer to {body['messages'][-1]['content']}") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_API_BASE", server.url + "/v1")
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        monkeypatch.setattr(litellm, "num_retries", 0)
        yield server


def test_batch_completion_docs_example(openai_env):
    """docs/completion/batching.md, "Send multiple completion calls to 1 model" (an OpenAI model)."""
    from llmrelay import batch_completion

    responses = batch_completion(
        model="gpt-3.5-turbo",
        messages = [
            [
                {
                    "role": "user",
                    "content": "good morning? "
                }
            ],
            [
                {
                    "role": "user",
                    "content": "what's the time? "
                }
            ]
        ]
    )
    assert [r.choices[0].message.content for r in responses] == ["answer to good morning? ", "answer to what's the time? "]
    assert len(openai_env.chat_requests) == 2


def test_batch_completion_returns_a_failed_calls_exception_in_its_place(openai_env):
    openai_env.enqueue(error_reply(400, "bad one"))
    responses = litellm.batch_completion(model="gpt-4o-mini", messages=[[{"role": "user", "content": "a"}]],
                                         max_tokens=5, temperature=0.2)
    assert isinstance(responses[0], litellm.BadRequestError)
    assert openai_env.chat_requests[0]["max_tokens"] == 5 and openai_env.chat_requests[0]["temperature"] == 0.2


def test_batch_completion_models_returns_the_first_answer(monkeypatch):
    """LiteLLM's deployments form: the first deployment to answer wins; a failing one is skipped
    and a slow one is not waited for."""
    monkeypatch.setattr(litellm, "num_retries", 0)
    with FakeOpenAIServer(text="slow") as slow, FakeOpenAIServer(api_key="another-key") as broken, \
            FakeOpenAIServer(text="fast") as fast:  # broken: every call a 401
        slow.enqueue(slow_headers_reply(1.5, stream=False))
        response = litellm.batch_completion_models(
            deployments=[{"model": "openai/gpt-4o", "api_base": s.url + "/v1", "api_key": "k"}
                         for s in (slow, broken, fast)],
            model_list=[],
            messages=[{"role": "user", "content": "Hey, how's it going"}],
        )
        assert response.choices[0].message.content == "fast"
        assert litellm.batch_completion_models(
            deployments=[{"model": "openai/gpt-4o", "api_base": broken.url + "/v1", "api_key": "k"}],
            model_list=[], messages=[{"role": "user", "content": "x"}]) is None


def test_batch_completion_models_over_models(openai_env):
    response = litellm.batch_completion_models(models=["gpt-3.5-turbo", "gpt-4o-mini"],
                                               messages=[{"role": "user", "content": "Hey, how's it going"}])
    assert response.choices[0].message.content == "answer to Hey, how's it going"


def test_batch_completion_models_raises_when_every_model_fails(monkeypatch):
    with FakeOpenAIServer(api_key="another-key") as server:  # every call a 401
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_API_BASE", server.url + "/v1")
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        monkeypatch.setattr(litellm, "num_retries", 0)
        with pytest.raises(litellm.AuthenticationError):
            litellm.batch_completion_models(models=["gpt-3.5-turbo", "gpt-4o-mini"],
                                            messages=[{"role": "user", "content": "x"}])
        assert len(server.requests) == 2


def test_batch_completion_models_all_responses_leaves_out_failures(openai_env):
    openai_env.enqueue(error_reply(400))
    responses = litellm.batch_completion_models_all_responses(
        models=["gpt-3.5-turbo", "gpt-4o-mini", "gpt-4o"], messages=[{"role": "user", "content": "write a poem"}],
        max_tokens=10,
    )
    assert len(responses) == 2
    assert {r.model for r in responses} <= {"gpt-3.5-turbo", "gpt-4o-mini", "gpt-4o"}
    assert litellm.batch_completion_models_all_responses(models="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(TypeError):
        litellm.batch_completion_models_all_responses(models=3, messages=[])


def test_completion_with_retries_retries_then_answers(openai_env):
    """docs/completion/reliable_completions.md: ``completion_with_retries(model=..., messages=...)``."""
    from llmrelay import completion_with_retries

    user_message = "Hello, whats the weather in San Francisco??"
    messages = [{"content": user_message, "role": "user"}]
    openai_env.enqueue(error_reply(500), error_reply(429))
    response = completion_with_retries(model="gpt-3.5-turbo", messages=messages)
    assert response.choices[0].message.content == "answer to " + user_message
    assert len(openai_env.chat_requests) == 3  # num_retries=3 attempts in all (LiteLLM's tenacity stop_after_attempt)


def test_completion_with_retries_gives_up_after_num_retries_attempts(openai_env):
    openai_env.enqueue(error_reply(500), error_reply(503), error_reply(500))
    with pytest.raises(litellm.ServiceUnavailableError):  # the last attempt's error
        litellm.completion_with_retries(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                        num_retries=2, retry_strategy="constant_retry")
    assert len(openai_env.chat_requests) == 2
    with pytest.raises(ValueError):
        litellm.completion_with_retries(model="gpt-4o-mini", messages=[], retry_strategy="sometimes")


def test_acompletion_with_retries(openai_env):
    openai_env.enqueue(error_reply(500))
    response = asyncio.run(litellm.acompletion_with_retries(model="gpt-4o-mini",
                                                            messages=[{"role": "user", "content": "async"}]))
    assert response.choices[0].message.content == "answer to async"
    assert len(openai_env.chat_requests) == 2
