"""Offline token counting.

Counts tokens the way OpenAI's chat models do, without any network access:
the BPE rank files for ``cl100k_base`` and ``o200k_base`` ship inside this
package (``llmrelay/data/*.tiktoken.gz``, OpenAI's MIT-licensed files, checked
against the SHA-256 hashes tiktoken uses) and are turned into
``tiktoken.Encoding`` objects directly, so tiktoken's downloader and cache
(``TIKTOKEN_CACHE_DIR``) are never involved.

Encodings are loaded lazily, once per process, under a lock; importing this
module does not import tiktoken. A loaded encoding does not keep the Python dict
of its ranks that ``tiktoken.Encoding`` holds only to be pickled (~27 MiB for
``o200k_base``; the tokenizer itself has its own copy): ``_mergeable_ranks`` is a
:class:`_BundledRanks` that rereads the bundled file when it is read or pickled.

Model -> encoding (after stripping any ``provider/`` prefix and ``ft:``):

* ``gpt-4o*``, ``chatgpt-4o*``, ``gpt-4.1*``, ``gpt-4.5*``, ``gpt-5*``,
  ``o1*``, ``o3*``, ``o4*``, ``gpt-oss*`` -> ``o200k_base``
  (gpt-oss uses ``o200k_harmony``, whose ordinary tokens are the same);
* ``gpt-4*``, ``gpt-3.5*``, ``gpt-35*``, ``text-embedding*``,
  ``davinci-002``, ``babbage-002`` -> ``cl100k_base``;
* anything else (Claude, Gemini, Llama, Mistral, unknown) -> ``o200k_base``.
  Those providers use their own tokenizers, so the count is only an
  approximation (usually within ~10-20% for English text).

Chat messages follow OpenAI's published counting recipe ("How to count tokens
with tiktoken"): 3 tokens per message, +1 when a ``name`` is set, +3 for the
priming of the reply. Text is encoded as ordinary text (special-token strings
such as ``<|endoftext|>`` in user content are counted as plain text, never
rejected). Approximations, documented per helper below: image parts, tool
calls in assistant messages, and ``tools`` definitions.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import tiktoken

__all__ = [
    "CL100K_BASE",
    "O200K_BASE",
    "decode",
    "encode",
    "encoding_name_for_model",
    "get_encoding",
    "image_token_count",
    "token_counter",
    "completion_text",
    "counted_usage",
    "count_text",
]

CL100K_BASE = "cl100k_base"
O200K_BASE = "o200k_base"
DEFAULT_ENCODING = O200K_BASE

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"

# Split patterns and special tokens as defined by tiktoken (tiktoken_ext/openai_public.py,
# tiktoken >= 0.8). The test-suite checks they equal tiktoken's own definitions.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

# name -> (data file, sha256 of the uncompressed file, pattern, special tokens)
_SPECS: dict[str, tuple[str, str, str, dict[str, int]]] = {
    CL100K_BASE: (
        "cl100k_base.tiktoken.gz",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PAT,
        {
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    O200K_BASE: (
        "o200k_base.tiktoken.gz",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PAT,
        {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
}

_ENCODINGS: dict[str, tiktoken.Encoding] = {}
_LOCK = threading.Lock()


def _load_ranks(filename: str, sha256: str) -> dict[bytes, int]:
    import gzip
    import hashlib
    from importlib import resources

    raw = (resources.files("llmrelay") / "data" / filename).read_bytes()
    data = gzip.decompress(raw)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"llmrelay: bundled tokenizer file {filename} is corrupt (hash mismatch)")
    b64 = base64.b64decode
    return {b64(tok): int(rank) for tok, rank in (line.split() for line in data.splitlines() if line)}


class _BundledRanks(Mapping):  # type: ignore[type-arg]
    """An encoding's ``_mergeable_ranks``, read again from the bundled file when needed.

    ``tiktoken.Encoding`` keeps the ~200,000-entry dict it was built from only for pickling
    (its Rust tokenizer has its own copy): ≈ 27 MiB of RSS for ``o200k_base`` that no encode
    or decode reads. This stands in for it: reading it loads the dict (kept from then on),
    pickling it pickles the call that loads it, so an unpickled encoding is whole."""

    __slots__ = ("_filename", "_sha256", "_loaded")

    def __init__(self, filename: str, sha256: str) -> None:
        self._filename = filename
        self._sha256 = sha256
        self._loaded: dict[bytes, int] | None = None

    def _ranks(self) -> dict[bytes, int]:
        if self._loaded is None:
            self._loaded = _load_ranks(self._filename, self._sha256)
        return self._loaded

    def __getitem__(self, key: bytes) -> int:
        return self._ranks()[key]

    def __iter__(self) -> Any:
        return iter(self._ranks())

    def __len__(self) -> int:
        return len(self._ranks())

    def __reduce__(self) -> tuple:
        return (_load_ranks, (self._filename, self._sha256))


def _load_encoding(name: str) -> tiktoken.Encoding:
    enc = _ENCODINGS.get(name)
    if enc is not None:
        return enc
    with _LOCK:
        enc = _ENCODINGS.get(name)
        if enc is None:
            import tiktoken  # deferred: keep `import llmrelay.tokens` cheap

            filename, sha256, pat_str, special = _SPECS[name]
            enc = tiktoken.Encoding(
                name=name,
                pat_str=pat_str,
                mergeable_ranks=_load_ranks(filename, sha256),
                special_tokens=dict(special),
            )
            enc._mergeable_ranks = _BundledRanks(filename, sha256)  # type: ignore[assignment]
            _ENCODINGS[name] = enc
    return enc


# --------------------------------------------------------------------------- model mapping

_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.", "gpt-5", "o1", "o3", "o4", "gpt-oss")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding", "davinci-002", "babbage-002")


def _bare_model(model: str) -> str:
    m = (model or "").strip().lower()
    if m.startswith("ft:"):  # ft:gpt-4o-mini-2024-07-18:org::id
        m = m[3:].split(":", 1)[0]
    return m.rsplit("/", 1)[-1]  # openai/gpt-4o, azure/gpt-4, openrouter/openai/gpt-4o


def encoding_name_for_model(model: str) -> str:
    """Name of the encoding used to count tokens for ``model`` (see module docstring)."""
    m = _bare_model(model)
    if m in _SPECS:  # an encoding name passed directly
        return m
    if m.startswith(_O200K_PREFIXES):
        return O200K_BASE
    if m.startswith(_CL100K_PREFIXES):
        return CL100K_BASE
    return DEFAULT_ENCODING


#: model name -> encoding name, as encoding_name_for_model answered (emptied past 4096 names).
_NAMES: dict[str, str] = {}


def get_encoding(model_or_encoding: str = "") -> tiktoken.Encoding:
    """The (cached) ``tiktoken.Encoding`` for a model name or an encoding name."""
    name = _NAMES.get(model_or_encoding)
    if name is None:
        name = encoding_name_for_model(model_or_encoding)
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        _NAMES[model_or_encoding] = name
    return _load_encoding(name)


def encode(model: str = "", text: str = "", custom_tokenizer: Any = None) -> list[int]:
    """Token ids of ``text`` as ordinary text (special-token strings are not special), with
    ``model``'s encoding (LiteLLM's ``encode``; ``custom_tokenizer`` is accepted and ignored)."""
    return get_encoding(model).encode_ordinary(text)


def decode(model: str = "", tokens: Iterable[int] = (), custom_tokenizer: Any = None) -> str:
    """The text of token ids (LiteLLM's ``decode``; ``custom_tokenizer`` is accepted and ignored)."""
    return get_encoding(model).decode(list(tokens))


# --------------------------------------------------------------------------- images

_IMAGE_LOW_TOKENS = 85
_IMAGE_TILE_TOKENS = 170
# Size assumed when an image's dimensions are unknown (a remote URL is never fetched).
_DEFAULT_IMAGE_SIZE = (1024, 1024)


def image_token_count(width: int | None = None, height: int | None = None, detail: str = "auto") -> int:
    """OpenAI's image rule for gpt-4o-class models.

    ``low`` detail: 85 tokens. ``high``/``auto``: the image is scaled to fit in
    2048x2048, then down so its shortest side is at most 768 px; the result costs
    85 + 170 per 512 px tile. Unknown dimensions count as 1024x1024 (765 tokens).
    Model-specific multipliers (e.g. gpt-4o-mini's) and patch-based models are
    not modelled.
    """
    if detail == "low":
        return _IMAGE_LOW_TOKENS
    if not width or not height or width <= 0 or height <= 0:
        width, height = _DEFAULT_IMAGE_SIZE
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return _IMAGE_LOW_TOKENS + _IMAGE_TILE_TOKENS * tiles


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, WebP or JPEG header, else None."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            return None
        if data[:2] == b"\xff\xd8":
            i, n = 2, len(data)
            while i + 9 < n:
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker == 0xFF:  # fill byte
                    i += 1
                    continue
                if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
                    i += 2
                    continue
                (length,) = struct.unpack(">H", data[i + 2 : i + 4])
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return w, h
                i += 2 + length
    except (struct.error, IndexError):
        return None
    return None


def _image_part_tokens(part: Mapping[str, Any]) -> int:
    spec = part.get("image_url")
    if isinstance(spec, Mapping):
        url, detail = spec.get("url") or "", spec.get("detail") or "auto"
    else:
        # Responses-API style: {"type": "input_image", "image_url": "...", "detail": "low"}
        url, detail = spec if isinstance(spec, str) else "", part.get("detail") or "auto"
        source = part.get("source")
        if not url and isinstance(source, Mapping) and source.get("type") == "base64":
            # Anthropic style: {"type": "image", "source": {"type": "base64", "media_type", "data"}}
            url = f"data:{source.get('media_type') or 'image/png'};base64,{source.get('data') or ''}"
    if detail == "low":
        return _IMAGE_LOW_TOKENS
    size = None
    if url.startswith("data:") and "," in url:
        header, payload = url.split(",", 1)
        if header.endswith(";base64"):
            try:
                size = _image_size(base64.b64decode(payload))
            except (binascii.Error, ValueError):
                size = None
    w, h = size if size else (None, None)
    return image_token_count(w, h, detail)


# --------------------------------------------------------------------------- messages

_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMING = 3


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _count(enc: tiktoken.Encoding, value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, str):
        value = _dumps(value)
    return count_text(enc, value) if value else 0


# --------------------------------------------------------------------------- counting text by words
#
# ``len(enc.encode_ordinary(text))`` costs ~1.7k instructions per token in tiktoken (its split
# pattern runs over every character, then BPE over every piece), ~7.7k for a call on a short
# string. Text is counted here as the sum of remembered counts of its words instead, which is
# exact:
#
# tiktoken splits text into pieces with its pattern (``_CL100K_PAT`` / ``_O200K_PAT``) and
# byte-pair-merges each piece alone. Cut ``A + B`` where ``A`` ends with a character that is not
# whitespace and ``B`` starts with a space. No alternative of either pattern can run from such a
# character over a space (letters, digits, contractions, punctuation runs, their trailing
# ``[\r\n/]*`` and the whitespace alternatives all stop there, as they stop at the end of the
# text), and the pattern has no look-behind; so the pieces of ``A + B`` are the pieces of ``A``
# followed by those of ``B``, and ``count(A + B) == count(A) + count(B)``. ``str.isspace`` holds
# for every character of the patterns' ``\s`` (Unicode White_Space) and a few more, so "not
# ``isspace``" is a safe test. The text is therefore cut at every space that follows a
# non-whitespace character (``text.split(" ")``, then parts that end with whitespace or are
# empty joined to the next), each segment's count is looked up (``" " + part`` for all but the
# first), and only the segments never seen go through tiktoken: together, in one call (their
# concatenation in order has only such cuts between them), a few of them also alone to be
# remembered. The tests compare the result with tiktoken's on texts full of edge cases.

#: Segments remembered per encoding (the memo is emptied when it grows past this).
MEMO_MAX = 1 << 15
#: Longest segment remembered (longer ones are counted every time).
_MEMO_PART = 64
#: Segments never seen that are counted alone (and remembered) per call, at most; the others
#: are counted together in one call (a call costs ~7.7k instructions however short its text).
_MEMO_FILL = 8
#: encoding name -> (counts of first segments, counts of " " + segment)
_MEMOS: dict[str, tuple[dict[str, int], dict[str, int]]] = {}


def _space_after_space(text: str) -> bool:
    """Whether a space in ``text`` may follow whitespace (then a space is not always a cut).
    Long ASCII text is searched for each whitespace character (``str.isspace`` in ASCII, but
    the space) followed by a space, each first alone (a ``memchr``); other text is asked
    ``isprintable()`` (every whitespace character but the space is unprintable: a superset,
    cheaper for short text than the searches)."""
    if "  " in text:
        return True
    if len(text) > 160 and text.isascii():
        return (("\n" in text and "\n " in text) or ("\t" in text and "\t " in text)
                or ("\r" in text and "\r " in text) or ("\x0b" in text and "\x0b " in text)
                or ("\x0c" in text and "\x0c " in text) or ("\x1c" in text and "\x1c " in text)
                or ("\x1d" in text and "\x1d " in text) or ("\x1e" in text and "\x1e " in text)
                or ("\x1f" in text and "\x1f " in text))
    return not text.isprintable()


def count_text(enc: tiktoken.Encoding, text: str) -> int:
    """``len(enc.encode_ordinary(text))``, from the remembered counts of its words (exact; see
    the comment above)."""
    parts = text.split(" ")
    memo = _MEMOS.get(enc.name)
    if memo is None:
        memo = _MEMOS.setdefault(enc.name, ({}, {}))
    first, spaced = memo
    if len(parts) == 1:
        n = first.get(text)
        if n is None:
            n = len(enc.encode_ordinary(text)) if text else 0
            if len(text) <= _MEMO_PART:
                _remember(first, text, n, spaced)
        return n
    if _space_after_space(text):  # a space after whitespace is no cut
        parts = _cuts(parts)
    n = first.get(parts[0])
    if n is not None:
        rest = iter(parts)
        next(rest)
        try:  # every word remembered (the common case): no list of counts, no test for None
            return n + sum(map(spaced.__getitem__, rest))
        except KeyError:
            pass
    rest = iter(parts)
    next(rest)
    return _count_missing(enc, parts, n, list(map(spaced.get, rest)), first, spaced)


def _cuts(parts: list[str]) -> list[str]:
    """``text.split(" ")`` regrouped so that every part but the last ends with a character that
    is not whitespace (a space after whitespace, or a leading one, is no cut)."""
    out = [parts[0]]
    for part in parts[1:]:
        prev = out[-1]
        if prev and not prev[-1].isspace():
            out.append(part)
        else:
            out[-1] = f"{prev} {part}"
    return out


def _count_missing(enc: tiktoken.Encoding, parts: list[str], n: int | None, counts: list[int | None],
                   first: dict[str, int], spaced: dict[str, int]) -> int:
    total = 0
    fill = _MEMO_FILL
    head = parts[0]
    if n is None:
        n = len(enc.encode_ordinary(head)) if head else 0
        if len(head) <= _MEMO_PART:
            _remember(first, head, n, spaced)
        fill -= 1
    total += n
    unseen: list[str] = []
    for part, count in zip(parts[1:], counts):
        if count is None:
            count = spaced.get(part)  # the same word earlier in this text
            if count is None:
                if fill <= 0 or len(part) > _MEMO_PART:
                    unseen.append(part)
                    continue
                count = len(enc.encode_ordinary(" " + part))
                _remember(spaced, part, count, first)
                fill -= 1
        total += count
    if unseen:
        total += len(enc.encode_ordinary(" " + " ".join(unseen)))
    return total


def _remember(memo: dict[str, int], key: str, count: int, other: dict[str, int]) -> None:
    if len(memo) >= MEMO_MAX:
        memo.clear()
        other.clear()
    memo[key] = count


#: What LiteLLM counts an image as with ``use_default_image_token_count=True``.
DEFAULT_IMAGE_TOKEN_COUNT = 250


class _Options:
    """How parts without text are counted (``token_counter``'s LiteLLM keywords)."""

    __slots__ = ("default_image", "default_block")

    def __init__(self, default_image: bool = False, default_block: int | None = None) -> None:
        self.default_image = default_image
        self.default_block = default_block


_PLAIN = _Options()


def _content_tokens(enc: tiktoken.Encoding, content: Any, opts: _Options = _PLAIN) -> int:
    """Content is a string or a list of parts, counted wherever text can be: text parts, the
    nested content of Anthropic-style ``tool_result`` blocks, ``tool_use`` input, thinking;
    image parts use :func:`image_token_count`; other parts (audio, files) count
    ``default_token_count`` (0 when not given)."""
    if content is None:
        return 0
    if isinstance(content, str):
        return _count(enc, content)
    if isinstance(content, Mapping):
        content = [content]
    elif not isinstance(content, (list, tuple)):
        return _count(enc, content)
    total = 0
    for part in content:
        if isinstance(part, str):
            total += _count(enc, part)
        elif isinstance(part, Mapping):
            kind = part.get("type")
            if kind in ("text", "input_text", "output_text") or (kind is None and "text" in part):
                total += _count(enc, part.get("text"))
            elif kind in ("image_url", "input_image", "image") or "image_url" in part:
                total += DEFAULT_IMAGE_TOKEN_COUNT if opts.default_image else _image_part_tokens(part)
            elif kind == "refusal":
                total += _count(enc, part.get("refusal"))
            elif kind == "tool_result":
                total += _content_tokens(enc, part.get("content"), opts)
            elif kind == "tool_use":
                total += _count(enc, part.get("name")) + _count(enc, part.get("input"))
            elif kind in ("thinking", "reasoning"):
                total += _content_tokens(enc, part.get(kind) if part.get(kind) is not None else part.get("text"), opts)
            elif opts.default_block is not None:
                total += opts.default_block
    return total


def _tool_call_tokens(enc: tiktoken.Encoding, call: Any) -> int:
    """Approximation: tokens of the function name plus its JSON arguments."""
    if not isinstance(call, Mapping):
        return 0
    fn = call.get("function") if "function" in call else call
    if not isinstance(fn, Mapping):
        return 0
    return _count(enc, fn.get("name")) + _count(enc, fn.get("arguments"))


def _message_tokens(enc: tiktoken.Encoding, msg: Mapping[str, Any], opts: _Options = _PLAIN) -> int:
    content = msg.get("content")
    if len(msg) == 2 and type(content) is str:  # {"role": …, "content": "…"}: nothing else to count
        role = msg.get("role")
        if type(role) is str:
            return _TOKENS_PER_MESSAGE + count_text(enc, role) + (count_text(enc, content) if content else 0)
    n = _TOKENS_PER_MESSAGE
    n += _count(enc, msg.get("role"))
    n += _content_tokens(enc, msg.get("content"), opts)
    name = msg.get("name")
    if name:
        n += _count(enc, name) + _TOKENS_PER_NAME
    for call in msg.get("tool_calls") or ():
        n += _tool_call_tokens(enc, call)
    if msg.get("function_call"):
        n += _tool_call_tokens(enc, msg["function_call"])
    if isinstance(msg.get("refusal"), str):
        n += _count(enc, msg["refusal"])
    return n


# --------------------------------------------------------------------------- tools

_PROP_INIT = 3
_PROP_KEY = 3
_ENUM_INIT = -3
_ENUM_ITEM = 3
_FUNC_END = 12


def _strip_period(s: str) -> str:
    return s[:-1] if s.endswith(".") else s


def _tools_tokens(enc: tiktoken.Encoding, tools: list[Any]) -> int:
    """Approximation of the tokens a ``tools`` list adds to the prompt.

    Follows the constants of OpenAI's cookbook recipe: per function 7 tokens
    (10 with cl100k_base) + ``name:description``; if it has properties 3, then
    per property 3 + ``key:type:description`` (+3 per enum item plus its text,
    -3 once per enum); 12 once at the end. Nested schemas (``properties`` or
    ``items`` inside a property) add the tokens of their compact JSON. A
    non-function tool counts as its compact JSON.
    """
    if not tools:
        return 0
    func_init = 10 if enc.name == CL100K_BASE else 7
    total = 0
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        fn = tool.get("function") if tool.get("type", "function") == "function" else None
        if fn is None and "name" in tool and "parameters" in tool:
            fn = tool  # bare (legacy ``functions``) definition
        if not isinstance(fn, Mapping):
            total += _count(enc, _dumps(tool))
            continue
        total += func_init
        desc = fn.get("description") or ""
        total += _count(enc, f"{fn.get('name') or ''}:{_strip_period(str(desc))}")
        params = fn.get("parameters")
        props = params.get("properties") if isinstance(params, Mapping) else None
        if isinstance(props, Mapping) and props:
            total += _PROP_INIT
            for key, prop in props.items():
                total += _PROP_KEY
                if not isinstance(prop, Mapping):
                    total += _count(enc, str(key))
                    continue
                ptype = prop.get("type", "")
                if isinstance(ptype, list):
                    ptype = "|".join(str(t) for t in ptype)
                enum = prop.get("enum")
                if isinstance(enum, list):
                    total += _ENUM_INIT
                    for item in enum:
                        total += _ENUM_ITEM + _count(enc, item if isinstance(item, str) else _dumps(item))
                pdesc = _strip_period(str(prop.get("description") or ""))
                total += _count(enc, f"{key}:{ptype}:{pdesc}")
                for nested in ("properties", "items"):
                    if nested in prop:
                        total += _count(enc, _dumps(prop[nested]))
    return total + _FUNC_END


# --------------------------------------------------------------------------- public entry


def token_counter(
    model: str = "",
    messages: list[Mapping[str, Any]] | None = None,
    text: str | list[str] | None = None,
    tools: list[Any] | None = None,
    tool_choice: Any = None,
    count_response_tokens: bool | None = False,
    default_token_count: int | None = None,
    use_default_image_token_count: bool | None = False,
    custom_tokenizer: Any = None,
) -> int:
    """Count prompt/completion tokens offline (LiteLLM's ``token_counter`` keywords).

    * ``text``: plain text (a string or a list of strings), no chat overhead.
    * ``messages``: OpenAI chat messages, with the per-message overhead
      (3 per message, +1 per ``name``) and +3 for the reply priming. Text is counted
      wherever it appears in list-of-parts content (text parts, Anthropic-style
      ``tool_result`` blocks and their nested content, ``tool_use`` input, thinking
      parts, tool messages); images by :func:`image_token_count`.
    * ``tools``: the tools definitions sent with the request (approximation);
      ``tool_choice``: ``"none"`` adds 1, a named function 7 plus its name (LiteLLM's rule).
    * ``count_response_tokens=True``: the messages are an answer being counted, so no
      reply priming and no tools / tool_choice overhead.
    * ``use_default_image_token_count=True``: every image counts 250 tokens.
    * ``default_token_count``: what a content part without countable text (audio, files…)
      counts (0 when not given).
    * ``custom_tokenizer`` is accepted for LiteLLM compatibility and ignored.

    All given parts are added up. ``model`` chooses the encoding (see
    :func:`encoding_name_for_model`); an empty model uses o200k_base.
    """
    enc = get_encoding(model)
    opts = _PLAIN
    if use_default_image_token_count or default_token_count is not None:
        opts = _Options(bool(use_default_image_token_count), default_token_count)
    total = 0
    if text is not None:
        if isinstance(text, str):
            total += _count(enc, text)
        else:
            total += sum(_count(enc, t) for t in text)
    if messages:
        total += _messages_tokens(enc, messages, opts)
        if not count_response_tokens:
            total += _REPLY_PRIMING
    if not count_response_tokens:
        if tools:
            total += _tools_tokens(enc, tools)
        total += _tool_choice_tokens(enc, tool_choice)
    return total


def _messages_tokens(enc: tiktoken.Encoding, messages: Iterable[Any], opts: _Options) -> int:
    """The messages' own tokens (no reply priming)."""
    total = 0
    for message in messages:
        m = message if type(message) is dict else _as_mapping(message)
        if m is not None:
            total += _message_tokens(enc, m, opts)
    return total


def _as_mapping(message: Any) -> Mapping[str, Any] | None:
    """Messages may be dicts or message objects (``Message``, pydantic models)."""
    if type(message) is dict or isinstance(message, Mapping):
        return message
    dump = getattr(message, "model_dump", None)
    if dump is not None:
        value = dump(exclude_none=True)
        return value if isinstance(value, Mapping) else None
    return None


def _tool_choice_tokens(enc: tiktoken.Encoding, tool_choice: Any) -> int:
    if tool_choice is None:
        return 0
    if tool_choice == "none":
        return 1
    if isinstance(tool_choice, Mapping):
        fn = tool_choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else tool_choice.get("name")
        return 7 + _count(enc, name if isinstance(name, str) else None)
    return 0


def completion_text(messages: Iterable[Mapping[str, Any]]) -> str:
    """What an answer's tokens were spent on, from its message dicts: content, reasoning, and
    the names and arguments of tool and function calls."""
    pieces: list[str] = []
    for message in messages:
        pieces.append(message.get("content") or "")
        pieces.append(message.get("reasoning_content") or "")
        calls = [tc.get("function") or {} for tc in message.get("tool_calls") or ()]
        if message.get("function_call"):
            calls.append(message["function_call"])
        for fn in calls:
            pieces.append(fn.get("name") or "")
            pieces.append(fn.get("arguments") or "")
    return "".join(pieces)


_Usage: Any = None  # llmrelay.types.Usage, imported on first use by counted_usage
_fast: Any = None  # llmrelay.types._fast, likewise


def counted_usage(model: str | None, messages: list[Mapping[str, Any]] | None, completion: str) -> Any:
    """A ``Usage`` counted offline: the prompt from ``messages``, the answer from its text."""
    global _Usage, _fast
    if _Usage is None:  # imported once: a function-level import costs ~10k instructions a call
        from .types import Usage as _Usage, _fast
    # token_counter(model, messages=messages) and token_counter(model, text=completion), with
    # the encoding looked up once
    enc = get_encoding(model or "")
    prompt = _messages_tokens(enc, messages, _PLAIN) + _REPLY_PRIMING if messages else 0
    answer = count_text(enc, completion) if completion else 0
    # what Usage(prompt_tokens=, completion_tokens=) holds, without its constructor
    return _fast(_Usage, {"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer})
