"""AWS event stream decoder / encoder (llmrelay.codecs.eventstream)."""

from __future__ import annotations

import binascii
import datetime as dt
import pickle
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.codecs.errors import CodecError
from llmrelay.codecs.eventstream import (
    BOOL_FALSE,
    BOOL_TRUE,
    BYTE,
    BYTE_ARRAY,
    INTEGER,
    LONG,
    MAX_MESSAGE_SIZE,
    SHORT,
    STRING,
    TIMESTAMP,
    UUID,
    EventStreamDecoder,
    EventStreamMessage,
    TypedHeader,
    encode_message,
)
from unit.splits import partitions

# -- helpers -------------------------------------------------------------------


def crc(b: bytes) -> int:
    # binascii.crc32, not zlib.crc32 (which the codec uses): an independent check.
    return binascii.crc32(b) & 0xFFFFFFFF


def raw_frame(header_bytes: bytes, payload: bytes = b"", *, total: int | None = None,
              hlen: int | None = None) -> bytes:
    """Build a frame by hand (not via the encoder), with valid CRCs for whatever lengths."""
    total = 16 + len(header_bytes) + len(payload) if total is None else total
    hlen = len(header_bytes) if hlen is None else hlen
    prelude = struct.pack(">II", total, hlen)
    body = prelude + struct.pack(">I", crc(prelude)) + header_bytes + payload
    return body + struct.pack(">I", crc(body))


def str_header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v


def decode_all(chunks) -> list[EventStreamMessage]:
    d = EventStreamDecoder()
    out = []
    for c in chunks:
        out += d.feed(c)
    d.close()
    return out


def bedrock_delta(text: str) -> bytes:
    return encode_message(
        {":event-type": "contentBlockDelta", ":content-type": "application/json",
         ":message-type": "event"},
        b'{"contentBlockIndex":0,"delta":{"text":"%s"},"p":"abcdefghijklmnopqrstuvwxyzABCDEFG"}'
        % text.encode(),
    )


STREAM = (
    encode_message({":event-type": "messageStart", ":content-type": "application/json",
                    ":message-type": "event"}, b'{"p":"abc","role":"assistant"}')
    + bedrock_delta("Hello")
    + encode_message({}, b"")  # smallest possible frame
    + bedrock_delta("w\u00f6rld \U0001f600")
    + encode_message({":message-type": "exception", ":exception-type": "throttlingException",
                      ":content-type": "application/json"}, b'{"message":"slow down"}')
)
EXPECTED = decode_all([STREAM])


# -- AWS SDK test vectors (aws/aws-sdk-js-v3, eventstream-marshaller TestVectors) --

AWS_OK = {
    "empty_message": (
        [0, 0, 0, 16, 0, 0, 0, 0, 5, 194, 72, 235, 125, 152, 200, 255], {}, b""),
    "int32_header": (
        [0, 0, 0, 43, 0, 0, 0, 14, 52, 139, 236, 123, 8, 101, 118, 101, 110, 116, 45, 105, 100,
         4, 0, 0, 160, 12, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114, 39, 125, 211, 137,
         2, 133],
        {"event-id": 0xA00C}, b"{'foo':'bar'}"),
    "payload_no_headers": (
        [0, 0, 0, 29, 0, 0, 0, 0, 253, 82, 140, 90, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97,
         114, 39, 125, 195, 101, 57, 54],
        {}, b"{'foo':'bar'}"),
    "payload_one_str_header": (
        bytes.fromhex("0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c6963"
                      "6174696f6e2f6a736f6e7b27666f6f273a27626172277d8d9c08b1"),
        {"content-type": "application/json"}, b"{'foo':'bar'}"),
}
AWS_BAD = {
    # header name byte changed: message CRC no longer matches
    "corrupted_headers": (
        "0000003d0000002007fd83960c636f6e74656e742b747970650700106170706c6963"
        "6174696f6e2f6a736f6e7b27666f6f273a27626172277d8d9c08b1", "message CRC"),
    # headers length changed: prelude CRC no longer matches
    "corrupted_header_len": (
        "0000003d0000012007fd83960c636f6e74656e742d747970650700106170706c6963"
        "6174696f6e2f6a736f6e7b27666f6f273a27626172277d8d9c08b1", "prelude CRC"),
    "corrupted_length": (
        "0100001d00000000fd528c5a7b27666f6f273a27626172277dc3653936", "prelude CRC"),
    "corrupted_payload": (
        "0000001d00000000fd528c5a7b27666f6f273a27626172278dc3653936", "message CRC"),
}


