"""``merge_reasoning_content_in_choices``: reasoning text moved into ``content`` as ``<think>…</think>``.

LiteLLM's option for clients that show only ``content`` (Open WebUI and the like): the
reasoning comes first, wrapped in ``<think>`` tags, then the answer. Pure transformations, no I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = ["merge_response", "MergedReasoningSource"]

OPEN, CLOSE = "<think>", "</think>"


def merge_response(response: Any) -> Any:
    """Move each choice's ``reasoning_content`` into its ``content`` (a non-streaming response)."""
    for choice in getattr(response, "choices", None) or ():
        message = getattr(choice, "message", None)
        reasoning = getattr(message, "reasoning_content", None) if message is not None else None
        if reasoning:
            message.content = f"{OPEN}{reasoning}{CLOSE}{message.content or ''}"
            message.reasoning_content = None
    return response


class MergedReasoningSource:
    """Wraps a chunk source; its chunk dicts carry reasoning as ``content`` between think tags."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._thinking: set[int] = set()  # choices whose <think> is open

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def next_batch(self) -> list | None:
        return self._merge(self._source.next_batch())

    async def anext_batch(self) -> list | None:
        return self._merge(await self._source.anext_batch())

    def _merge(self, batch: list | None) -> list | None:
        if batch:
            for chunk in batch:
                if type(chunk) is dict:
                    for choice in chunk.get("choices") or ():
                        if type(choice) is dict:
                            self._choice(choice)
        return batch

    def _choice(self, choice: dict) -> None:
        index = choice.get("index") or 0
        delta = choice.get("delta")
        if type(delta) is not dict:
            return
        reasoning = delta.pop("reasoning_content", None) or delta.pop("reasoning", None)
        delta.pop("reasoning", None)
        content = delta.get("content")
        out = ""
        if reasoning:
            if index not in self._thinking:
                self._thinking.add(index)
                out = OPEN
            out += reasoning
        if index in self._thinking and (content or choice.get("finish_reason") or delta.get("tool_calls")):
            self._thinking.discard(index)
            out += CLOSE
        if out:
            delta["content"] = out + (content or "")
