"""The relay fast path for the common stream: an OpenAI-format upstream to a chat client (issue 18).

Per paced chunk the general path wakes the request task, decodes the SSE frame into a dict,
runs the stream state machine, builds a chunk object, encodes it again and sends it through
uvicorn. For an OpenAI-format upstream relayed to ``/v1/chat/completions`` almost every frame
is a content delta whose only change on the way is the ``model`` (and the stream's first
``id``/``created``/``system_fingerprint``, which the upstream repeats anyway). So once the
response has started, :class:`FastRelay` takes the upstream body over *inside the upstream
connection's read callback*: aiohttp's parser hands it each body piece, it splits SSE frames,
rewrites a content frame at the byte level (:class:`ChatFrameRewriter`), feeds the repeat
guard and the generated text, and writes the result straight to the client's transport (the
``llmrelay.direct`` scope extension of :mod:`.server`). No task wake-up, no dict, no re-encode.

Correctness first: every frame that is not a plain content delta of the learned shape (the
role, finish and usage frames, tool calls, logprobs, other choices, comments, ``event:``/``id:``
lines, multi-line data, CRLF streams, malformed JSON, in-band errors) goes through the general
path's own pieces — the provider's decoder and :class:`~llmrelay.streaming.StreamState` — frame
by frame, so the output is the general path's. A content frame the rewriter accepts produces
the same bytes the general path would. The fast path stops (and the request task continues on
the general path) at the end of the body, at an upstream or decode error, at a repeat-guard
error and when the task is cancelled (client gone, write timeout, shutdown): end-of-stream
chunks, usage, error frames, spend and callbacks are then exactly the general path's.

Writes: the first frame of an event-loop turn is written at once; further frames of the same
turn (a burst in one upstream read) are collected and written together at the end of the turn,
so the first chunk never waits for the rest of its read. When the client stops reading, the
upstream connection stops being read (backpressure), as on the general path.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import orjson

from ..transport import lean
from ..streaming import _FINISH_REASONS
from ..types import Delta, StreamingChoices, _fast

__all__ = ["ChatFrameRewriter", "FastRelay", "relay_for", "ENABLED"]

log = logging.getLogger("llmrelay.proxy")

#: Off with ``LLMRELAY_STREAM_FAST_PATH=0`` in the environment (or by setting this to False):
#: every stream then takes the general path (for comparisons; the output is the same).
ENABLED = os.environ.get("LLMRELAY_STREAM_FAST_PATH", "1") != "0"

_loads = orjson.loads
_dumps = orjson.dumps
_SENTINEL = "\x00llmrelay-fast\x00"
_SENTINEL_JSON = _dumps(_SENTINEL)
_OBFUSCATION = b'"obfuscation":"'


class ChatFrameRewriter:
    """Sans-I/O: an upstream ``chat.completion.chunk`` JSON text → the client's frame, or None.

    It learns the shape of the upstream's content frames from one frame the general path
    decoded (:meth:`learn`): the bytes before the content string (``head``) and after it
    (``tail``). A later frame with the same head and tail (or the same tail but another
    ``obfuscation`` value) differs from the learned one only in its content, so the general
    path would turn it into a content chunk: :meth:`rewrite` emits that chunk's bytes (the
    client's template around the content) after feeding the state machine exactly as
    ``StreamState.process`` would (repeat guard, generated text).
    """

    __slots__ = ("state", "choice", "head", "tail", "obf_pre", "obf_post", "prefix", "suffix", "attempts",
                 "guessed", "fin_head", "fin_tail", "fin_obf_pre", "fin_obf_post")

    #: Frames tried for learning before the rewriter gives up on a stream (tool-call streams…).
    MAX_ATTEMPTS = 4

    def __init__(self, state: Any, encoder: Any, role_frame: bytes = b"") -> None:
        self.state = state
        self.choice: Any = None
        self.head: bytes | None = None
        self.tail = b""
        self.obf_pre: bytes | None = None
        self.obf_post = b""
        self.attempts = 0
        self.guessed = False  # head and tail guessed from the role frame (guess), not learned yet
        # The finish frame of the learned shape (finish): its bytes before and after the reason.
        self.fin_head: bytes | None = None
        self.fin_tail = b""
        self.fin_obf_pre: bytes | None = None
        self.fin_obf_post = b""
        # The client's bytes for a content chunk, around the content: what the general path's
        # encoder makes of StreamState's chunk for choice 0 (the same code builds both). From
        # the role chunk's frame (``role_frame``, that encoder's bytes for StreamState's chunk
        # of choice 0 with the delta {"role":"assistant","content":""}) when it is one: the same
        # chunk but for that delta.
        i = role_frame.find(_ROLE_CHOICES)
        if i >= 0 and role_frame.find(_ROLE_CHOICES, i + 1) < 0:
            self.prefix = role_frame[:i] + _CONTENT_CHOICES_HEAD
            self.suffix = _CONTENT_CHOICES_TAIL + role_frame[i + len(_ROLE_CHOICES):]
            return
        delta = _fast(Delta, {"content": _SENTINEL})
        chunk = state._chunk([_fast(StreamingChoices, {"index": 0, "delta": delta, "finish_reason": None})])
        frame = encoder.chunk(chunk)
        i = frame.index(_SENTINEL_JSON)
        self.prefix = frame[: i + 1]
        self.suffix = frame[i + len(_SENTINEL_JSON) - 1:]

    @property
    def learning(self) -> bool:
        """Whether :meth:`learn` is still worth calling."""
        return (self.head is None or self.guessed) and self.attempts < self.MAX_ATTEMPTS

    def guess(self, data: bytes, parsed: Any) -> bool:
        """Guess the content-frame shape from the stream's first frame ``data`` (its JSON, already
        processed by the general path; ``parsed`` its dict) when that is the role frame OpenAI and the compatible
        servers send: a single choice 0 whose delta is exactly ``{"role":"assistant","content":""}``
        (OpenAI adds ``"refusal":null``), no finish, no logprobs, no usage. Their content frames
        are the same bytes with the delta ``{"content":"…"}``: so the first content frame is
        relayed without being decoded too. A guess can only be wrong by not matching (the frame
        then goes to the general path, which learns the real shape from it, as without a guess):
        a frame that does match parses as this frame with that delta, which the general path
        turns into a content chunk of choice 0, exactly what :meth:`rewrite` emits. True if
        guessed."""
        for delta in _ROLE_DELTAS:
            i = data.find(delta)
            if i >= 0:
                break
        else:
            return False
        choice = self.state.choices.get(0)
        if choice is None or not choice.role_sent or len(self.state.choices) != 1:
            return False
        if data.count(b'"content":') != 1 or data.count(b'"delta":') != 1 or data.find(b"\\") >= 0:
            return False
        if type(parsed) is not dict or parsed.get("usage"):
            return False
        choices = parsed.get("choices")
        if type(choices) is not list or len(choices) != 1 or type(choices[0]) is not dict:
            return False
        c = choices[0]
        if (c.get("index") or 0) != 0 or c.get("finish_reason") is not None or c.get("logprobs") is not None:
            return False
        self._take(data[:i] + b'"delta":{"content":"', b'"}' + data[i + len(delta):], choice, True)
        return True

    def learn(self, data: bytes, parsed: Any) -> bool:
        """Learn the content-frame shape from ``data`` (one frame's JSON) and ``parsed`` (its
        decoded dict, already processed by the general path). True if learned."""
        self.attempts += 1
        state = self.state
        choice = state.choices.get(0)
        if choice is None or not choice.role_sent or type(parsed) is not dict or parsed.get("usage"):
            return False
        choices = parsed.get("choices")
        if type(choices) is not list or len(choices) != 1 or type(choices[0]) is not dict:
            return False
        c = choices[0]
        # Other choice keys (Azure's content_filter_results…) are ignored by the general path;
        # the head and tail then must match byte for byte, so a change in them falls back.
        if (c.get("index") or 0) != 0:
            return False
        if c.get("finish_reason") is not None or c.get("logprobs") is not None:
            return False
        delta = c.get("delta")
        if type(delta) is not dict:
            return False
        content = delta.get("content")
        if type(content) is not str or not content:
            return False
        for key, value in delta.items():
            if key not in ("content", "role") and value is not None:
                return False
        if data.count(b'"content":') != 1:
            return False
        s = data.index(b'"content":') + 10
        while data[s:s + 1] == b" ":
            s += 1
        if data[s:s + 1] != b'"':
            return False
        s += 1
        e = _string_end(data, s)
        if e < 0 or _loads(data[s - 1:e + 1]) != content:
            return False
        tail = data[e:]
        if tail.find(b"\\") >= 0:
            return False
        self._take(data[:s], tail, choice, False)
        return True

    def _take(self, head: bytes, tail: bytes, choice: Any, guessed: bool) -> None:
        """Take the content-frame shape ``head`` + content + ``tail`` (learned or guessed), with
        its obfuscation field's place when ``tail`` has one."""
        self.obf_pre, self.obf_post = None, b""
        if tail.count(_OBFUSCATION) == 1:
            vs = tail.index(_OBFUSCATION) + len(_OBFUSCATION)
            ve = tail.index(b'"', vs)
            self.obf_pre, self.obf_post = tail[:vs], tail[ve:]
        self.head, self.tail, self.choice = head, tail, choice
        self.guessed = guessed
        self._finish_shape(head, tail)

    def _finish_shape(self, head: bytes, tail: bytes) -> None:
        """The finish frame of this content shape: the same frame with the delta ``{}`` and the
        choice's ``"finish_reason":null`` a reason (OpenAI's and the compatible servers' last
        frame before the usage and ``[DONE]``). Taken only when the content's delta is
        ``{"content":…}`` alone and the finish reason follows it in the choice with at most
        ``"logprobs":null`` between (so the null replaced is that choice's reason: the tail has
        no backslash, every quote in it delimits a string)."""
        self.fin_head = self.fin_obf_pre = None
        if not head.endswith(_CONTENT_DELTA) or not tail.startswith(b'"}'):
            return
        rest = tail[2:]
        for member in _FINISH_MEMBERS:
            if rest.startswith(member) and rest[len(member):len(member) + 1] in (b"}", b","):
                break
        else:
            return
        self.fin_head = head[:-len(_CONTENT_DELTA)] + b'"delta":{}' + member[:-4] + b'"'
        self.fin_tail = after = b'"' + rest[len(member):]
        if after.count(_OBFUSCATION) == 1:
            vs = after.index(_OBFUSCATION) + len(_OBFUSCATION)
            self.fin_obf_pre, self.fin_obf_post = after[:vs], after[after.index(b'"', vs):]

    def finish(self, data: bytes) -> bool:
        """Whether upstream frame JSON ``data`` is the finish frame of the learned shape (the
        content frame with the delta ``{}`` and a known finish reason); if so it is accounted as
        ``StreamState.process`` does (the choice's finish reason, no chunk: the finish chunk
        comes at the stream's end)."""
        head = self.fin_head
        if head is None or not data.startswith(head):
            return False
        s = len(head)
        e = data.find(b'"', s)
        if e < 0:
            return False
        reason = _FINISH_BYTES.get(data[s:e])
        if reason is None:
            return False
        tail = data[e:]
        if tail != self.fin_tail:
            pre, post = self.fin_obf_pre, self.fin_obf_post
            if pre is None or not tail.startswith(pre) or not tail.endswith(post):
                return False
            value = tail[len(pre):len(tail) - len(post)]
            if value.find(b'"') >= 0 or value.find(b"\\") >= 0:
                return False
        choice = self.choice
        if choice.finish is None:
            choice.finish = reason
        return True

    def rewrite(self, data: bytes) -> bytes | None:
        """The client's frame for upstream frame JSON ``data`` (``b""``: nothing to send), or
        None when the frame is not a plain content delta of the learned shape. Raises what the
        state machine raises (the repeat guard)."""
        head = self.head
        if head is None or not data.startswith(head):
            return None
        s = len(head)
        e = data.find(b'"', s)
        if e < 0 or data[e - 1] == 92:  # an escaped quote in the content: the general path
            return None
        tail = data[e:]
        if tail != self.tail:
            pre = self.obf_pre
            if pre is None or not tail.startswith(pre) or not tail.endswith(self.obf_post):
                return None
            value = tail[len(pre):len(tail) - len(self.obf_post)]
            if value.find(b'"') >= 0 or value.find(b"\\") >= 0:
                return None
        raw = data[s:e]
        try:
            if raw.find(b"\\") >= 0:
                text = _loads(data[s - 1:e + 1])
                raw = _dumps(text)[1:-1]
            else:
                text = raw.decode()
                if not text.isprintable() and not _no_control(raw):  # malformed JSON: the general path's error
                    return None
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            return None
        if not text:
            return b""  # an empty delta after the role chunk: the general path drops it
        choice = self.choice
        self.state._guard(choice, text)
        choice.text.append(text)
        return self.prefix + raw + self.suffix