@pytest.mark.parametrize("name", sorted(AWS_OK))
def test_aws_vectors_decode(name):
    raw, headers, payload = AWS_OK[name]
    raw = bytes(raw)
    (msg,) = decode_all([raw])
    assert msg.headers == headers
    assert msg.payload == payload
    # our encoder reproduces the exact bytes
    assert encode_message(headers, payload) == raw
    # and every split point decodes the same
    for i in range(len(raw) + 1):
        assert decode_all([raw[:i], raw[i:]]) == [msg]


@pytest.mark.parametrize("name", sorted(AWS_BAD))
def test_aws_vectors_corrupt(name):
    raw, what = AWS_BAD[name]
    with pytest.raises(CodecError, match=what) as ei:
        EventStreamDecoder().feed(bytes.fromhex(raw))
    assert ei.value.offset == 0
    assert "frame 0" in str(ei.value)


def test_hand_built_frame_matches_encoder():
    hb = str_header(":event-type", "chunk") + str_header(":message-type", "event")
    raw = raw_frame(hb, b'{"bytes":"eyJ0eXBlIjoiIn0="}')
    assert encode_message({":event-type": "chunk", ":message-type": "event"},
                          b'{"bytes":"eyJ0eXBlIjoiIn0="}') == raw
    (msg,) = decode_all([raw])
    assert msg.event_type == "chunk" and msg.message_type == "event"


# -- splitting -----------------------------------------------------------------


def test_every_single_split_point():
    for i in range(len(STREAM) + 1):
        assert decode_all([STREAM[:i], STREAM[i:]]) == EXPECTED


def test_one_byte_feeds():
    d = EventStreamDecoder()
    out = []
    for i in range(len(STREAM)):
        out += d.feed(STREAM[i : i + 1])
    d.close()
    assert out == EXPECTED
    assert d.pending == 0


def test_messages_returned_as_soon_as_complete():
    d = EventStreamDecoder()
    f0 = bedrock_delta("a")
    assert d.feed(f0[:-1]) == []
    assert d.pending == len(f0) - 1
    (m,) = d.feed(f0[-1:] + f0[:5])
    assert m.payload.startswith(b'{"contentBlockIndex"')
    assert d.pending == 5


@settings(max_examples=300, deadline=None)
@given(partitions(STREAM), st.sampled_from([bytes, bytearray, memoryview]))
def test_arbitrary_partitions(chunks, kind):
    assert decode_all([kind(c) for c in chunks]) == EXPECTED


def test_compaction_keeps_offsets_right():
    frames = [bedrock_delta(f"t{i}") for i in range(1500)]  # > 64 KiB in total
    bad = bytearray(bedrock_delta("x"))
    bad[-1] ^= 0xFF
    data = b"".join(frames) + bytes(bad)
    d = EventStreamDecoder()
    out = []
    for i in range(0, len(data), 1000):
        out += d.feed(data[i : i + 1000])  # good frames before the bad one come out
    assert len(out) == 1500
    with pytest.raises(CodecError) as ei:
        d.close()
    assert ei.value.offset == len(data) - len(bad)
    assert "frame 1500" in str(ei.value)


# -- round trips ---------------------------------------------------------------

header_names = st.text(min_size=1, max_size=20).filter(lambda s: len(s.encode()) <= 255)
header_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=50),
    st.binary(max_size=50),
    st.builds(uuid.UUID, st.uuids().map(str)),
    st.integers(-62_000_000_000_000, 253_000_000_000_000).map(
        lambda ms: dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=ms)
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.dictionaries(header_names, header_values, max_size=6),
                          st.binary(max_size=300)), min_size=1, max_size=4),
       st.data())
def test_round_trip(messages, data):
    raw = b"".join(encode_message(h, p) for h, p in messages)
    chunks = data.draw(partitions(raw))
    out = decode_all(chunks)
    assert [(m.headers, m.payload) for m in out] == messages


