"""token_counter with LiteLLM's keywords, and text counted wherever list-of-parts content has it."""

from __future__ import annotations

import llmrelay
from llmrelay.tokens import DEFAULT_IMAGE_TOKEN_COUNT, get_encoding

MODEL = "gpt-4o"
ENC = get_encoding(MODEL)
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def n(text: str) -> int:
    return len(ENC.encode_ordinary(text))


def count(**kwargs) -> int:
    return llmrelay.token_counter(model=MODEL, **kwargs)


def test_docs_example_runs_verbatim():
    """LiteLLM's token-usage page."""
    from llmrelay import token_counter

    messages = [{"user": "role", "content": "Hey, how's it going"}]
    print(token_counter(model="gpt-3.5-turbo", messages=messages))
    assert token_counter(model="gpt-3.5-turbo", messages=messages) > 0


def test_count_response_tokens_drops_the_reply_priming_and_tools():
    messages = [{"role": "assistant", "content": "Paris is sunny."}]
    full = count(messages=messages, tools=TOOLS)
    assert count(messages=messages, count_response_tokens=True) == 3 + n("assistant") + n("Paris is sunny.")
    assert count(messages=messages, tools=TOOLS, count_response_tokens=True) == full - 3 - (full - count(messages=messages))


def test_tool_choice():
    messages = [{"role": "user", "content": "hi"}]
    base = count(messages=messages, tools=TOOLS)
    assert count(messages=messages, tools=TOOLS, tool_choice="auto") == base
    assert count(messages=messages, tools=TOOLS, tool_choice="none") == base + 1
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert count(messages=messages, tools=TOOLS, tool_choice=named) == base + 7 + n("get_weather")


def test_anthropic_tool_result_blocks_with_nested_text():
    nested = [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18 degrees and sunny"}]},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "windy"},
        {"type": "text", "text": "Summarise."}]}]
    empty = [{"role": "user", "content": []}]
    assert count(messages=nested) - count(messages=empty) == n("18 degrees and sunny") + n("windy") + n("Summarise.")


def test_tool_messages_and_assistant_parts():
    tool = [{"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "18 degrees"}]}]
    tool_str = [{"role": "tool", "tool_call_id": "c1", "content": "18 degrees"}]
    assert count(messages=tool) == count(messages=tool_str)
    assistant = [{"role": "assistant", "content": [
        {"type": "thinking", "thinking": "The user wants weather."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]}]
    empty = [{"role": "assistant", "content": []}]
    assert count(messages=assistant) - count(messages=empty) == (
        n("The user wants weather.") + n("get_weather") + n('{"city":"Paris"}'))


def test_images_default_count_and_unknown_parts():
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    empty = count(messages=[{"role": "user", "content": []}])
    with_parts = [{"role": "user", "content": [image, audio]}]
    assert count(messages=with_parts, use_default_image_token_count=True) - empty == DEFAULT_IMAGE_TOKEN_COUNT == 250
    assert count(messages=with_parts, default_token_count=11) - count(messages=with_parts) == 11
    nested_image = [{"role": "user", "content": [{"type": "tool_result", "content": [image]}]}]
    assert count(messages=nested_image, use_default_image_token_count=True) - empty == 250


def test_message_objects_and_custom_tokenizer_keyword():
    message = llmrelay.Message(content="Hello there")
    assert count(messages=[message]) == count(messages=[{"role": "assistant", "content": "Hello there"}])
    assert llmrelay.token_counter(model=MODEL, text="hi", custom_tokenizer=None) == n("hi")