#: A content frame's delta, at the end of its head (ChatFrameRewriter._finish_shape).
_CONTENT_DELTA = b'"delta":{"content":"'
#: What may follow a content frame's delta up to its finish reason's null (ChatFrameRewriter._finish_shape).
_FINISH_MEMBERS = (b',"logprobs":null,"finish_reason":null', b',"finish_reason":null')
#: The finish reasons a finish frame may carry at the byte level, as StreamState keeps them
#: (normalize_finish_reason of the JSON string); any other goes through the general path.
_FINISH_BYTES = {key.encode(): value for key, value in _FINISH_REASONS.items() if key.isascii() and key == key.lower()}

#: The client's role chunk's choices, as the general path encodes them; a content chunk's (of
#: choice 0) around its content (ChatFrameRewriter.__init__).
_ROLE_CHOICES = b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]'
_CONTENT_CHOICES_HEAD = b'"choices":[{"index":0,"delta":{"content":"'
_CONTENT_CHOICES_TAIL = b'"},"finish_reason":null}]'

#: A role frame's delta (OpenAI's, with ``refusal``, and the compatible servers'): its content
#: frames have ``{"content":"…"}`` in its place (ChatFrameRewriter.guess).
_ROLE_DELTAS = (b'"delta":{"role":"assistant","content":"","refusal":null}',
                b'"delta":{"role":"assistant","content":""}')