def test_all_header_types_decode():
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = {
        "t": TypedHeader(BOOL_TRUE, True),
        "f": TypedHeader(BOOL_FALSE, False),
        "b": TypedHeader(BYTE, -7),
        "s": TypedHeader(SHORT, -300),
        "i": TypedHeader(INTEGER, -70000),
        "l": TypedHeader(LONG, -(2**40)),
        "ba": TypedHeader(BYTE_ARRAY, b"\x00\xff"),
        "str": TypedHeader(STRING, "h\u00e9"),
        "ts": TypedHeader(TIMESTAMP, 1_700_000_000_123),
        "u": TypedHeader(UUID, u),
    }
    raw = encode_message(headers, b"x")
    # check the wire bytes of a few types by hand
    assert b"\x01b\x02\xf9" in raw
    assert b"\x01s\x03\xfe\xd4" in raw
    assert b"\x02ts\x08" + struct.pack(">q", 1_700_000_000_123) in raw
    assert b"\x01u\x09" + u.bytes in raw
    (m,) = decode_all([raw])
    assert m.headers == {
        "t": True, "f": False, "b": -7, "s": -300, "i": -70000, "l": -(2**40),
        "ba": b"\x00\xff", "str": "h\u00e9",
        "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.timezone.utc),
        "u": u,
    }
    assert type(m.headers["t"]) is bool and type(m.headers["b"]) is int


def test_encoder_infers_types():
    raw = encode_message({"a": 1, "b": 2**31, "c": True, "d": "x", "e": b"y"})
    assert b"\x01a\x04\x00\x00\x00\x01" in raw
    assert b"\x01b\x05" + struct.pack(">q", 2**31) in raw
    assert b"\x01c\x00" in raw
    assert b"\x01d\x07\x00\x01x" in raw
    assert b"\x01e\x06\x00\x01y" in raw
    with pytest.raises(TypeError):
        encode_message({"x": 1.5})
    with pytest.raises(ValueError):
        encode_message({"": "x"})


def test_message_conveniences():
    ev, exc, err = decode_all([
        STREAM[: len(encode_message({":event-type": "messageStart", ":content-type":
                                     "application/json", ":message-type": "event"},
                                    b'{"p":"abc","role":"assistant"}'))],
        encode_message({":message-type": "exception", ":exception-type": "validationException"},
                       b'{"message":"bad"}'),
        encode_message({":message-type": "error", ":error-code": "InternalFailure",
                        ":error-message": "boom"}),
    ])
    assert (ev.event_type, ev.message_type, ev.content_type) == (
        "messageStart", "event", "application/json")
    assert ev.exception_type is None and ev.error_code is None
    assert (exc.message_type, exc.exception_type) == ("exception", "validationException")
    assert (err.message_type, err.error_code, err.error_message) == (
        "error", "InternalFailure", "boom")
    assert "messageStart" in repr(ev)


# -- corruption, truncation, limits --------------------------------------------

F0 = bedrock_delta("zero")
F1 = bedrock_delta("one")


def test_corrupt_prelude_crc_names_frame_and_offset():
    bad = bytearray(F1)
    bad[9] ^= 0x01  # inside the prelude CRC
    with pytest.raises(CodecError, match="prelude CRC") as ei:
        decode_all([F0 + bytes(bad)])
    assert ei.value.offset == len(F0)
    assert "frame 1" in str(ei.value) and f"offset {len(F0)}" in str(ei.value)


def test_corrupt_message_crc_names_frame_and_offset():
    bad = bytearray(F1)
    bad[30] ^= 0x40  # inside the headers/payload
    d = EventStreamDecoder()
    assert len(d.feed(F0)) == 1
    with pytest.raises(CodecError, match="message CRC") as ei:
        d.feed(bytes(bad))
    assert ei.value.offset == len(F0)
    assert "frame 1" in str(ei.value)
    # the decoder stays failed
    with pytest.raises(CodecError, match="message CRC"):
        d.feed(F0)
    with pytest.raises(CodecError, match="message CRC"):
        d.close()


def test_good_frames_before_a_bad_one_are_delivered_then_error():
    bad = bytearray(F1)
    bad[-2] ^= 0x01
    d = EventStreamDecoder()
    assert d.feed(F0 + F0 + bytes(bad)) == [decode_all([F0])[0]] * 2
    with pytest.raises(CodecError, match="frame 2") as ei:
        d.feed(F0)
    assert ei.value.offset == 2 * len(F0)
    with pytest.raises(CodecError, match="frame 2"):
        d.close()


