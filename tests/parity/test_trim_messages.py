"""``trim_messages`` (docs/completion/message_trimming.md and the cases of LiteLLM's
tests/local_testing/test_utils.py)."""

from __future__ import annotations

import copy

import llmrelay as litellm
from llmrelay.utils import token_counter, trim_messages


def get_token_count(messages, model):
    return token_counter(model=model, messages=messages)


def test_docs_usage_trims_to_the_models_window(monkeypatch):
    """docs/completion/message_trimming.md, "Usage" (the call answered by mock_response)."""
    from llmrelay import completion
    from llmrelay.utils import trim_messages

    model = "gpt-3.5-turbo"
    messages = [{"role": "system", "content": "Be brief."}] + [
        {"role": "user", "content": f"message {i} " + "word " * 3000} for i in range(20)]
    trimmed = trim_messages(messages, model)
    response = completion(model=model, messages=trimmed, mock_response="ok")
    assert response.choices[0].message.content == "ok"
    budget = int(litellm.get_model_info(model)["max_input_tokens"] * 0.75)
    assert get_token_count(trimmed, model) <= budget < get_token_count(messages, model)
    assert trimmed[0] == {"role": "system", "content": "Be brief."}  # the system message is kept first
    assert trimmed[-1]["content"] == messages[-1]["content"]  # the newest are kept, the oldest dropped
    assert len(trimmed) < len(messages)


def test_docs_usage_set_max_tokens():
    messages = [{"role": "user", "content": "This is a long message that will exceed the token limit."},
                {"role": "user", "content": "This is another long message that will also exceed the limit."}]
    trimmed = trim_messages(messages, "gpt-3.5-turbo", max_tokens=20)
    assert get_token_count(messages=trimmed, model="gpt-3.5-turbo") <= 20
    assert trim_messages(messages=messages, model="gpt-3.5-turbo", max_tokens=100) == messages


def test_large_trimming_multiple_messages():
    messages = [{"role": "user", "content": "This is a singlelongwordthatexceedsthelimit."}] * 5
    trimmed = trim_messages(messages, max_tokens=20, model="gpt-4-0613")
    assert get_token_count(messages=trimmed, model="gpt-4-0613") <= 20
    assert trim_messages([{"role": "user", "content": "This is a singlelongwordthatexceedsthelimit."}],
                         max_tokens=1, model="random") == []


def test_system_message_kept_and_user_message_shortened():
    messages = [
        {"role": "system", "content": "This is a short system message"},
        {"role": "user", "content": "This is a medium normal message, let's say litellm is awesome."},
    ]
    original = copy.deepcopy(messages)
    trimmed = trim_messages(messages, max_tokens=30, model="gpt-4-0613")
    assert len(trimmed) == 2
    assert trimmed[0]["content"] == "This is a short system message"
    assert ".." in trimmed[1]["content"] and get_token_count(trimmed, "gpt-4-0613") <= 30
    assert len(trim_messages(messages, max_tokens=12, model="gpt-4-0613")) == 1
    assert messages == original  # the caller's list is not changed


def test_trailing_tool_messages_are_kept_and_response_tokens_returned():
    messages = [
        {"role": "user", "content": "What's the weather in SF? " * 40},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    trimmed = trim_messages(messages, model="gpt-4o", max_tokens=30)
    assert trimmed[1:] == messages[1:]  # the tool call and its result, as they were
    assert ".." in trimmed[0]["content"] and len(trimmed[0]["content"]) < len(messages[0]["content"])
    kept, left = trim_messages([{"role": "user", "content": "word " * 200}], model="gpt-4o", max_tokens=50,
                               return_response_tokens=True)
    assert left == 50 - get_token_count(kept, "gpt-4o") and left >= 0


def test_unknown_model_without_max_tokens_is_left_alone():
    messages = [{"role": "user", "content": "word " * 10_000}]
    assert trim_messages(messages, model="no-such-model") == messages
