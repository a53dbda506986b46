"""``stream_chunk_builder``: rebuild the whole ``chat.completion`` from streamed chunks.

One pass over the chunks, constant work per chunk (string pieces are collected in lists and
joined once at the end), so the total is linear in the number of chunks.
"""

from __future__ import annotations

from typing import Any, Iterable

from .streaming import normalize_finish_reason
from .types import ModelResponse, OpenAIObject, Usage, new_completion_id

__all__ = ["stream_chunk_builder"]


class _Choice:
    __slots__ = ("content", "reasoning", "tools", "function", "finish", "role", "refusal", "extra",
                 "thinking_blocks")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tools: dict[int, list] = {}  # tool index -> [id, name, [args], type]
        self.function: list | None = None  # [name, [args]]
        self.finish: str | None = None
        self.role = "assistant"
        self.refusal: list[str] = []
        self.extra: dict[str, Any] = {}
        self.thinking_blocks: list | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, OpenAIObject):
        return value.__dict__
    return value


def stream_chunk_builder(
    chunks: Iterable[Any], messages: list[dict[str, Any]] | None = None
) -> ModelResponse | None:
    """Combine streamed chunks (objects or dicts) into one ``ModelResponse``.

    Content and ``reasoning_content`` are concatenated; tool calls are merged by (choice
    index, tool index) keeping the first id and name and concatenating the arguments (a call
    that never got an id gets a generated one); ``finish_reason`` is the last one seen, else
    ``tool_calls`` when tool calls were streamed, else ``stop``. Usage is the upstream's when
    a chunk carried it, else counted offline (the prompt from ``messages``). ``[]`` → None;
    ``None`` raises ``APIError`` (as LiteLLM's does).
    """
    if chunks is None:
        from .exceptions import APIError

        raise APIError("stream_chunk_builder got chunks=None: pass the list of chunks a stream yielded",
                       status_code=500)
    chunks = list(chunks)
    if not chunks:
        return None
    hidden = getattr(chunks[0], "_hidden_params", None)
    provider = hidden.get("custom_llm_provider") if isinstance(hidden, dict) else None
    choices: dict[int, _Choice] = {}
    first = _plain(chunks[0])
    usage: Any = None
    fingerprint = None
    response_id = None
    created = None
    model = None
    for raw in chunks:
        chunk = _plain(raw)
        if not isinstance(chunk, dict):
            raise TypeError(f"stream_chunk_builder takes chunk objects or dicts, got {type(raw).__name__}")
        if response_id is None:
            response_id = chunk.get("id")
        if created is None:
            created = chunk.get("created")
        if model is None:
            model = chunk.get("model")
        if fingerprint is None:
            fingerprint = chunk.get("system_fingerprint")
        chunk_usage = chunk.get("usage")
        if chunk_usage:
            usage = chunk_usage
        for choice in chunk.get("choices") or ():
            choice = _plain(choice)
            index = choice.get("index") or 0
            state = choices.get(index)
            if state is None:
                state = choices[index] = _Choice()
            reason = choice.get("finish_reason")
            if reason:
                state.finish = reason
            delta = _plain(choice.get("delta"))
            if not delta:
                continue
            for key, value in delta.items():
                if value is None:
                    continue
                if key == "content":
                    state.content.append(value)
                elif key in ("reasoning_content", "reasoning"):
                    state.reasoning.append(value)
                elif key == "tool_calls":
                    _merge_tools(state, value)
                elif key == "function_call":
                    value = _plain(value)
                    if state.function is None:
                        state.function = [None, []]
                    if value.get("name") and state.function[0] is None:
                        state.function[0] = value["name"]
                    if value.get("arguments"):
                        state.function[1].append(value["arguments"])
                elif key == "role":
                    state.role = value
                elif key == "refusal":
                    state.refusal.append(value)
                elif key == "thinking_blocks":
                    state.thinking_blocks = (state.thinking_blocks or []) + list(value)
                else:
                    state.extra[key] = value
    if not choices:
        choices[0] = _Choice()
    out_choices = []
    for index in sorted(choices):
        state = choices[index]
        message: dict[str, Any] = {
            "role": state.role,
            "content": "".join(state.content) if state.content else None,
        }
        if state.reasoning:
            message["reasoning_content"] = "".join(state.reasoning)
        if state.thinking_blocks:
            message["thinking_blocks"] = state.thinking_blocks
        if state.refusal:
            message["refusal"] = "".join(state.refusal)
        if state.tools:
            message["tool_calls"] = [
                {
                    "id": tool[0] or ("call_" + new_completion_id()[9:33]),
                    "type": tool[3] or "function",
                    # a call streamed without argument text (Anthropic's empty tool_use input) took none: {}
                    "function": {"name": tool[1] or "", "arguments": "".join(tool[2]) or "{}"},
                }
                for _, tool in sorted(state.tools.items())
            ]
        if state.function is not None:
            message["function_call"] = {"name": state.function[0] or "", "arguments": "".join(state.function[1])}
        message.update(state.extra)
        finish = state.finish
        if finish is None:
            finish = "tool_calls" if state.tools else "stop"
        out_choices.append(
            {"index": index, "message": message, "finish_reason": normalize_finish_reason(finish)}
        )
    response = ModelResponse(
        id=response_id or first.get("id") or new_completion_id(),
        created=created,
        model=model,
        choices=out_choices,
        system_fingerprint=fingerprint,
    )
    if usage:
        response.usage = Usage(**_plain(usage))
    else:
        from .tokens import completion_text, counted_usage

        response.usage = counted_usage(model, messages, completion_text(c["message"] for c in out_choices))
    from .cost import response_cost

    if provider:
        response._hidden_params["custom_llm_provider"] = provider
    response._hidden_params["response_cost"] = response_cost(model, provider, response.usage, None) if model else None
    return response


def _merge_tools(state: _Choice, calls: Iterable[Any]) -> None:
    for position, call in enumerate(calls):
        call = _plain(call)
        index = call.get("index")
        call_id = call.get("id")
        if index is None:
            index = position
        record = state.tools.get(index)
        if record is None:
            record = state.tools[index] = [None, None, [], None]
        elif call_id and record[0] and call_id != record[0]:
            # a second call at a used index (some servers do not number calls): append it
            index = max(state.tools) + 1
            record = state.tools[index] = [None, None, [], None]
        if call_id and record[0] is None:
            record[0] = call_id
        if call.get("type") and record[3] is None:
            record[3] = call["type"]
        function = _plain(call.get("function"))
        if function:
            name = function.get("name")
            if name and record[1] is None:
                record[1] = name
            arguments = function.get("arguments")
            if arguments:
                record[2].append(arguments)
