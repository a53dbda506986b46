"""Tests for llmrelay.tokens: offline token counting."""

from __future__ import annotations

import base64
import gzip
import os
import struct
import subprocess
import sys
import textwrap
import threading
from importlib import resources
from pathlib import Path

import pytest

from llmrelay import tokens
from llmrelay.tokens import (
    decode,
    encode,
    encoding_name_for_model,
    get_encoding,
    image_token_count,
    token_counter,
)

SRC = str(Path(tokens.__file__).resolve().parents[1])

# Messages and tools from OpenAI's cookbook "How to count tokens with tiktoken",
# whose published prompt_tokens were measured against the live API.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]

SAMPLES = [
    "hello world",
    "",
    " ",
    "Hello, World! How's it going? I'm fine; they'll see.",
    "def f(x):\n    return x ** 2  # square\n\n\n",
    "Ünïcödé — 日本語のテキスト, 中文, 한국어, العربية, עברית, Ελληνικά 🚀🔥👍🏽",
    "1234567890 3.14159 1e-10 0xDEADBEEF",
    "   leading and trailing spaces   \n\r\n\t",
    "<|endoftext|> is ordinary text here <|endofprompt|>",
    "URL: https://example.com/a/b?c=d&e=f#g  path/to/file.py",
    "CamelCaseWordsAndALLCAPS and snake_case_words, don't WON'T",
    "a" * 500 + " " + "xyz" * 200,
]


def _shipped_bytes(filename: str) -> bytes:
    return gzip.decompress((resources.files("llmrelay") / "data" / filename).read_bytes())


@pytest.fixture(scope="module")
def reference_tiktoken():
    """tiktoken's own registry (openai_public constructors), fed the shipped files
    instead of downloading: any other read fails the test."""
    import tiktoken
    import tiktoken.load
    import tiktoken.registry

    served = {
        "cl100k_base.tiktoken": _shipped_bytes("cl100k_base.tiktoken.gz"),
        "o200k_base.tiktoken": _shipped_bytes("o200k_base.tiktoken.gz"),
    }

    def fake_read_file(blobpath: str) -> bytes:
        name = blobpath.rsplit("/", 1)[-1]
        if name not in served:
            raise AssertionError(f"unexpected tiktoken read: {blobpath}")
        return served[name]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")  # disables tiktoken's cache: always read_file
        mp.setattr(tiktoken.load, "read_file", fake_read_file)
        mp.setattr(tiktoken.registry, "ENCODINGS", {})
        yield tiktoken


# --------------------------------------------------------------------------- plain text


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "", "claude-3-5-sonnet"])
def test_hello_world_is_two_tokens(model):
    assert token_counter(model, text="hello world") == 2
    assert len(encode(model, "hello world")) == 2


def test_known_ids_and_roundtrip():
    assert encode("gpt-4", "hello world") == [15339, 1917]
    assert encode("gpt-4o", "hello world") == [24912, 2375]
    for model in ("gpt-4", "gpt-4o"):
        for s in SAMPLES:
            assert decode(model, encode(model, s)) == s


def test_text_list_and_empty():
    one = token_counter("gpt-4o", text="hello world")
    assert token_counter("gpt-4o", text=["hello world", "hello world"]) == 2 * one
    assert token_counter("gpt-4o", text="") == 0
    assert token_counter("gpt-4o") == 0
    assert token_counter("gpt-4o", messages=[]) == 0


def test_special_token_text_is_counted_not_rejected():
    n = token_counter("gpt-4o", text="<|endoftext|>")
    assert n > 1  # encoded as ordinary text, not the single special token
    assert 199999 not in encode("gpt-4o", "<|endoftext|>")


# --------------------------------------------------------------------------- exactness vs tiktoken


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_encoding_definition_matches_tiktoken(reference_tiktoken, name):
    ref = reference_tiktoken.get_encoding(name)
    ours = get_encoding(name)
    assert ours.name == ref.name
    assert ours._pat_str == ref._pat_str
    assert ours._special_tokens == ref._special_tokens
    assert ours._mergeable_ranks == ref._mergeable_ranks
    assert ours.n_vocab == ref.n_vocab
    for s in SAMPLES:
        assert ours.encode_ordinary(s) == ref.encode_ordinary(s)
        assert ours.encode(s, allowed_special="all") == ref.encode(s, allowed_special="all")


