"""Helpers for provider tests: build a request, feed bytes to a decoder at every split, run chunks
through StreamState."""

from __future__ import annotations

from typing import Any, Callable

import orjson

from llmrelay.main import prepare_call
from llmrelay.providers.base import HttpRequest, Provider
from llmrelay.providers.registry import get_provider
from llmrelay.streaming import StreamState


def build_request(
    model: str, messages: list[dict], stream: bool, kwargs: dict[str, Any], provider: Provider | None = None
) -> tuple[HttpRequest, Any]:
    """Resolve ``model`` + ``kwargs`` as ``completion`` does and build the HTTP request (with
    ``provider``, else the registry's provider for the model's prefix); return it and its JSON body."""
    call, _ = prepare_call(model, messages, stream, kwargs)
    req = (provider or get_provider(model.split("/")[0])).build_request(call)
    return req, orjson.loads(req.body)


def decode(make_decoder: Callable[[], Any], data: bytes, splits: list[int] | None = None) -> tuple[list[dict], bool]:
    """Feed ``data`` cut at ``splits``; return (chunk dicts, decoder.done)."""
    decoder = make_decoder()
    out: list[dict] = []
    last = 0
    for cut in splits or []:
        out.extend(decoder.feed(data[last:cut]))
        last = cut
    out.extend(decoder.feed(data[last:]))
    out.extend(decoder.close())
    return out, decoder.done


def feed_split(decoder: Any, data: bytes, split: int | None = None) -> list[dict]:
    """Feed ``data`` whole or cut once at ``split``, then close; an error the decoder parked
    behind chunks is raised after that read, as the transport does."""
    parts = [data] if split is None else [data[:split], data[split:]]
    out: list[dict] = []
    for part in parts:
        out += decoder.feed(part)
        if decoder.error is not None:
            raise decoder.error
    return out + decoder.close()


def decode_every_split(
    make_decoder: Callable[[], Any], data: bytes, normalize: Callable[[Any], Any] = lambda x: x
) -> list[dict]:
    """Decode whole, then at every single split position (and byte by byte); all must agree
    (after ``normalize``, e.g. to blank out generated ids)."""
    whole, done = decode(make_decoder, data)
    expected = normalize((whole, done))
    for cut in range(1, len(data)):
        assert normalize(decode(make_decoder, data, [cut])) == expected, f"split at {cut} differs"
    assert normalize(decode(make_decoder, data, list(range(1, len(data))))) == expected
    return whole


def assemble(chunks: list[dict], complete: bool = True, include_usage: bool = True) -> dict[str, Any]:
    """Run chunk dicts through StreamState; return the text, tools, reasoning, finish, usage, chunks."""
    state = StreamState("m", "p", include_usage=include_usage)
    out = [c for c in (state.process(raw) for raw in chunks) if c is not None]
    out.extend(state.finish(complete))
    text, reasoning, tools, blocks, finish = [], [], {}, [], []
    for chunk in out:
        for choice in chunk.choices:
            d = choice.delta
            text.append(d.content or "")
            reasoning.append(d.reasoning_content or "")
            blocks.extend(d.thinking_blocks or [])
            for tc in d.tool_calls or ():
                rec = tools.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                rec["id"] = rec["id"] or tc.id
                if tc.function is not None:
                    rec["name"] = rec["name"] or tc.function.name
                    rec["arguments"] += tc.function.arguments or ""
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    usage = out[-1].usage if include_usage else None
    return {"text": "".join(text), "reasoning": "".join(reasoning), "tools": tools, "thinking_blocks": blocks,
            "finish": finish, "usage": usage, "chunks": out, "ids": {c.id for c in out}}