_CONTROL = bytes(range(32))


def _no_control(raw: bytes) -> bool:
    """Whether ``raw`` (a JSON string's bytes) has no raw control character, which JSON forbids
    (the general path's decoder refuses the frame). Asked only when ``str.isprintable`` says no
    (rarer text: U+2028, NBSP…)."""
    return len(raw.translate(None, _CONTROL)) == len(raw)


#: Content bytes of content reads seen (by any stream) → ``(text, kind)``, for :meth:`LeanRelay._read`:
#: bytes that passed :func:`_token`'s checks. A paced stream's chunks are mostly one token each, of
#: a vocabulary, so most reads find theirs here instead of decoding and checking it (~1.3k
#: instructions); bounded (cleared when full; longer contents are not kept).
_TOKENS: dict[bytes, tuple[str, int]] = {}
_token_get = _TOKENS.get
_TOKENS_MAX = 4096
_TOKEN_BYTES_MAX = 48


def _checked(raw: bytes) -> tuple[str, int] | None:
    """``(text, kind)`` for a JSON string's bytes ``raw`` taken as they are — UTF-8, not empty,
    no quote, backslash (an escape: the general path decodes it) or control character — else
    None. ``kind`` for the repeat guard (``StreamState._guard``): 0 counted (longer than 2
    characters, not blank), 1 short (ends a run), 2 blank (neither)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    if not text or '"' in text or "\\" in text or not (text.isprintable() or _no_control(raw)):
        return None
    return text, 2 if text.isspace() else 0 if len(text) > 2 else 1


def _token(raw: bytes) -> tuple[str, int] | None:
    """:func:`_checked`, kept in :data:`_TOKENS` if short."""
    token = _checked(raw)
    if token is not None and len(raw) <= _TOKEN_BYTES_MAX:
        if len(_TOKENS) >= _TOKENS_MAX:
            _TOKENS.clear()
        _TOKENS[raw] = token
    return token


def _string_end(data: bytes, start: int) -> int:
    """Index of the quote closing the JSON string whose content starts at ``start`` (-1: none)."""
    i = start
    while True:
        i = data.find(b'"', i)
        if i < 0:
            return -1
        backslashes = 0
        j = i - 1
        while j >= start and data[j] == 92:
            backslashes += 1
            j -= 1
        if backslashes % 2 == 0:
            return i
        i += 1


# ====================================================================== the I/O side
def relay_for(stream: Any, encoder: Any, direct: Any, first: bytes = b"") -> "FastRelay | None":
    """A :class:`FastRelay` for ``stream`` if it is the common case (an OpenAI-format upstream
    read by our async transport — its lean client or aiohttp — relayed to a chat client over a
    direct-write connection), else None. Cheap: type checks only; :meth:`FastRelay.attach`
    checks the moment. ``first``: the client's frame of the stream's first chunk."""
    if direct is None or not ENABLED:
        return None
    wrapper, chat_encoder, source_type, decoder_type = _TYPES or _load_types()
    if type(stream) is not wrapper or type(encoder) is not chat_encoder:
        return None
    source = stream.source
    inner = getattr(source, "inner", source)
    if type(inner) is not source_type or type(inner._decoder) is not decoder_type:
        return None
    response = inner._response
    if type(response) is lean.LeanResponse:
        conn = response.conn
        return LeanRelay(stream, inner, conn, encoder, direct, first) if conn is not None else None
    raw = getattr(response, "_raw", None)
    if raw is None:
        return None
    if _READERS is None:
        _load_readers()
    if type(raw.content) is not _READERS[0]:
        return None
    return FastRelay(stream, inner, raw, encoder, direct, first)


#: (CustomStreamWrapper, ChatEncoder, AsyncStreamSource, OpenAIStreamDecoder), imported on first
#: use (not per request: a function-level import runs importlib's fromlist handling every time).
_TYPES: "tuple[type, type, type, type] | None" = None


def _load_types() -> "tuple[type, type, type, type]":
    global _TYPES
    from ..providers.openai import OpenAIStreamDecoder
    from ..streaming import CustomStreamWrapper
    from ..transport.aio import AsyncStreamSource
    from .ingress.chat import ChatEncoder

    _TYPES = (CustomStreamWrapper, ChatEncoder, AsyncStreamSource, OpenAIStreamDecoder)
    return _TYPES


class FastRelay:
    """Relay one upstream body to the client from the upstream's read callback (module docstring)."""

    __slots__ = ("stream", "first", "source", "decoder", "wire", "raw", "content", "encoder", "direct", "rewriter",
                 "general", "fast", "last", "_write", "_buf", "_raw_mode", "_out", "_turn", "_flush_handle", "_future", "_loop",
                 "_saved_timer", "_hooked", "_stopped", "_paused", "_handler", "_transport", "_idle",
                 "_idle_timer", "_last_read", "_time", "_put", "_closing", "_chunked", "_state", "_choice",
                 "_fhead", "_fs", "_ftail", "_obf_pre", "_obf_post", "_prefix", "_suffix", "_fixed")

    def __init__(self, stream: Any, source: Any, raw: Any, encoder: Any, direct: Any, first: bytes = b"") -> None:
        self.stream = stream
        self.first = first  # the client's frame of the stream's first chunk
        self.source = source
        self.decoder = source._decoder
        self.wire = self.decoder._wire
        self.raw = raw
        self.content = self._content(raw)
        self.encoder = encoder
        self.direct = direct
        self.rewriter: ChatFrameRewriter | None = None
        self.general = 0  # chunks sent to the client from frames the general path's pieces decoded
        self.fast = 0  # chunks sent to the client from frames rewritten at the byte level
        self.last: Any = None  # the last chunk object sent (from a general-path frame)
        self._write: Any = None  # the client connection's write (DirectBody.writer), set by run()
        self._buf = b""
        self._raw_mode = False  # CR line ends or [DONE] seen: every byte goes through the general decoder
        self._out: list[bytes] = []
        self._turn = -1.0
        self._flush_handle: asyncio.Handle | None = None
        self._future: asyncio.Future | None = None
        self._loop: Any = None
        self._saved_timer: Any = None
        self._hooked = False
        self._stopped = False
        self._paused = False
        self._handler: Any = None  # aiohttp's protocol, while ours reads the connection
        self._transport: Any = None
        self._idle: float | None = None  # the read timeout (aiohttp's sock_read), kept by us
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self._time: Any = None  # loop.time (uvloop's: in ms, updated at every call)
        # The client connection (DirectBody.framing), for the one write of a fast frame.
        self._put: Any = None
        self._closing: Any = None
        self._chunked = False
        self._state = stream.state
        # The learned content frame (ChatFrameRewriter.learn), unpacked for _feed: None until then.
        self._fhead: bytes | None = None
        self._choice: Any = None
        self._fs = 0
        self._ftail = self._obf_pre = self._obf_post = self._prefix = self._suffix = b""
        self._fixed = 0

    @property
    def count(self) -> int:
        """Chunks sent to the client."""
        return self.general + self.fast

    @staticmethod
    def _content(raw: Any) -> Any:
        return raw.content

    def _running_loop(self) -> Any:
        return asyncio.get_running_loop()

    # ------------------------------------------------------------------ taking over
    def attach(self) -> bool:
        """Whether the body can be taken over now (the stream has nothing queued, the decoder
        is between events, the body is not over). Call only when ``chunks_ready`` is 0."""
        stream, source, decoder, wire = self.stream, self.source, self.decoder, self.wire
        if stream.chunks_ready or stream._pending is not None or stream._finished or source._eof:
            return False
        if decoder.error is not None or decoder.done or not self.direct.ready():
            return False
        if not self._body_ok():
            return False
        if wire._data or wire._event is not None or not wire._started:
            return False
        if self.rewriter is None:
            rewriter = self.rewriter = ChatFrameRewriter(stream.state, self.encoder, self.first)
            first = decoder.first
            if first is not None:
                rewriter.guess(*first)
        if wire._parts:  # a line begun in the last read: the relay's buffer starts with it
            self._buf = b"".join(wire._parts)
            wire._parts.clear()
            wire._size = 0
        return True

    async def run(self) -> None:
        """Relay until the body ends, fails or needs the general path; the caller's task then
        goes on with the stream (its end, its error) on the general path."""
        loop = self._loop = self._running_loop()
        self._time = loop.time
        self._future = loop.create_future()
        self._write = self.direct.writer()
        self._put, self._closing, self._chunked = self.direct.framing()
        if self.rewriter.head is not None:
            self._learned()
        buffered, ended = self._take_buffered()  # ended: the whole body is here already (a burst)
        if self.source.stash:  # read before, not decoded yet: it comes first
            buffered, self.source.stash = self.source.stash + buffered, b""
        if not ended:
            self._hook()
            self.direct.watch(self._pause, self._resume)
        try:
            if buffered:
                self._feed(buffered)
            if not self._stopped and not ended:
                self._interpose()
                await self._future
        finally:
            if not ended:
                self.direct.unwatch()
            self._stop()
            self._flush()
            if self._paused:
                self._paused = False
                self._resume_upstream()

    # ------------------------------------------------------------------ aiohttp's reader, hooked
    def _body_ok(self) -> bool:
        """Whether the upstream body can still be taken over (no error, not cut short)."""
        content = self.content
        return content._exception is None and not (getattr(self.raw, "_closed", False) and not content._eof)

    def _take_buffered(self) -> tuple[bytes, bool]:
        """The body bytes received and not read yet, and whether the body is complete."""
        content = self.content
        return (content.read_nowait(-1) if content._size else b""), content._eof

    def _hook(self) -> None:
        content = self.content
        self._saved_timer = content._timer
        content._timer = self  # the slot read methods use; nothing reads while we are hooked
        content.__class__ = _READERS[1]
        self._hooked = True

    def _unhook(self) -> None:
        if self._hooked:
            self._hooked = False
            content = self.content
            content.__class__ = _READERS[0]
            content._timer = self._saved_timer

    def _interpose(self) -> None:
        """Read the upstream connection with :class:`_Upstream` (aiohttp's own parser, without
        its per-read Python: the read timeout becomes one timer per idle period, not per read)."""
        handler = self._protocol()
        if handler is None or type(handler).__name__ != "ResponseHandler":
            return
        transport = handler.transport
        parser = getattr(handler, "_parser", None)
        if (transport is None or parser is None or transport.is_closing() or handler._upgraded
                or handler._payload_parser is not None or handler._tail or not hasattr(transport, "set_protocol")):
            return
        self._handler, self._transport = handler, transport
        idle = handler.read_timeout
        handler._drop_timeout()
        if idle:
            self._idle = idle
            self._last_read = self._loop.time()
            self._idle_timer = self._loop.call_at(self._last_read + idle, self._check_idle)
        transport.set_protocol(_Upstream(self, handler, parser.feed_data))

    def _restore(self) -> None:
        """aiohttp's protocol reads the connection again (idempotent)."""
        handler = self._handler
        if handler is None:
            return
        self._handler = None
        timer, self._idle_timer = self._idle_timer, None
        if timer is not None:
            timer.cancel()
        transport = self._transport
        if not transport.is_closing():
            transport.set_protocol(handler)
            if self._idle and not self.content._eof and self.content._exception is None:
                handler.start_timeout()  # the general path may read on

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self._handler is None:
            return
        due = self._last_read + self._idle
        if self._loop.time() < due:
            self._idle_timer = self._loop.call_at(due, self._check_idle)
            return
        handler = self._handler
        self._restore()
        handler._on_read_timeout()  # aiohttp's own: the body fails with its timeout error

    def _stop(self) -> None:
        """Stop relaying (idempotent): leftover bytes go to the decoder, aiohttp's reader is back."""
        if self._stopped:
            return
        self._stopped = True
        self._fhead = None
        self._restore()
        self._unhook()
        if self._buf:
            buf, self._buf = self._buf, b""
            try:
                self._general(buf, learn=False)
            except Exception:  # noqa: BLE001 - parked for the general path below
                pass
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def _eof(self) -> None:
        self._stop()

    # ------------------------------------------------------------------ per upstream read
    def _feed(self, data: bytes) -> None:
        """One piece of the upstream body. The common paced read — one whole content frame of
        the learned shape, nothing buffered — is checked, accounted and written here in one
        call: the bytes between the learned head and tail are the content (no escape, printable
        text), the repeat guard and the generated text get it as ``StreamState`` would, and the
        client's frame goes out in one transport write (chunk size, the client's head, the
        content, the client's tail). Anything else goes through :meth:`_frames`."""
        fhead = self._fhead
        if fhead is not None and not self._buf and data.startswith(fhead):
            s = self._fs
            e = data.find(b'"', s)
            if e > 0 and data[e - 1] != 92 and (data[e:] == self._ftail or self._obfuscated(data, e, self._obf_post)):
                raw = data[s:e]
                if raw.find(b"\\") < 0:
                    try:
                        text = raw.decode()
                    except UnicodeDecodeError:
                        text = ""
                    if text.isprintable() or _no_control(raw):
                        if not text:
                            if e == s:
                                return  # an empty delta after the role chunk: the general path drops it
                        else:
                            choice = self._choice
                            # StreamState._guard, inlined for the common outcomes
                            if text == choice.last_content:
                                try:
                                    self._state._guard(choice, text)
                                except Exception as exc:  # noqa: BLE001 - the repeat guard
                                    self._fail(exc)
                                    return
                            elif len(text) > 2:
                                if not text.isspace():  # (blank content neither counts nor ends a run)
                                    choice.last_content = text
                                    choice.repeats = 1
                            elif choice.last_content is not None and not text.isspace():  # a short chunk ends a run
                                choice.last_content = None
                                choice.repeats = 0
                            choice.text.append(text)
                            self.fast += 1
                            now = self._time()  # (uvloop's clock, in ms: see _send)
                            if now != self._turn and not self._out and self._chunked:
                                self._turn = now
                                if not self._closing():
                                    self._put(b"%x\r\n%b%b%b\r\n" % (self._fixed + e - s, self._prefix, raw, self._suffix))
                                return
                            self._send(self._prefix + raw + self._suffix)
                            return
        self._frames(data)

    def _obfuscated(self, data: bytes, e: int, post: bytes) -> bool:
        """Whether ``data[e:]`` is the learned tail (ending with ``post``) with another
        ``obfuscation`` value (OpenAI's)."""
        pre = self._obf_pre
        if not pre or not data.startswith(pre, e):
            return False
        if not data.endswith(post):
            return False
        vs, ve = e + len(pre), len(data) - len(post)
        return vs <= ve and data.find(b'"', vs, ve) < 0 and data.find(b"\\", vs, ve) < 0

    def _learned(self) -> None:
        """Unpack the rewriter's learned frame for :meth:`_feed`."""
        rewriter = self.rewriter
        if self._raw_mode or rewriter.head is None:
            return
        self._fhead = b"data: " + rewriter.head
        self._fs = len(self._fhead)
        self._ftail = rewriter.tail + b"\n\n"
        if rewriter.obf_pre is not None:
            self._obf_pre, self._obf_post = rewriter.obf_pre, rewriter.obf_post + b"\n\n"
        else:  # (learned again after a wrong guess that had one)
            self._obf_pre = self._obf_post = b""
        self._choice = rewriter.choice
        self._prefix, self._suffix = rewriter.prefix, rewriter.suffix
        self._fixed = len(rewriter.prefix) + len(rewriter.suffix)

    def _frames(self, data: bytes) -> None:
        if self._stopped:
            return
        try:
            if self._raw_mode or data.find(b"\r") >= 0:
                self._raw_mode = True
                self._fhead = None
                buf, self._buf = self._buf + data, b""
                self._general(buf, learn=False)
                return
            buf = self._buf + data if self._buf else data
            start = 0
            rewrite = self.rewriter.rewrite
            finish = self.rewriter.finish
            fhead, fs, ftail = self._fhead, self._fs, self._ftail
            while True:
                end = buf.find(b"\n\n", start)
                if end < 0:
                    break
                if fhead is not None and buf.startswith(fhead, start):
                    # A content frame of the learned shape (a burst's every frame), checked and
                    # accounted as in _feed; any other goes on below (rewrite: escapes…).
                    frame = buf[start:end + 2]
                    e = frame.find(b'"', fs)
                    if e > fs and (frame[e:] == ftail or self._obfuscated(frame, e, self._obf_post)):
                        raw = frame[fs:e]
                        if raw.find(b"\\") < 0:
                            try:
                                text = raw.decode()
                            except UnicodeDecodeError:
                                text = ""
                            if text and (text.isprintable() or _no_control(raw)):
                                choice = self._choice
                                # StreamState._guard, inlined for the common outcomes (it raises
                                # the repeat guard's error: _fail below)
                                if text == choice.last_content:
                                    self._state._guard(choice, text)
                                elif len(text) > 2:
                                    if not text.isspace():
                                        choice.last_content = text
                                        choice.repeats = 1
                                elif choice.last_content is not None and not text.isspace():
                                    choice.last_content = None
                                    choice.repeats = 0
                                choice.text.append(text)
                                self.fast += 1
                                self._send(self._prefix + raw + self._suffix)
                                start = end + 2
                                continue
                frame = buf[start:end]
                start = end + 2
                single = frame[:6] == b"data: " and frame.find(b"\n") < 0
                if single:
                    data = frame[6:]
                    out = rewrite(data)
                    if out is not None:
                        if out:
                            self.fast += 1
                            self._send(out)
                        continue
                    # the stream's last frames, as the general path would take them
                    if data == b"[DONE]":
                        self.decoder.done = True
                        self._after_done(buf[start:])
                        return
                    if finish(data):
                        continue
                self._general(frame + b"\n\n", learn=single)
                if self._stopped:
                    return
                if self._raw_mode:  # [DONE] was in that frame (_general)
                    self._after_done(buf[start:])
                    return
                fhead, fs, ftail = self._fhead, self._fs, self._ftail  # (learned from that frame?)
            self._buf = buf[start:] if start else buf
        except Exception as exc:  # noqa: BLE001 - the state machine's (repeat guard) or a bug
            self._fail(exc)

    def _after_done(self, rest: bytes) -> None:
        """``[DONE]`` seen: nothing after it counts (the general path's decoder drops every
        later event), so from here on every byte of the body (``rest``: what followed it in
        this read) goes to the decoder, as in raw mode; no frame is rewritten or relayed. The
        relay stays on to the body's end (no extra wake-up of the request task)."""
        self._raw_mode = True
        self._fhead = None
        self._buf = b""
        if rest:
            self._general(rest, learn=False)

    def _general(self, data: bytes, learn: bool) -> None:
        """Bytes (whole frames, or anything in raw mode) through the provider's decoder and the
        stream's state machine, as the general path would; its chunks are sent. An error is
        parked where the general path raises it, and the relay stops."""
        decoder = self.decoder
        try:
            dicts = decoder.feed(data)
        except Exception as exc:  # noqa: BLE001 - malformed JSON, an in-band error event
            decoder.error = exc  # raised by the source's next read, as on the general path
            self._stop()
            return
        stream = self.stream
        if dicts:
            try:
                stream._take(dicts)
            except Exception as exc:  # noqa: BLE001
                stream._pending = exc
            queue = stream._queue
            if queue:
                encode = self.encoder.chunk
                while queue:
                    chunk = queue.popleft()
                    self._send(encode(chunk))
                    self.general += 1
                    self.last = chunk
            rewriter = self.rewriter
            # (a guess that has rewritten frames is right: no need to learn)
            if (learn and len(dicts) == 1 and rewriter.learning and stream._pending is None
                    and not (rewriter.guessed and self.fast)):
                if rewriter.learn(data[6:-2], dicts[0]):
                    self._learned()
        if decoder.error is not None or stream._pending is not None:
            self._stop()
        elif decoder.done and not self._raw_mode:  # [DONE] was in these frames
            self._raw_mode = True
            self._fhead = None

    def _fail(self, exc: Exception) -> None:
        from ..exceptions import LLMRelayError

        if not isinstance(exc, LLMRelayError):  # a bug: say so, the client gets an error frame
            log.error("stream fast path failed", exc_info=exc)
        stream = self.stream
        if stream._pending is None:
            stream._pending = exc
        self._stop()

    # ------------------------------------------------------------------ writing
    def _send(self, frame: bytes) -> None:
        """Write ``frame`` now if it is the first of this loop turn, else at the turn's end.

        (A "turn" is a millisecond of ``loop.time()``: uvloop updates its clock at every call,
        in ms. Frames of a burst that take more than a millisecond to rewrite are written in a
        few writes, the first of each millisecond at once while nothing is queued.)"""
        now = self._time()
        if now != self._turn and not self._out:
            self._turn = now
            self._write(frame)
            return
        self._out.append(frame)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        handle, self._flush_handle = self._flush_handle, None
        if handle is not None:
            handle.cancel()
        out = self._out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._write(data)

    # ------------------------------------------------------------------ backpressure
    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self._pause_upstream()

    def _pause_upstream(self) -> None:
        protocol = self._protocol()
        if protocol is not None:
            protocol.pause_reading()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self._resume_upstream()

    def _resume_upstream(self) -> None:
        protocol = self._protocol()
        if protocol is not None and protocol.transport is not None:
            protocol.resume_reading()

    def _protocol(self) -> Any:
        connection = getattr(self.raw, "_connection", None)
        return getattr(connection, "protocol", None) if connection is not None else None