def test_corruption_detected_under_any_split():
    bad = bytearray(F0 + F1)
    bad[len(F0) + 40] ^= 0x01
    bad = bytes(bad)
    for i in range(len(bad) + 1):
        with pytest.raises(CodecError) as ei:
            decode_all([bad[:i], bad[i:]])
        assert ei.value.offset == len(F0)


@pytest.mark.parametrize("cut", [1, 3, 4, 8, 11, 12, 40, len(F1) - 1])
def test_truncated_stream_raises_on_close(cut):
    d = EventStreamDecoder()
    assert len(d.feed(F0 + F1[:cut])) == 1
    with pytest.raises(CodecError, match="truncated") as ei:
        d.close()
    assert ei.value.offset == len(F0)
    assert "frame 1" in str(ei.value)


def test_clean_close():
    d = EventStreamDecoder()
    d.close()
    d.feed(F0)
    d.close()


def test_huge_declared_length_fails_immediately():
    prelude = struct.pack(">II", MAX_MESSAGE_SIZE + 1, 0)
    head = prelude + struct.pack(">I", crc(prelude))
    d = EventStreamDecoder()
    assert d.feed(head[:11]) == []  # not yet a whole prelude: nothing to judge
    with pytest.raises(CodecError, match="total length") as ei:
        d.feed(head[11:])  # no payload bytes needed to fail
    assert ei.value.offset == 0
    assert d.pending == 12  # nothing more was buffered or awaited


@pytest.mark.parametrize("total,hlen,match", [
    (15, 0, "total length"),
    (0, 0, "total length"),
    (0xFFFFFFFF, 0, "total length"),
    (30, 15, "headers length"),
    (200_000, 150_000, "headers length"),  # > 128 KiB of headers
])
def test_bad_lengths(total, hlen, match):
    prelude = struct.pack(">II", total, hlen)
    frame = prelude + struct.pack(">I", crc(prelude)) + b"\0" * 20
    with pytest.raises(CodecError, match=match) as ei:
        EventStreamDecoder().feed(frame)
    assert ei.value.offset == 0
    with pytest.raises(CodecError, match=match) as ei:
        decode_all([F0 + frame])
    assert ei.value.offset == len(F0) and "frame 1" in str(ei.value)


@pytest.mark.parametrize("header_bytes,match", [
    (b"\x00\x07\x00\x00", "empty header name"),
    (b"\x05ab", "name runs past"),
    (b"\x01a\x0a", "unknown value type 10"),
    (b"\x01a\x07\x00", "value length runs past"),
    (b"\x01a\x07\x00\x09abc", "value runs past"),
    (b"\x01a\x04\x00\x01", "value runs past"),
    (b"\x01a\x09" + b"\x00" * 15, "value runs past"),
    (b"\x02\xff\xfe\x00", "invalid UTF-8"),
    (b"\x01a\x07\x00\x02\xc3\x28", "invalid UTF-8"),
    (b"\x01a\x00\x01a\x01", "duplicate header 'a'"),
    (b"\x01a\x08" + struct.pack(">q", 2**62), "out of range"),
])
def test_malformed_headers(header_bytes, match):
    with pytest.raises(CodecError, match=match) as ei:
        decode_all([F0 + raw_frame(header_bytes, b"{}")])
    assert "frame 1" in str(ei.value) and "malformed headers" in str(ei.value)
    assert ei.value.offset == len(F0)


def test_codec_error_is_value_error_and_pickles():
    e = CodecError("bad frame", 42)
    assert isinstance(e, ValueError)
    e2 = pickle.loads(pickle.dumps(e))
    assert (str(e2), e2.offset) == ("bad frame", 42)


def test_repeated_header_sections_are_independent_dicts():
    d = EventStreamDecoder()
    a, b = d.feed(F0 + F1)
    assert a.headers == b.headers and a.headers is not b.headers
    a.headers["x"] = 1
    (c,) = d.feed(F0)
    assert "x" not in c.headers


def test_many_distinct_header_sections():
    frames = [encode_message({":event-type": f"e{i}", "n": i}, b"") for i in range(100)]
    out = decode_all([b"".join(frames * 2)])
    assert [m.headers["n"] for m in out] == list(range(100)) * 2
    assert [m.event_type for m in out[:3]] == ["e0", "e1", "e2"]