# OpenAI model -> encoding, as in tiktoken 0.14's model table (older tiktoken releases
# lack the newer models, so the table is written out rather than asked of tiktoken).
OPENAI_MODELS = [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4.1-mini", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-32k", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-3-large", "cl100k_base"),
        ("davinci-002", "cl100k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("ft:gpt-3.5-turbo-0125:acme::abc123", "cl100k_base"),
]


@pytest.mark.parametrize(("model", "expected"), OPENAI_MODELS)
def test_model_mapping_and_counts_match_tiktoken(reference_tiktoken, model, expected):
    assert encoding_name_for_model(model) == expected
    ref = reference_tiktoken.get_encoding(expected)
    for s in SAMPLES:
        assert token_counter(model, text=s) == len(ref.encode_ordinary(s))


def test_mapping_agrees_with_installed_tiktoken_table(reference_tiktoken):
    """Where the installed tiktoken knows a model and is new enough to know them all,
    it must agree with our table."""
    try:
        knows_new_models = reference_tiktoken.encoding_name_for_model("gpt-5") == "o200k_base"
    except KeyError:
        knows_new_models = False
    if not knows_new_models:
        pytest.skip("installed tiktoken's model table predates gpt-4.1/gpt-5")
    checked = 0
    for model, _ in OPENAI_MODELS:
        try:
            name = reference_tiktoken.encoding_name_for_model(model)
        except KeyError:
            continue
        assert encoding_name_for_model(model) == name, model
        checked += 1
    assert checked


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/gpt-4o", "o200k_base"),
        ("azure/gpt-4", "cl100k_base"),
        ("azure/gpt-35-turbo", "cl100k_base"),
        ("openrouter/openai/gpt-4o-mini", "o200k_base"),
        ("OpenAI/GPT-4-Turbo", "cl100k_base"),
        ("gpt-oss-120b", "o200k_base"),
        ("anthropic/claude-sonnet-4-5", "o200k_base"),
        ("gemini/gemini-2.5-pro", "o200k_base"),
        ("groq/llama-3.3-70b-versatile", "o200k_base"),
        ("something-unknown", "o200k_base"),
        ("", "o200k_base"),
        ("cl100k_base", "cl100k_base"),
    ],
)
def test_model_mapping_other_models(model, expected):
    assert encoding_name_for_model(model) == expected


# --------------------------------------------------------------------------- messages


@pytest.mark.parametrize(("model", "expected"), [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)])
def test_cookbook_messages_match_published_api_counts(model, expected):
    assert token_counter(model, messages=COOKBOOK_MESSAGES) == expected


@pytest.mark.parametrize(("model", "expected"), [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)])
def test_cookbook_tools_match_published_api_counts(model, expected):
    assert token_counter(model, messages=WEATHER_MESSAGES, tools=WEATHER_TOOLS) == expected


def test_message_overhead():
    enc = get_encoding("gpt-4o")
    msg = {"role": "user", "content": "hello world"}
    one = 3 + len(enc.encode("user")) + 2
    assert token_counter("gpt-4o", messages=[msg]) == one + 3  # + reply priming
    assert token_counter("gpt-4o", messages=[msg, msg]) == 2 * one + 3
    named = dict(msg, name="bob")
    assert token_counter("gpt-4o", messages=[named]) == one + len(enc.encode("bob")) + 1 + 3
    # content as a list of parts counts the same text
    parts = {"role": "user", "content": [{"type": "text", "text": "hello world"}]}
    assert token_counter("gpt-4o", messages=[parts]) == one + 3
    # a missing / None content still costs the overhead
    assert token_counter("gpt-4o", messages=[{"role": "assistant", "content": None}]) == 3 + 1 + 3


def test_tool_calls_and_tool_messages():
    enc = get_encoding("gpt-4o")
    args = '{"location": "Paris, FR", "unit": "celsius"}'
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_current_weather", "arguments": args}}
        ],
    }
    base = token_counter("gpt-4o", messages=[{"role": "assistant", "content": None}])
    expected_extra = len(enc.encode("get_current_weather")) + len(enc.encode(args))
    assert token_counter("gpt-4o", messages=[assistant]) == base + expected_extra
    tool_msg = {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}
    assert token_counter("gpt-4o", messages=[tool_msg]) == 3 + len(enc.encode("tool")) + len(enc.encode('{"temp": 21}')) + 3


