"""Newline-delimited JSON decoder (llmrelay.codecs.ndjson)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.codecs.errors import CodecError
from llmrelay.codecs.ndjson import NDJSONDecoder
from unit.splits import partitions

OLLAMA = (
    b'{"model":"llama3","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant",'
    b'"content":"H\xc3\xa9llo \xf0\x9f\x98\x80"},"done":false}\r\n'
    b"\n"
    b'{"model":"llama3","message":{"role":"assistant","content":" w\xc3\xb6rld"},"done":false}\n'
    b"   \r\n"
    b'{"model":"llama3","done":true,"done_reason":"stop","eval_count":3}'
)
EXPECTED = [
    {"model": "llama3", "created_at": "2024-01-01T00:00:00Z",
     "message": {"role": "assistant", "content": "H\u00e9llo \U0001f600"}, "done": False},
    {"model": "llama3", "message": {"role": "assistant", "content": " w\u00f6rld"}, "done": False},
    {"model": "llama3", "done": True, "done_reason": "stop", "eval_count": 3},
]


def decode_all(chunks) -> list:
    d = NDJSONDecoder()
    out = []
    for c in chunks:
        out += d.feed(c)
    return out + d.close()


def test_whole():
    d = NDJSONDecoder()
    assert d.feed(OLLAMA) == EXPECTED[:2]
    assert d.pending > 0
    assert d.close() == EXPECTED[2:]
    assert d.close() == []


def test_every_split_point():
    # includes splits inside the multi-byte UTF-8 characters and between \r and \n
    for i in range(len(OLLAMA) + 1):
        assert decode_all([OLLAMA[:i], OLLAMA[i:]]) == EXPECTED


def test_one_byte_feeds():
    assert decode_all([OLLAMA[i : i + 1] for i in range(len(OLLAMA))]) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(partitions(OLLAMA), st.sampled_from([bytes, bytearray, memoryview]))
def test_arbitrary_partitions(chunks, kind):
    assert decode_all([kind(c) for c in chunks]) == EXPECTED


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=8), st.booleans(), st.booleans(), st.data())
def test_round_trip(values, crlf, trailing_newline, data):
    sep = b"\r\n" if crlf else b"\n"
    raw = sep.join(orjson.dumps(v) for v in values)
    if trailing_newline and values:
        raw += sep
    assert decode_all(data.draw(partitions(raw))) == values


def test_blank_and_crlf_lines():
    assert decode_all([b"\n\r\n  \n1\r\n\r\n2\n\t\n"]) == [1, 2]


def test_final_line_without_newline():
    d = NDJSONDecoder()
    assert d.feed(b'{"a":1}\n{"b"') == [{"a": 1}]
    assert d.feed(b":2}") == []
    assert d.close() == [{"b": 2}]


def test_close_with_only_whitespace_left():
    d = NDJSONDecoder()
    assert d.feed(b"1\n  \r") == [1]
    assert d.close() == []


def test_bad_line_error_message():
    d = NDJSONDecoder()
    assert d.feed(b'{"ok":1}\n\n') == [{"ok": 1}]
    # the line before the bad one is delivered; the error comes with the next call
    assert d.feed(b'{"ok":2}\n<html>502 Bad Gateway</html>\n{"ok":3}\n') == [{"ok": 2}]
    with pytest.raises(CodecError) as ei:
        d.feed(b"")
    e = ei.value
    assert isinstance(e, ValueError)
    assert "line 4" in str(e)
    assert "<html>502 Bad Gateway</html>" in str(e)
    assert e.offset == len(b'{"ok":1}\n\n{"ok":2}\n')
    # the decoder stays failed
    with pytest.raises(CodecError, match="line 4"):
        d.feed(b"1\n")
    with pytest.raises(CodecError, match="line 4"):
        d.close()


def test_bad_line_is_truncated_in_message():
    with pytest.raises(CodecError) as ei:
        decode_all([b"x" * 10_000 + b"\n"])
    msg = str(ei.value)
    assert "line 1" in msg and "10000 bytes" in msg
    assert len(msg) < 400


def test_bad_final_line_on_close():
    d = NDJSONDecoder()
    assert d.feed(b"1\n2\n{") == [1, 2]
    with pytest.raises(CodecError, match="line 3") as ei:
        d.close()
    assert ei.value.offset == 4


def test_invalid_utf8_is_an_error():
    with pytest.raises(CodecError, match="line 1"):
        decode_all([b'"\xff"\n'])


def test_unterminated_line_limit():
    d = NDJSONDecoder(max_line_bytes=100)
    assert d.feed(b"1\n" + b"x" * 60) == [1]
    with pytest.raises(CodecError, match="line 2.*exceeds 100 bytes") as ei:
        d.feed(b"y" * 60)
    assert ei.value.offset == 2
    d = NDJSONDecoder(max_line_bytes=100)
    assert d.feed(b"1\n" + b"x" * 200) == [1]  # the good line first
    with pytest.raises(CodecError, match="exceeds"):
        d.close()
    # complete long lines are fine
    assert decode_all([b'"' + b"z" * 500 + b'"\n']) == ["z" * 500]
