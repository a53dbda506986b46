"""The stream fast path fuzzed against the general path (issue 18, ``llmrelay/proxy/fastpath.py``).

Random upstream SSE bodies — OpenAI's wire format with the odd things real servers send
(comments and keep-alives, ``event:``/``id:``/``retry:`` lines, empty and multi-line data, CRLF
or CR line ends, escapes and non-ASCII text in every JSON encoding, obfuscation fields, several
choices, tool-call and reasoning deltas, logprobs, usage chunks, runs of one repeated chunk that
trip ``REPEATED_STREAMING_CHUNK_LIMIT``, in-band errors, malformed frames, frames after
``[DONE]``, a dropped connection) — cut into reads at random byte boundaries (inside frames,
inside UTF-8 sequences, inside the HTTP chunk framing) and sent through a gateway with the fast
path (lean client and aiohttp) and one with it off (``LLMRELAY_STREAM_FAST_PATH=0``). The client
streams must be the same text, frame for frame, and the access-log records the same chunks,
cost and error.

Each case is one seed: ``LLMRELAY_FUZZ_CASES`` (default 24) seeds from ``LLMRELAY_FUZZ_SEED``
(default 0) per upstream client; a failure names its seed, and :func:`case` rebuilds it.
``LLMRELAY_FUZZ_STATS=FILE`` appends each case's seed, fast and total chunks to FILE (how much
of the fuzzing reached the fast path).
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import orjson
import pytest

from proxy.test_fastpath import _post, gateway, general  # noqa: F401 - the fixtures
from servers.loopback import Drop, Reply, Sleep
from servers.openai_server import ChunkFactory, error_body, usage_dict

CASES = int(os.environ.get("LLMRELAY_FUZZ_CASES", "24"))
SEED = int(os.environ.get("LLMRELAY_FUZZ_SEED", "0"))

#: Content pieces: ASCII words, multi-byte UTF-8 (2, 3 and 4 bytes), what JSON escapes (quote,
#: backslash, control characters), text ``str.isprintable`` refuses (U+2028, NBSP), blanks and
#: short pieces (the repeat guard's kinds), one long piece.
VOCAB = ["Hello", " world", " the", " quick", " fox", " é", "✓", " 日本語", " 🦊", "a", ",", ".", " ", "  ", "\n",
         "\t", ' say "hi"', " back\\slash", "\u2028", " ünï", "\u00a0nbsp", "€", " again", "x" * 300, "\x7f", "ok",
         "end\\", "\\u00e9", " data: [DONE]", "\n\n", '"},"finish_reason":"stop"}]}', "y" * 5000, " ", "\r"]


def _encode(obj: Any, style: str) -> bytes:
    if style == "compact":
        return orjson.dumps(obj)
    if style == "spaced":
        return json.dumps(obj, ensure_ascii=False).encode()
    return json.dumps(obj, separators=(",", ":")).encode()  # "ascii": non-ASCII as \\uXXXX


def case(seed: int) -> tuple[list[bytes], dict[str, Any], Any]:
    """The seed's upstream SSE frames, the request's extra fields and how the body is sent."""
    rng = random.Random(seed)
    # half the cases are like a paced stream (LF, a frame per read, few odd frames): the fast
    # path's every-chunk way; the others anything
    paced = rng.random() < 0.5
    style = rng.choice(["compact"] * 5 + ["spaced", "ascii"])
    nl = "\n" if paced else rng.choice(["\n"] * 6 + ["\r\n"] * 2 + ["\r", "mixed"])
    usage = rng.random() < 0.3
    f = ChunkFactory(include_usage=usage, system_fingerprint=rng.choice([None, "fp_fake0001", "fp_fake0001"]))
    choices = 2 if rng.random() < 0.12 else 1
    obfuscate = rng.random() < 0.25
    azure = rng.random() < 0.08  # Azure's content_filter_results in every choice, prompt_filter_results first
    odd = rng.choice([0.0, 0.03] if paced else [0.0, 0.03, 0.1, 0.38])  # how often a frame is not a plain content frame
    # a few pieces per stream (repeats, and runs broken by short or blank pieces, are common) or all
    runs = rng.choice([0.0, 0.05, 0.15, 0.3])  # how often a run of one piece comes
    words = rng.sample(VOCAB, rng.choice([2, 3, 3, 4, 6])) if rng.random() < 0.7 else VOCAB

    def newline() -> str:
        return rng.choice(["\n", "\r\n"]) if nl == "mixed" else nl

    def data(obj: Any, prefix: bytes = b"") -> bytes:
        n = newline().encode()
        text = obj if isinstance(obj, bytes) else _encode(obj, style if rng.random() < 0.95 else "spaced")
        sep = b"data:" if rng.random() < 0.05 else b"data: "
        return prefix.replace(b"\n", n) + sep + text + n + n

    def content(text: str, index: int = 0) -> dict[str, Any]:
        chunk = f.content(text, index)
        if azure:
            chunk["choices"][0]["content_filter_results"] = {"hate": {"filtered": False, "severity": "safe"}}
        if obfuscate:
            chunk["obfuscation"] = "o" * rng.randint(1, 12)
        return chunk

    frames: list[bytes] = []
    if azure:
        frames.append(data({**f.chunk([]), "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}))
    role = rng.random()
    for index in range(choices):
        if role < 0.75:
            frames.append(data(f.role(index)))
        elif role < 0.9:
            frames.append(data(f.delta({"role": "assistant", "content": ""}, index)))
        elif role < 0.95:
            frames.append(data(f.delta({"role": "assistant"}, index)))
    pieces = rng.randint(0, 60)
    for _ in range(pieces):
        r = 0.0 if rng.random() > odd else rng.uniform(0.62, 1.0)
        if rng.random() < runs:
            r = 0.65
        index = rng.randrange(choices)
        if r < 0.62:
            frames.append(data(content(rng.choice(words), index)))
        elif r < 0.68:  # a run of one piece (trips the repeat guard at 4 and more), maybe broken
            text = rng.choice(words)
            run = [text] * rng.randint(2, 6)
            if rng.random() < 0.5:  # by a short piece (ends the run) or a blank one (does not)
                run.insert(rng.randint(1, len(run) - 1), rng.choice([",", "a", "ok", "✓", " ", "\n", "  "]))
            frames += [data(content(piece, index)) for piece in run]
        elif r < 0.71:
            frames.append(rng.choice([b": keep-alive", b":", b": ping 1"]) + (newline() * 2).encode())
        elif r < 0.74:
            frames.append(data(content(rng.choice(words), index),
                               rng.choice([b"event: message\n", b"id: 7\n", b"retry: 100\n", b"event: x\nid: 1\n"])))
        elif r < 0.76:
            frames.append(rng.choice([b"data:", b"data: ", b"event: ping"]) + (newline() * 2).encode())
        elif r < 0.79:  # multi-line data
            text = _encode(content(rng.choice(words), index), style)
            half = rng.randint(1, len(text) - 1)
            n = newline().encode()
            frames.append(b"data: " + text[:half] + n + b"data: " + text[half:] + n + n)
        elif r < 0.83:
            call = {"index": 0, "function": {"arguments": rng.choice(['{"a":', ' 1}', '"x"'])}}
            if rng.random() < 0.3:
                call.update(id="call_1", type="function", function={"name": "f", "arguments": ""})
            frames.append(data(f.delta({"tool_calls": [call]}, index)))
        elif r < 0.85:
            frames.append(data(f.delta({"reasoning_content": rng.choice(words)}, index)))
        elif r < 0.87:
            frames.append(data(f.chunk([{"index": index, "delta": {"content": rng.choice(words)},
                                         "logprobs": {"content": []}, "finish_reason": None}])))
        elif r < 0.89:
            frames.append(data({**content(rng.choice(words), index), "id": "chatcmpl-other"}))
        elif r < 0.91:
            frames.append(data(f.delta({"content": ""}, index)))
        elif r < 0.93:
            frames.append(data(f.delta({"role": "assistant", "content": rng.choice(words)}, index)))
        elif r < 0.95:
            frames.append(data({**content(rng.choice(words), index), "usage": None}))
        else:
            frames.append(data(content(rng.choice(words), index)))
    end = rng.random()
    if end < 0.08:  # an error object in the 200 stream
        frames.append(data(error_body("upstream broke", rng.choice(["server_error", "rate_limit_error"]), None, None)))
        if rng.random() < 0.5:
            frames += [data(content(" after-error")), data(b"[DONE]")]
    elif end < 0.12:  # a malformed frame
        frames.append(data(b'{"id": "chatcmpl-broken", "choices": [{'))
        frames.append(data(content(" after-broken")))
    else:
        reason = rng.choice(["stop", "stop", "length", "tool_calls", "content_filter"])
        for index in range(choices):
            if rng.random() < 0.9:
                finish = f.finish(reason, index)
                if rng.random() < 0.1:  # usage in the finish frame
                    finish["usage"] = usage_dict(7, pieces + 1)
                frames.append(data(finish))
        if rng.random() < 0.15:  # content after the finish frame, another finish (the first reason counts)
            frames += [data(content(rng.choice(words))), data(f.finish(rng.choice(["length", "stop"])))]
        if usage or rng.random() < 0.1:
            frames.append(data(f.chunk([], usage_dict(7, pieces + 1))))
        if rng.random() < 0.9:
            frames.append(data(b"[DONE]"))
        if rng.random() < 0.12:  # frames after [DONE]
            frames += [data(content(" AFTER-DONE")), data(f.finish("length"))]
    if rng.random() < 0.04:
        frames[-1] = frames[-1].rstrip(b"\r\n")  # an unterminated last frame
    extra: dict[str, Any] = {}
    if rng.random() < 0.4:
        extra["stream_options"] = {"include_usage": rng.random() < 0.8}
    if rng.random() < 0.15:
        extra["model"] = "alias"
    return frames, extra, _reply(rng, frames, paced)


def _reply(rng: random.Random, frames: list[bytes], paced: bool) -> Any:
    """How the frames are sent: cut into reads (at frame boundaries, in groups, at random bytes)
    over a chunked body (one HTTP chunk per read), raw chunked framing cut anywhere, or a
    Content-Length body."""
    body = b"".join(frames)
    cut = rng.choice(["frames"] * 8 + ["mixed"] if paced else ["frames", "frames", "groups", "bytes", "mixed"])
    if cut == "frames":
        parts = list(frames)
    elif cut == "groups":
        parts, i = [], 0
        while i < len(frames):
            k = rng.randint(1, 6)
            parts.append(b"".join(frames[i:i + k]))
            i += k
    elif cut == "bytes":
        points = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 60)))) if len(body) > 1 else []
        parts = [body[a:b] for a, b in zip([0, *points], [*points, len(body)])]
    else:
        parts = []
        for frame in frames:
            if len(frame) > 2 and rng.random() < 0.3:
                k = rng.randint(1, len(frame) - 1)
                parts += [frame[:k], frame[k:]]
            else:
                parts.append(frame)
    gaps = rng.choice([[0.0], [0.0, 0.002], [0.002], [0.001, 0.004]])
    drop = rng.random() < 0.04
    transport = "chunked" if paced else rng.choice(["chunked"] * 6 + ["raw", "raw", "length", "eof"])
    if transport in ("raw", "eof"):  # the HTTP chunk framing itself cut at random places
        if transport == "eof":  # no framing: the body ends with the connection
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
            wire = b"".join(parts)
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            # size lines as servers may write them: upper-case hex, leading zeros, an extension
            line = rng.choice([b"%x\r\n", b"%x\r\n", b"%X\r\n", b"00%x\r\n", b"%x;ext=1\r\n"])
            wire = b"".join(line % len(p) + p + b"\r\n" for p in parts if p)
            if not drop:
                wire += rng.choice([b"0\r\n\r\n", b"0\r\nX-Trailer: 1\r\n\r\n"])
        points = sorted(rng.sample(range(1, len(wire)), min(len(wire) - 1, rng.randint(1, 80))))
        writes = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)])]
        out: list[Any] = [head + writes[0]]
        for w in writes[1:]:
            out += [Sleep(rng.choice(gaps)), w]
        return lambda: Reply.raw_bytes(*out)
    body_parts: list[Any] = []
    for p in parts:
        if body_parts:
            gap = rng.choice(gaps)
            if gap:
                body_parts.append(Sleep(gap))
        body_parts.append(p)
    if drop:
        body_parts += [Sleep(0.005), Drop()]
    headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    if transport == "length":
        return lambda: Reply(status=200, headers=headers, body=list(body_parts), chunked=False)
    return lambda: Reply(status=200, headers=headers, body=list(body_parts), chunked=True)


def _client_frames(body: bytes, request_id: str) -> list[str]:
    assert body.endswith(b"\n\n"), body[-300:]
    return [frame.replace(request_id, "REQ") for frame in body.decode().split("\n\n")[:-1]]


@pytest.mark.parametrize("seed", range(SEED, SEED + CASES))
def test_fast_path_matches_general_path(gateway, general, upstream, seed):  # noqa: F811 - the fixtures
    frames, extra, reply = case(seed)
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True, **extra}
    results = []
    for gw in (gateway, general):
        upstream.enqueue(reply())
        status, data, request_id = _post(gw.url, request)
        record = gw.wait_log(lambda r, rid=request_id: r.get("request_id") == rid)
        client = _client_frames(data, request_id) if status == 200 else data.replace(request_id.encode(), b"REQ")
        results.append((status, client, record))
    (status, fast, record), (slow_status, slow, slow_record) = results
    assert (status, fast) == (slow_status, slow), f"seed {seed}: upstream frames {frames!r}"
    for key in ("chunks", "cost", "error", "status", "prompt_tokens", "completion_tokens"):
        assert record.get(key) == slow_record.get(key), (key, seed)
    assert "fast_chunks" not in slow_record
    if os.environ.get("LLMRELAY_FUZZ_STATS"):
        with open(os.environ["LLMRELAY_FUZZ_STATS"], "a") as out:
            out.write(f"{seed} {record.get('fast_chunks', 0)} {record.get('chunks')} {status}\n")
