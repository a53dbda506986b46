"""Chunks that arrive in the same read as a failure are delivered before the failure."""

from __future__ import annotations

import orjson
import pytest

import llmrelay
from llmrelay.exceptions import InternalServerError
from llmrelay.providers.openai import OpenAIStreamDecoder
from llmrelay.streaming import CustomStreamWrapper


def _frame(obj) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _chunk(text: str) -> dict:
    return {"id": "c1", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def test_decoder_delivers_chunks_before_in_band_error():
    data = _frame(_chunk("a")) + _frame(_chunk("b")) + _frame({"error": {"message": "boom", "type": "server_error"}})
    decoder = OpenAIStreamDecoder("openai", "m")
    assert [c["choices"][0]["delta"]["content"] for c in decoder.feed(data)] == ["a", "b"]
    # the error is parked for the transport, which raises it before reading on
    assert isinstance(decoder.error, llmrelay.APIError) and "boom" in decoder.error.message


def test_decoder_error_alone_raises_at_once():
    decoder = OpenAIStreamDecoder("openai", "m")
    with pytest.raises(llmrelay.APIError, match="boom"):
        decoder.feed(_frame({"error": {"message": "boom"}}))


class _OneBatch:
    complete = True

    def __init__(self, batch):
        self.batch = batch

    def next_batch(self):
        batch, self.batch = self.batch, None
        return batch

    async def anext_batch(self):
        return self.next_batch()

    def close(self):
        pass

    async def aclose(self):
        pass


@pytest.fixture
def limit(monkeypatch):
    monkeypatch.setattr(llmrelay, "REPEATED_STREAMING_CHUNK_LIMIT", 3)


def test_repeat_guard_in_one_batch_yields_chunks_then_raises(limit):
    stream = CustomStreamWrapper(_OneBatch([_chunk("xyz")] * 10), model="m", custom_llm_provider="openai")
    seen = []
    with pytest.raises(InternalServerError, match="REPEATED_STREAMING_CHUNK_LIMIT"):
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["xyz", "xyz", "xyz"]


async def test_repeat_guard_in_one_batch_async(limit):
    stream = CustomStreamWrapper(_OneBatch([_chunk("xyz")] * 10), model="m", custom_llm_provider="openai")
    seen = []
    with pytest.raises(InternalServerError):
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["xyz", "xyz", "xyz"]