class LeanRelay(FastRelay):
    """:class:`FastRelay` over the lean client's connection (:mod:`llmrelay.transport.lean`).

    Its parser hands the decoded body pieces to the relay (the connection's ``sink``) from its
    read callback. For a chunked body the relay also reads the connection itself
    (:class:`_LeanUpstream`): a read that is exactly one chunk carrying one content frame of the
    learned shape — the paced stream's every read — is checked, accounted and written to the
    client in that one callback (:meth:`_read`), without the parser (which stands between two
    chunks before and after such a read, so it is not needed for it). Every other read goes
    through the parser as before, and the relay reads whole chunks itself again once the parser
    stands between two chunks (:meth:`lean._Conn.aligned`). The read timeout stays the
    connection's (one timer per idle period)."""

    __slots__ = ("_go", "_ftail_c", "_ftail_n", "_obf_post_c", "_suffix_c", "_shapes", "_append")  # self.raw: the connection

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._go = False  # _ready(): the next read may be one content chunk
        self._ftail_c = self._obf_post_c = self._suffix_c = b""
        self._ftail_n = 0
        # A one-chunk content read's layout by its length (_shape): {n: (head, s, e, out_head)}
        self._shapes: dict[int, Any] = {}
        self._append: Any = None  # the generated text's list's append (choice 0's)

    @staticmethod
    def _content(raw: Any) -> Any:
        return None

    def _running_loop(self) -> Any:
        return self.raw.loop  # the connection's (its pool's), the running one: no getpid() as 3.11's lookup

    def _body_ok(self) -> bool:
        conn = self.raw
        return conn.exc is None and conn.state in (lean._BODY, lean._DONE)

    def _take_buffered(self) -> tuple[bytes, bool]:
        conn = self.raw
        return (conn.take_body() if conn.body else b""), conn.state == lean._DONE

    def _hook(self) -> None:
        conn = self.raw
        conn.sink = self._feed
        conn.on_end = self._eof
        self._hooked = True

    def _unhook(self) -> None:
        if self._hooked:
            self._hooked = False
            conn = self.raw
            if conn.sink == self._feed:
                conn.sink = conn.on_end = None

    def _learned(self) -> None:
        super()._learned()
        self._shapes = {}
        if self._fhead is not None:
            self._ftail_c = self._ftail + b"\r\n"
            self._ftail_n = len(self._ftail_c)
            self._obf_post_c = self._obf_post + b"\r\n"
            self._suffix_c = self._suffix + b"\r\n"
            self._append = self._choice.text.append

    def _shape(self, n: int) -> Any:
        """The layout of an ``n``-byte read that is one HTTP chunk carrying one content frame of
        the learned shape: ``(head, out_head, token_of)`` — the chunk's size line and the learned
        head (the read is ``head + content + tail``), the client's size line and head for that
        content when the tail is the learned one (its frame is ``out_head + content + suffix``;
        None when only another tail, an obfuscation value, fits in ``n`` bytes), and where the
        content's ``(text, kind)`` comes from (``_TOKENS.get`` for a content short enough to be
        kept there, else :func:`_checked`) — or
        :data:`_NO_SHAPE` when no such read has ``n`` bytes. Worked out once per length (a
        stream's content chunks come in a few lengths) and kept for the stream."""
        # its size line has 2 hex digits (16-255 bytes) or 3
        k = 2 if 22 <= n < 262 else 3 if 262 <= n < 4103 else 0
        line = _HEX_LINES[n - k - 4] if k else b""
        shape = _NO_SHAPE
        if k and len(line) == k + 2:
            head = line + self._fhead
            span = n - len(head) - self._ftail_n  # the content's length if the tail is the learned one
            size = self._fixed + span
            shape = (head, None if span < 0 else (_HEX_LINES[size] if size < 4096 else b"%x\r\n" % size) + self._prefix,
                     _token_get if span <= _TOKEN_BYTES_MAX else _checked)
        if len(self._shapes) >= 256:
            self._shapes.clear()
        self._shapes[n] = shape
        return shape

    def _interpose(self) -> None:
        conn = self.raw
        transport = conn.transport
        if (not conn.chunked or conn.decoder is not None or transport is None or transport.is_closing()
                or not hasattr(transport, "set_protocol") or transport.get_protocol() is not conn):
            return
        self._handler, self._transport = _LeanUpstream(self, conn), transport
        self._go = self._ready(conn.aligned())
        transport.set_protocol(self._handler)

    def _restore(self) -> None:
        upstream = self._handler
        if upstream is None:
            return
        self._handler = None
        self._go = False
        transport = self._transport
        if transport.get_protocol() is upstream:
            transport.set_protocol(self.raw)

    def _read(self, data: bytes) -> None:
        """One read of the upstream connection while the relay reads it (see the class).

        Written for CPython 3.11's costs (every bytecode and C call of the common read counts:
        it runs once per relayed chunk): ``removeprefix``/``removesuffix`` (one argument, no
        argument tuple: the read's head and tail checked and its content cut in two C calls,
        ~900 instructions, where three slices compared with ``==`` took ~2.1k) and table look-ups
        instead of ``bytes.find``/``startswith`` (argument tuples, ~900 instructions a call) and
        ``%`` formatting (~1k); the read's layout by its length from :meth:`_shape` (the size
        line, the learned head and the client's head built once per length); one flag (``_go``)
        for "learned, aligned, nothing buffered, a chunked client"."""
        if self._go:
            try:
                head, out_head, token_of = self._shapes[len(data)]
            except KeyError:
                head, out_head, token_of = self._shape(len(data))
            if head is not None:
                # (each returns its argument itself when it does not match: two identity
                # tests say that the read is head + content + the learned tail, exactly)
                rest = data.removeprefix(head)
                raw = rest.removesuffix(self._ftail_c)
                if rest is data or raw is rest:
                    raw = self._obfuscated_content(data, head)  # another obfuscation value (OpenAI's)?
                    if raw is None:
                        self._read_chunks(data)
                        return
                    out_head = None
                token = token_of(raw)  # (text, kind): from _TOKENS if seen before (a short content)
                if token is None:
                    token = _token(raw)
                if token is not None:
                    text, kind = token
                    choice = self._choice
                    # StreamState._guard, inlined for the common outcomes
                    if text == choice.last_content:
                        try:
                            self._state._guard(choice, text)
                        except Exception as exc:  # noqa: BLE001 - the repeat guard
                            self.raw.last_read = self._time()
                            self._fail(exc)
                            return
                    elif not kind:  # counted (longer than 2 characters, not blank)
                        choice.last_content = text
                        choice.repeats = 1
                    elif kind == 1 and choice.last_content is not None:  # a short chunk ends a run
                        choice.last_content = None
                        choice.repeats = 0
                    # (blank content neither counts nor ends a run)
                    # (a callable in a slot is loaded as an attribute, then called: LOAD_METHOD
                    # does not specialize for it and takes the generic look-up every time)
                    append = self._append
                    append(text)
                    self.fast += 1
                    time = self._time
                    self.raw.last_read = now = time()  # the read timeout's, as data_received
                    if now != self._turn and not self._out:
                        self._turn = now
                        closing = self._closing
                        if not closing():
                            if out_head is None:
                                size = self._fixed + len(raw)
                                out_head = (_HEX_LINES[size] if size < 4096 else b"%x\r\n" % size) + self._prefix
                            put = self._put
                            put(b"".join((out_head, raw, self._suffix_c)))
                        return
                    self._send(self._prefix + raw + self._suffix)
                    return
        self._read_chunks(data)

    def _obfuscated_content(self, data: bytes, head: bytes) -> bytes | None:
        """The content of a read that is ``head`` + content + the learned tail with another
        ``obfuscation`` value, else None."""
        if not self._obf_pre or not data.startswith(head):
            return None
        s = len(head)
        e = data.find(b'"', s)
        if e < 0 or not self._obfuscated(data, e, self._obf_post_c):
            return None
        return data[s:e]

    def _read_chunks(self, data: bytes) -> None:
        """A read that is not one content chunk of the learned shape: whole chunks to
        :meth:`_feed` while the parser stands between chunks, the rest through the parser."""
        conn = self.raw
        if self._go:
            # Whole chunks (a read that carries several: a burst, or a relay that fell behind):
            # each chunk's data to _feed, as the parser would hand it, up to the first chunk
            # that is not whole or whose size line is not the plain one (the last chunk, "0").
            n = len(data)
            pos = 0
            while True:
                i = data.find(b"\r\n", pos, pos + 5)
                size = _HEX_SIZES.get(data[pos:i]) if i > pos else None
                if size is None:
                    break
                start = i + 2
                stop = start + size
                if data[stop:stop + 2] != b"\r\n":
                    break
                self._feed(data[start:stop])
                pos = stop + 2
                if pos == n or self._handler is None:  # all read, or the relay stopped
                    break
            if pos:
                conn.last_read = self._time()
                if pos == n:
                    self._go = self._ready(True)
                    return
                data = data[pos:]
        conn.data_received(data)  # the parser: its body pieces come to _feed
        self._go = self._ready(conn.aligned())

    def _ready(self, aligned: bool) -> bool:
        """Whether the next read may take :meth:`_read`'s one-chunk way: the relay reads the
        connection, the parser stands between two chunks (``aligned``), the content frame's
        shape is known, no frame is begun and the client's body is chunked."""
        return (aligned and self._handler is not None and self._fhead is not None and not self._buf
                and self._chunked and self.raw.state == _LEAN_BODY)

    def _pause_upstream(self) -> None:
        self.raw.pause_reading()

    def _resume_upstream(self) -> None:
        self.raw.resume_reading()


