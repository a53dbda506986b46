"""The repeat guard as LiteLLM's: chunks of 2 characters or fewer never trip it (a markdown rule,
a run of ``{`` or of newlines is not a loop), and only content deltas count."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay.streaming import CustomStreamWrapper


def chunk(delta):
    return {"id": "c", "choices": [{"index": 0, "delta": delta}]}


@pytest.fixture(autouse=True)
def limit(monkeypatch):
    monkeypatch.setattr(llmrelay, "REPEATED_STREAMING_CHUNK_LIMIT", 3)


@pytest.mark.parametrize("piece", ["-", "--", "{", "{{", "\n", "\n\n", "  ", "**"])
def test_short_chunks_never_trip(piece):
    chunks = [chunk({"content": piece})] * 50
    out = list(CustomStreamWrapper(chunks, model="m"))
    assert "".join(c.choices[0].delta.content or "" for c in out) == piece * 50


def test_three_characters_do_trip():
    with pytest.raises(llmrelay.InternalServerError, match="REPEATED_STREAMING_CHUNK_LIMIT"):
        list(CustomStreamWrapper([chunk({"content": "---"})] * 10, model="m"))


def test_only_content_chunks_count():
    """Tool-call and reasoning deltas between repeated content neither count nor break a run."""
    same = chunk({"content": "again"})
    between = [chunk({"reasoning_content": "hmm"}),
               chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]})]
    chunks = [same, *between, same, *between, same]
    assert len(list(CustomStreamWrapper(chunks, model="m"))) == len(chunks) + 1  # 3 = the limit: fine
    with pytest.raises(llmrelay.InternalServerError):
        list(CustomStreamWrapper(chunks + between + [same], model="m"))  # the 4th in a row trips


def test_a_short_different_chunk_breaks_a_run():
    same = chunk({"content": "again"})
    chunks = [same] * 3 + [chunk({"content": "x"})] + [same] * 3
    assert len(list(CustomStreamWrapper(chunks, model="m"))) == len(chunks) + 1
