"""LiteLLM's ``trim_messages``: make a conversation fit a model's input window.

The rules are LiteLLM's: the budget is ``max_tokens`` when given, else the model's
``max_input_tokens`` (``max_tokens`` when the table has no input limit) × ``trim_ratio``; a
model the table does not know, with no ``max_tokens``, leaves the messages as they are. When
the messages are over budget, the system messages are joined into one (shortened in the middle
if that alone is over budget) which is kept first; then the other messages are added back from
the newest, one that does not fit shortened in the middle ("..") to the tokens still free;
trailing ``tool`` messages are always kept at the end. Any error returns the messages as given.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

__all__ = ["trim_messages", "shorten_message_to_fit_limit"]

log = logging.getLogger("llmrelay")

#: How many times one message is shortened before giving up (LiteLLM's constant).
MAX_TOKEN_TRIMMING_ATTEMPTS = 10
DEFAULT_TRIM_RATIO = 0.75


def _tokens(messages: list[dict[str, Any]], model: str | None) -> int:
    from .tokens import token_counter

    return token_counter(model=model or "", messages=messages)


def shorten_message_to_fit_limit(message: dict[str, Any], tokens_needed: int, model: str | None) -> dict[str, Any]:
    """Cut the middle out of ``message["content"]`` (in place) until the message counts at most
    ``tokens_needed`` tokens; returns the message."""
    # Even an empty message counts some tokens for OpenAI models, so a budget this small could
    # never be met.
    if model is not None and "gpt" in model and tokens_needed <= 10:
        return message
    content = message["content"]
    for _ in range(MAX_TOKEN_TRIMMING_ATTEMPTS):
        total = _tokens([message], model)
        if total <= tokens_needed:
            break
        length = max(0, int(len(content) * tokens_needed / total) - 1)
        half = length // 2
        content = content[:half] + ".." + (content[-half:] if half else "")
        message["content"] = content
    return message


def _add_back(messages: list[dict[str, Any]], budget: int, model: str | None) -> list[dict[str, Any]]:
    """The messages that fit in ``budget``, taken from the newest (LiteLLM's process_messages):
    one that does not fit is shortened to the tokens still free, and kept if it then fits."""
    kept: list[dict[str, Any]] = []
    for message in reversed(messages):
        free = budget - _tokens(kept, model)
        if free <= 3:  # not even an empty message fits
            break
        candidate = [message, *kept]
        if _tokens(candidate, model) <= budget:
            kept = candidate
        elif "function_call" not in message:
            shortened = shorten_message_to_fit_limit(message, free, model)
            if _tokens([*kept, shortened], model) <= budget:
                kept = [shortened, *kept]
    return kept


def _budget(model: str | None, trim_ratio: float) -> int | None:
    if not model:
        return None
    from .cost import ModelNotMappedError, get_model_info

    try:
        info = get_model_info(model)
    except (ModelNotMappedError, ValueError, TypeError):
        return None
    limit = info.get("max_input_tokens") or info.get("max_tokens")
    return int(limit * trim_ratio) if limit else None


def trim_messages(
    messages: list[dict[str, Any]],
    model: str | None = None,
    trim_ratio: float = DEFAULT_TRIM_RATIO,
    return_response_tokens: bool = False,
    max_tokens: int | None = None,
) -> Any:
    """The messages trimmed to fit ``max_tokens``, or ``trim_ratio`` of ``model``'s input window
    (see the module docstring). The given list is not changed.

    With ``return_response_tokens=True`` a trimmed result is ``(messages, tokens left)``; as in
    LiteLLM, messages that already fit come back alone.
    """
    original = messages
    messages = copy.deepcopy(messages)
    try:
        if max_tokens is None:
            max_tokens = _budget(model, trim_ratio)
            if max_tokens is None:
                return messages
        system = "\n".join(m["content"] for m in messages if m["role"] == "system")
        tools: list[dict[str, Any]] = []
        while len(tools) < len(messages) and messages[-1 - len(tools)]["role"] == "tool":
            tools.insert(0, messages[-1 - len(tools)])
        if tools:
            messages = messages[: -len(tools)]
        current = _tokens(messages, model)
        log.debug("trim_messages: %d tokens, budget %d", current, max_tokens)
        if current < max_tokens:
            return messages + tools
        system_event: dict[str, Any] | None = None
        if system:
            system_event = {"role": "system", "content": system}
            system_tokens = _tokens([system_event], model)
            if system_tokens > max_tokens:
                shorten_message_to_fit_limit(system_event, max_tokens, model)
                system_tokens = _tokens([system_event], model)
            max_tokens -= system_tokens
            if max_tokens == 0:
                return [system_event]
            messages = [m for m in messages if m["role"] != "system"]
        final = _add_back(messages, max_tokens, model)
        if system_event is not None:
            final = [system_event, *final]
        final.extend(tools)
        if return_response_tokens:
            return final, max_tokens - _tokens(final, model)
        return final
    except Exception:  # as LiteLLM: never fails the call it prepares
        log.exception("trim_messages failed; the messages are used as given")
        return original