_LEAN_BODY = lean._BODY
#: The layout of a read length no one-chunk content read has (LeanRelay._shape): its head matches nothing.
_NO_SHAPE = (None, None, None)
#: ``b"%x\r\n" % n``: an HTTP chunk's size line, for sizes below 4096.
_HEX_LINES = [b"%x\r\n" % n for n in range(4096)]
#: A chunk's size from its size line's plain lower-case hex digits, 1 to 4095 (not 0: the last chunk).
_HEX_SIZES = {b"%x" % n: n for n in range(1, 4096)}


class _LeanUpstream(asyncio.Protocol):
    """The lean connection's protocol while a :class:`LeanRelay` reads its body: reads go to
    :meth:`LeanRelay._read`, the rest to the connection."""

    __slots__ = ("data_received", "conn")

    def __init__(self, relay: LeanRelay, conn: Any) -> None:
        self.data_received = relay._read  # type: ignore[method-assign]
        self.conn = conn

    def eof_received(self) -> Any:
        return self.conn.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()


class _Upstream(asyncio.Protocol):
    """The upstream connection's protocol while a relay owns the body: bytes go straight into
    aiohttp's parser (which calls the hooked reader); the rest is aiohttp's protocol's."""

    __slots__ = ("relay", "handler", "feed")

    def __init__(self, relay: FastRelay, handler: Any, feed: Any) -> None:
        self.relay = relay
        self.handler = handler
        self.feed = feed

    def data_received(self, data: bytes) -> None:
        relay = self.relay
        relay._last_read = relay._loop.time()
        try:
            self.feed(data)
        except Exception as exc:  # noqa: BLE001 - a broken body, as aiohttp's data_received handles it
            from aiohttp.http_exceptions import HttpProcessingError

            handler = self.handler
            relay._restore()
            if handler.transport is not None:
                handler.transport.close()
            handler.set_exception(HttpProcessingError(), exc)

    def eof_received(self) -> Any:
        return self.handler.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.relay._restore()
        self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()


#: (aiohttp's StreamReader, its relay subclass), made on first use (aiohttp imports lazily).
_READERS: "tuple[type, type] | None" = None


def _load_readers() -> None:
    global _READERS
    from aiohttp import StreamReader

    class RelayReader(StreamReader):
        """aiohttp's body reader while a :class:`FastRelay` owns the body: the parser's calls go
        to the relay (kept in the ``_timer`` slot) instead of a buffer and a waiter."""

        __slots__ = ()

        def feed_data(self, data: bytes, size: int = 0) -> bool:
            self._timer._feed(data)
            return False

        def begin_http_chunk_receiving(self) -> None:
            pass

        def end_http_chunk_receiving(self) -> None:
            pass

        def feed_eof(self) -> None:
            relay = self._timer
            relay._eof()
            StreamReader.feed_eof(self)

        def set_exception(self, exc: BaseException, exc_cause: BaseException = None) -> None:  # type: ignore[assignment]
            relay = self._timer
            relay._stop()
            if exc_cause is None:
                StreamReader.set_exception(self, exc)
            else:
                StreamReader.set_exception(self, exc, exc_cause)

    _READERS = (StreamReader, RelayReader)
