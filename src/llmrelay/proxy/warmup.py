"""Tokenizers loaded in a thread before the gateway serves (issue 18).

A stream whose upstream sends no usage is priced, and its tokens limited, by counting its text
offline (:func:`llmrelay.tokens.counted_usage`). The first count of an encoding loads it
(o200k: ~80 MiB of ranks, 0.1–2.7 s holding the GIL); on the event loop that would stall every
open stream. So whatever may count offline (keys with spend and token limits, callbacks and
metrics that report cost, the access log's cost field) has the deployments' encodings loaded
here first, off the loop: the app at start-up, the key manager when its database opens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

__all__ = ["warm_tokenizers", "warm_tokenizers_sync"]

log = logging.getLogger("llmrelay.proxy")


def _missing(models: Iterable[str]) -> list[str]:
    """One model per encoding of ``models`` not loaded yet."""
    from .. import tokens

    todo: dict[str, str] = {}
    for model in models:
        name = tokens.encoding_name_for_model(model)
        if name not in tokens._ENCODINGS:
            todo.setdefault(name, model)
    return list(todo.values())


def warm_tokenizers_sync(models: Iterable[str]) -> None:
    """Load the encodings of ``models`` and the counting code (blocking: call it in a thread)."""
    from ..tokens import counted_usage

    for model in models:
        try:
            counted_usage(model, [{"role": "user", "content": "hi"}], "hi")
        except Exception:  # noqa: BLE001 - only a warm-up
            log.debug("tokenizer warm-up for %s failed", model, exc_info=True)


async def warm_tokenizers(models: Iterable[str]) -> None:
    """Load the encodings of ``models`` in a thread (nothing to do, no thread, when they are)."""
    todo = _missing(models)
    if todo:
        await asyncio.to_thread(warm_tokenizers_sync, todo)