def test_tools_alone_and_odd_shapes():
    n = token_counter("gpt-4o", tools=WEATHER_TOOLS)
    assert n == 101 - token_counter("gpt-4o", messages=WEATHER_MESSAGES)
    # missing description / parameters, nested schemas, non-function tools: no crash, positive
    odd = [
        {"type": "function", "function": {"name": "ping"}},
        {
            "type": "function",
            "function": {
                "name": "search",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "filters": {"type": "object", "properties": {"tag": {"type": "string"}}},
                        "ids": {"type": ["array", "null"], "items": {"type": "integer"}},
                        "level": {"type": "integer", "enum": [1, 2, 3]},
                    },
                },
            },
        },
        {"type": "web_search"},
    ]
    assert token_counter("gpt-4o", tools=odd) > 12
    assert token_counter("gpt-4o", tools=[]) == 0


# --------------------------------------------------------------------------- images


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _png(w: int, h: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0) + b"\0" * 4


def _gif(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\0" * 8


def _jpeg(w: int, h: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def _webp_vp8x(w: int, h: int) -> bytes:
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_image_rule():
    assert image_token_count(4096, 8192, "low") == 85
    assert image_token_count(1024, 1024, "high") == 765
    assert image_token_count(2048, 4096, "high") == 1105
    assert image_token_count(512, 512, "high") == 255
    assert image_token_count(None, None, "auto") == 765  # unknown size: documented default


@pytest.mark.parametrize("make", [_png, _gif, _jpeg, _webp_vp8x])
def test_image_parts_read_size_from_data_urls(make):
    mime = {"_png": "image/png", "_gif": "image/gif", "_jpeg": "image/jpeg", "_webp_vp8x": "image/webp"}[make.__name__]
    text_only = token_counter("gpt-4o", messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])

    def with_image(data: bytes, detail: str = "high") -> int:
        content = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": _data_url(mime, data), "detail": detail}}]
        return token_counter("gpt-4o", messages=[{"role": "user", "content": content}]) - text_only

    assert with_image(make(2048, 4096)) == 1105
    assert with_image(make(512, 512)) == 255
    assert with_image(make(2048, 4096), "low") == 85


def test_remote_and_broken_images_use_estimate():
    def cost(url: str, detail: str | None = None) -> int:
        spec = {"url": url} if detail is None else {"url": url, "detail": detail}
        msg = {"role": "user", "content": [{"type": "image_url", "image_url": spec}]}
        return token_counter("gpt-4o", messages=[msg]) - token_counter("gpt-4o", messages=[{"role": "user", "content": []}])

    assert cost("https://example.com/cat.png") == 765  # never fetched
    assert cost("https://example.com/cat.png", "low") == 85
    assert cost("data:image/png;base64,!!!not-base64!!!") == 765
    assert cost("data:image/png;base64," + base64.b64encode(b"garbage").decode()) == 765


# --------------------------------------------------------------------------- laziness, threads, offline


def _run_py(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = SRC + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, capture_output=True, text=True, timeout=120)


def test_import_does_not_load_tiktoken():
    proc = _run_py(
        """
        import sys
        import llmrelay.tokens as t
        assert "tiktoken" not in sys.modules, "tiktoken imported at module import"
        assert t.token_counter("gpt-4o", text="hello world") == 2
        assert "tiktoken" in sys.modules
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_loaded_encoding_keeps_no_ranks_dict_and_still_pickles():
    """tiktoken keeps the dict of ranks only for pickling (~27 MiB of RSS for o200k): a loaded
    encoding holds none until someone reads it, and it still pickles into a whole encoding."""
    proc = _run_py(
        """
        import pickle
        from llmrelay.tokens import get_encoding
        enc = get_encoding("o200k_base")
        assert enc.encode_ordinary("hello world") == [24912, 2375]
        held = [len(v) for v in vars(enc).values() if isinstance(v, dict) and len(v) > 1000]
        assert not held, held
        copy = pickle.loads(pickle.dumps(enc))
        assert copy.encode_ordinary("hello world") == [24912, 2375]
        assert copy.n_vocab == enc.n_vocab and len(enc._mergeable_ranks) == 199998
        assert enc._mergeable_ranks[b"hello"] == 24912 and dict(copy._mergeable_ranks) == dict(enc._mergeable_ranks)
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_works_without_network(tmp_path):
    """Empty tiktoken cache + every socket connection refused: counting still works,
    and nothing even tries to resolve or connect."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    proc = _run_py(
        """
        import socket
        attempts = []

        def refuse(*args, **kwargs):
            attempts.append(args)
            raise OSError("network disabled in test")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        import os
        from llmrelay.tokens import token_counter, encode
        assert token_counter("gpt-4o", text="hello world") == 2
        assert token_counter("gpt-4", text="hello world") == 2
        assert encode("gpt-4", "hello world") == [15339, 1917]
        assert token_counter("claude-3-opus", messages=[{"role": "user", "content": "hi"}]) > 0
        assert attempts == [], attempts
        assert os.listdir(os.environ["TIKTOKEN_CACHE_DIR"]) == []

        # sanity: the guard is effective -- tiktoken's own loader would need the network here
        import tiktoken
        try:
            tiktoken.get_encoding("cl100k_base")
        except Exception:
            pass
        else:
            raise AssertionError("tiktoken loaded cl100k_base without network: guard ineffective")
        print("OK")
        """,
        env={"TIKTOKEN_CACHE_DIR": str(cache), "DATA_GYM_CACHE_DIR": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"


def test_concurrent_first_use_loads_once(monkeypatch):
    monkeypatch.setattr(tokens, "_ENCODINGS", {})
    calls: list[str] = []
    real = tokens._load_ranks

    def counting(filename, sha256):
        calls.append(filename)
        return real(filename, sha256)

    monkeypatch.setattr(tokens, "_load_ranks", counting)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def worker(i: int) -> None:
        barrier.wait()
        model = "gpt-4o" if i % 2 else "gpt-4"
        results.append((model, get_encoding(model), token_counter(model, text="hello world")))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls) == ["cl100k_base.tiktoken.gz", "o200k_base.tiktoken.gz"]
    assert all(n == 2 for _, _, n in results)
    assert len({id(enc) for _, enc, _ in results}) == 2


def test_corrupt_data_is_detected(monkeypatch):
    with pytest.raises(RuntimeError, match="corrupt"):
        tokens._load_ranks("o200k_base.tiktoken.gz", "0" * 64)


def test_responses_style_image_part():
    empty = token_counter("gpt-4o", messages=[{"role": "user", "content": []}])
    low = {"type": "input_image", "image_url": "https://example.com/x.png", "detail": "low"}
    high = {"type": "input_image", "image_url": _data_url("image/png", _png(2048, 4096)), "detail": "high"}
    assert token_counter("gpt-4o", messages=[{"role": "user", "content": [low]}]) - empty == 85
    assert token_counter("gpt-4o", messages=[{"role": "user", "content": [high]}]) - empty == 1105


# ----------------------------------------------------------------------------- counting by words
_EDGE_PIECES = [
    "a", "Z", "é", "ß", "ǅ", "x", " ", " ", " ", "  ", "\n", "\r\n", "\t", "\xa0", "\u3000", "\u2028", "\x1c", "\x85",
    "1", "23", "4567", "²", "½", "Ⅻ", "'", "'s", "'LL", "’", ".", ",", "!", "/", "(", "—", "中文", "日本", "😀",
    "👍🏽", "\u200d", "\u0301", "\u200b", "<|endoftext|>", "\x00", "\ud800", "-", "_", "#", "```", "café", "THE",
    "Hello", "world", "?!", "...", "$",
]


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_count_text_equals_tiktoken(encoding, monkeypatch):
    """count_text sums remembered word counts: it must equal tiktoken's count on any text (edge
    cases: runs of spaces, other whitespace before a space, digits, contractions, marks, lone
    surrogates), cold and remembered, also when the memo is emptied along the way."""
    import random

    monkeypatch.setattr(tokens, "MEMO_MAX", 500)
    monkeypatch.setattr(tokens, "_MEMOS", {})
    enc = get_encoding(encoding)
    rng = random.Random(12)
    for _ in range(3000):
        text = "".join(rng.choice(_EDGE_PIECES) for _ in range(rng.randint(0, 60)))
        want = len(enc.encode_ordinary(text))
        assert tokens.count_text(enc, text) == want, repr(text)
        assert tokens.count_text(enc, text) == want, repr(text)
    assert 0 < sum(len(m) for m in tokens._MEMOS[encoding]) <= 1000
    # Long ASCII text is searched for each kind of whitespace before a space: each text has one
    # kind (any other kind before a space would make every space of the text be checked).
    visible = [p for p in _EDGE_PIECES if p.isascii() and not p.isspace() and p.isprintable()] + ["\x00", "\x7f"]
    for _ in range(1500):
        pieces = visible + [rng.choice(["\n", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f"])] * 4
        words = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(60, 200))]
        text = " ".join(words)
        want = len(enc.encode_ordinary(text))
        assert tokens.count_text(enc, text) == want, repr(text)
        assert tokens.count_text(enc, text) == want, repr(text)
    prose = Path(tokens.__file__).read_text()  # code and prose, newlines, indentation
    for start in range(0, len(prose) - 4000, 997):
        text = prose[start : start + rng.randint(0, 4000)]
        assert tokens.count_text(enc, text) == len(enc.encode_ordinary(text))
