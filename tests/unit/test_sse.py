"""SSE decoder: any split of the bytes, any line ending, comments, multi-line data, UTF-8."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.codecs.errors import CodecError
from llmrelay.codecs.sse import ServerSentEvent, SSEDecoder


def decode(parts: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = []
    for part in parts:
        events += decoder.feed(part)
    return events + decoder.close()


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted({c % (len(data) + 1) for c in cuts})
    parts, last = [], 0
    for c in cuts:
        parts.append(data[last:c])
        last = c
    parts.append(data[last:])
    return parts


STREAM = (
    "\ufeff: comment line\n"
    "event: message_start\n"
    'data: {"text": "h\u00e9llo \U0001f600 \u4e16\u754c"}\n'
    "\n"
    "data: line one\n"
    "data: line two\n"
    "id: 42\n"
    "retry: 1500\n"
    "\n"
    "data:no-space\n"
    "\n"
    "data\n"
    "\n"
    "unknown: field\n"
    "data: [DONE]\n"
    "\n"
)

EXPECTED = [
    ServerSentEvent('{"text": "h\u00e9llo \U0001f600 \u4e16\u754c"}'.encode(), "message_start"),
    ServerSentEvent(b"line one\nline two", None, "42", 1500),
    ServerSentEvent(b"no-space", None, "42", 1500),
    ServerSentEvent(b"", None, "42", 1500),
    ServerSentEvent(b"[DONE]", None, "42", 1500),
]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_whole_stream(newline):
    data = STREAM.replace("\n", newline).encode()
    assert decode([data]) == EXPECTED


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_single_split_point(newline):
    data = STREAM.replace("\n", newline).encode()
    for i in range(len(data) + 1):
        assert decode([data[:i], data[i:]]) == EXPECTED, i


def test_one_byte_at_a_time():
    data = STREAM.replace("\n", "\r\n").encode()
    assert decode([data[i : i + 1] for i in range(len(data))]) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_partition(newline, cuts):
    data = STREAM.replace("\n", newline).encode()
    assert decode(split_at(data, cuts)) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))), min_size=1, max_size=8),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=5_000), max_size=20),
)
def test_arbitrary_payloads_round_trip(payloads, newline, cuts):
    data = "".join(f"data: {p}{newline}{newline}" for p in payloads).encode()
    events = decode(split_at(data, cuts))
    assert [e.data.decode() for e in events] == payloads


def test_unterminated_last_event_is_delivered_at_close():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: tail") == []
    assert decoder.close() == [ServerSentEvent(b"tail")]


def test_line_too_long_is_an_error():
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(CodecError):
        for _ in range(20):
            decoder.feed(b"x" * 100)
