"""ChatFrameRewriter (the gateway's stream fast path, sans-I/O): a content frame of the learned
shape becomes exactly the general path's bytes; every other frame is refused (None)."""

from __future__ import annotations

import orjson
import pytest

from llmrelay import settings
from llmrelay.exceptions import InternalServerError
from llmrelay.proxy.fastpath import ChatFrameRewriter
from llmrelay.proxy.ingress.chat import ChatEncoder
from llmrelay.streaming import StreamState

BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1"}


def chunk(delta: dict, **extra) -> dict:
    return {**BASE, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}], **extra}


def data(obj: dict) -> bytes:
    return orjson.dumps(obj)


def general(state: StreamState, encoder: ChatEncoder, obj: dict) -> bytes:
    out = state.process(obj)
    return b"" if out is None else encoder.chunk(out)


@pytest.fixture()
def pair():
    """(rewriter, state, encoder, reference state/encoder for the general path), after the role
    chunk and one learned content frame."""
    encoder = ChatEncoder("client-model")
    state, ref = StreamState("gpt-4o-mini"), StreamState("gpt-4o-mini")
    for s in (state, ref):
        s.process(chunk({"role": "assistant", "content": "", "refusal": None}))
    rewriter = ChatFrameRewriter(state, encoder)
    first = chunk({"content": "Hello"})
    general(state, encoder, first)
    general(ref, encoder, first)
    assert rewriter.learn(data(first), first)
    return rewriter, state, encoder, ref


@pytest.mark.parametrize("text", [" world", "é ✓ 漢字", 'a "quoted" \\ back\nslash\t', "\u2028", "x" * 500])
def test_content_frames_match_the_general_path(pair, text):
    rewriter, state, encoder, ref = pair
    frame = chunk({"content": text})
    out = rewriter.rewrite(data(frame))
    if '"' in text:
        assert out is None  # an escaped quote: left to the general path
        return
    assert out == general(ref, encoder, frame)
    assert orjson.loads(out[6:])["model"] == "client-model"
    assert state.generated_content() == ref.generated_content()


@pytest.mark.parametrize("control", [b"\x01", b"\t", b"\x1f"])
def test_raw_control_character_is_left_to_the_general_path(pair, control):
    """JSON forbids a raw control character in a string: the general path's decoder refuses the
    frame, so the rewriter must not relay it (nor count it as generated text)."""
    rewriter, state, _, _ = pair
    frame = data(chunk({"content": "a\u0001b"})).replace(b"\\u0001", control)
    assert control in frame
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(frame)
    assert rewriter.rewrite(frame) is None
    assert state.generated_content() == "Hello"


def test_obfuscation_value_may_differ(pair):
    rewriter, state, encoder, ref = pair
    first = chunk({"content": "a"}, obfuscation="Zx9")
    rewriter2 = ChatFrameRewriter(state, encoder)
    assert rewriter2.learn(data(first), first)
    frame = chunk({"content": " next"}, obfuscation="q")
    assert rewriter2.rewrite(data(frame)) == general(ref, encoder, frame)
    assert rewriter2.rewrite(data(chunk({"content": " x"}, obfuscation='a\\"b'))) is None


@pytest.mark.parametrize("frame", [
    chunk({"content": "x", "role": "assistant"}),
    chunk({"content": "x", "tool_calls": None, "reasoning_content": "r"}),
    {**BASE, "choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": {"content": []}, "finish_reason": None}]},
    {**BASE, "choices": [{"index": 1, "delta": {"content": "x"}, "logprobs": None, "finish_reason": None}]},
    {**BASE, "choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": None, "finish_reason": "stop"}]},
    chunk({"content": "x"}, usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
    {**chunk({"content": "x"}), "id": "chatcmpl-2"},
    {**BASE, "choices": [], "usage": {"prompt_tokens": 1}},
])
def test_other_shapes_are_refused(pair, frame):
    rewriter, *_ = pair
    assert rewriter.rewrite(data(frame)) is None


def test_refused_before_learning_and_learning_needs_plain_content():
    encoder = ChatEncoder("m")
    state = StreamState("m")
    state.process(chunk({"role": "assistant", "content": ""}))
    rewriter = ChatFrameRewriter(state, encoder)
    assert rewriter.rewrite(data(chunk({"content": "x"}))) is None
    tool = chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
    assert not rewriter.learn(data(tool), tool)
    logprobs = {**BASE, "choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": {"a": 1}, "finish_reason": None}]}
    assert not rewriter.learn(data(logprobs), logprobs)
    for _ in range(ChatFrameRewriter.MAX_ATTEMPTS):
        rewriter.learn(data(tool), tool)
    assert not rewriter.learning


def test_empty_content_is_dropped_like_the_general_path(pair):
    rewriter, state, encoder, ref = pair
    frame = chunk({"content": ""})
    assert rewriter.rewrite(data(frame)) == b"" == general(ref, encoder, frame)


def test_repeat_guard(pair):
    rewriter, state, *_ = pair
    limit = settings.get("REPEATED_STREAMING_CHUNK_LIMIT")
    frame = data(chunk({"content": " again"}))
    with pytest.raises(InternalServerError):
        for _ in range(limit + 2):
            rewriter.rewrite(frame)
    assert state.choices[0].repeats == limit + 1


def test_azure_shaped_chunks():
    """Azure's chunks carry content_filter_results in each choice (keys in alphabetical order)."""
    filters = {"hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": False, "severity": "safe"}}

    def azure(text: str, level: str = "safe") -> dict:
        f = {k: {**v, "severity": level} for k, v in filters.items()}
        return {"choices": [{"content_filter_results": f, "delta": {"content": text}, "finish_reason": None,
                             "index": 0, "logprobs": None}], "created": 1700000000, "id": "chatcmpl-az",
                "model": "gpt-4o-2024-08-06", "object": "chat.completion.chunk", "system_fingerprint": "fp_az"}

    encoder = ChatEncoder("azure-model")
    state, ref = StreamState("gpt-4o"), StreamState("gpt-4o")
    role = {"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None, "index": 0}],
            "created": 1700000000, "id": "chatcmpl-az", "model": "gpt-4o-2024-08-06", "object": "chat.completion.chunk"}
    for s in (state, ref):
        s.process(role)
    rewriter = ChatFrameRewriter(state, encoder)
    first = azure("Hi")
    general(state, encoder, first)
    general(ref, encoder, first)
    assert rewriter.learn(data(first), first)
    for text in (" there", " friend"):
        frame = azure(text)
        assert rewriter.rewrite(data(frame)) == general(ref, encoder, frame)
    assert rewriter.rewrite(data(azure(" x", level="low"))) is None  # the filters changed: decoded


def _after_role(role: dict) -> tuple[ChatFrameRewriter, StreamState, ChatEncoder, StreamState]:
    encoder = ChatEncoder("client-model")
    state, ref = StreamState("gpt-4o-mini"), StreamState("gpt-4o-mini")
    for s in (state, ref):
        s.process(role)
    return ChatFrameRewriter(state, encoder), state, encoder, ref


@pytest.mark.parametrize("role_delta", [{"role": "assistant", "content": "", "refusal": None},
                                        {"role": "assistant", "content": ""}])
@pytest.mark.parametrize("extra", [{}, {"obfuscation": "Zx9"}])
def test_guessed_from_the_role_frame(role_delta, extra):
    """OpenAI's (and the compatible servers') role frame: the first content frame is rewritten
    without being learned, into the general path's bytes."""
    rewriter, state, encoder, ref = _after_role(chunk(role_delta, **extra))
    assert rewriter.guess(data(chunk(role_delta, **extra)), chunk(role_delta, **extra))
    assert rewriter.learning  # a wrong guess can still be corrected
    for text in ("Hello", " world", "é ✓"):
        frame = chunk({"content": text}, **({"obfuscation": text[:2]} if extra else {}))
        assert rewriter.rewrite(data(frame)) == general(ref, encoder, frame)
    assert state.generated_content() == ref.generated_content() == "Hello worldé ✓"


def test_a_wrong_guess_only_fails_to_match_and_is_learned_over():
    """A server whose content frames have another shape than the guess: nothing is rewritten
    until the real shape is learned from a decoded frame."""
    role = chunk({"role": "assistant", "content": ""})
    rewriter, state, encoder, ref = _after_role(role)
    assert rewriter.guess(data(role), role)
    frame = chunk({"content": "Hi", "tool_calls": None})  # decodes to a content chunk, other bytes
    assert rewriter.rewrite(data(frame)) is None
    general(state, encoder, frame)
    general(ref, encoder, frame)
    assert rewriter.learn(data(frame), frame) and not rewriter.guessed
    frame = chunk({"content": " there", "tool_calls": None})
    assert rewriter.rewrite(data(frame)) == general(ref, encoder, frame)
    assert rewriter.rewrite(data(chunk({"content": "x"}))) is None  # the guess is gone


@pytest.mark.parametrize("first", [
    chunk({"role": "assistant", "content": "Hi"}),  # content in the role frame
    chunk({"role": "assistant", "content": None}),
    chunk({"role": "assistant", "content": ""}, usage={"prompt_tokens": 1}),
    {**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                          "finish_reason": "stop"}]},
    {**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": {"content": []},
                          "finish_reason": None}]},
    {**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None},
                         {"index": 1, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {**BASE, "choices": [{"index": 1, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {**chunk({"role": "assistant", "content": ""}), "note": "a \"quoted\" value"},
])
def test_no_guess_from_other_first_frames(first):
    rewriter, *_ = _after_role(first)
    assert not rewriter.guess(data(first), first)
    assert rewriter.head is None


@pytest.mark.parametrize("base", [BASE, {k: v for k, v in BASE.items() if k != "system_fingerprint"}])
def test_client_template_from_the_role_chunk_frame(base):
    """The client's frame of the role chunk gives the content frames' template: the same bytes
    as building it from the state (what the general path encodes)."""
    encoder = ChatEncoder("client-model")
    state = StreamState("gpt-4o-mini")
    role = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                                 "logprobs": None, "finish_reason": None}]}
    frame = encoder.chunk(state.process(role))
    built, derived = ChatFrameRewriter(state, encoder), ChatFrameRewriter(state, encoder, frame)
    assert (derived.prefix, derived.suffix) == (built.prefix, built.suffix)
    # not a role chunk's frame: built as before
    other = ChatFrameRewriter(state, encoder, encoder.chunk(state.process(chunk({"content": "x"}))))
    assert (other.prefix, other.suffix) == (built.prefix, built.suffix)


def _finish(reason: str, **extra) -> dict:
    return {**BASE, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}], **extra}


@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls", "end_turn", "max_tokens"])
@pytest.mark.parametrize("how", ["learned", "guessed"])
def test_finish_frame_is_accounted_like_the_general_path(pair, reason, how):
    """The finish frame of the learned (or guessed) shape: the choice's finish reason as
    StreamState.process sets it, no chunk (the finish chunk comes with the stream's end)."""
    if how == "learned":
        rewriter, state, encoder, ref = pair
    else:
        role = chunk({"role": "assistant", "content": ""})
        rewriter, state, encoder, ref = _after_role(role)
        assert rewriter.guess(data(role), role)
    frame = _finish(reason)
    assert rewriter.rewrite(data(frame)) is None
    assert rewriter.finish(data(frame))
    assert general(ref, encoder, frame) == b""
    assert state.choices[0].finish == ref.choices[0].finish
    assert [encoder.chunk(c) for c in state.finish(True)] == [encoder.chunk(c) for c in ref.finish(True)]


def test_finish_frame_keeps_the_first_reason(pair):
    rewriter, state, encoder, ref = pair
    for reason in ("length", "stop"):
        frame = _finish(reason)
        assert rewriter.finish(data(frame))
        general(ref, encoder, frame)
    assert state.choices[0].finish == ref.choices[0].finish == "length"


def test_finish_frame_with_another_obfuscation_value():
    role = chunk({"role": "assistant", "content": "", "refusal": None}, usage=None, obfuscation="Zx9")
    rewriter, state, encoder, ref = _after_role(role)
    assert rewriter.guess(data(role), role)
    frame = _finish("stop", usage=None, obfuscation="q1")
    assert rewriter.finish(data(frame)) and state.choices[0].finish == "stop"
    assert not rewriter.finish(data(_finish("stop", usage=None, obfuscation='a\\"b')))


@pytest.mark.parametrize("frame", [
    _finish("Stop"),  # (a reason the general path normalizes: decoded there)
    _finish("unknown_reason"),
    _finish(""),
    {**BASE, "choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": None, "finish_reason": "stop"}]},
    {**BASE, "choices": [{"index": 0, "delta": {}, "logprobs": {"content": []}, "finish_reason": "stop"}]},
    {**BASE, "choices": [{"index": 1, "delta": {}, "logprobs": None, "finish_reason": "stop"}]},
    {**BASE, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
    {**_finish("stop"), "id": "chatcmpl-2"},
    {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}]},
])
def test_other_finish_shapes_are_refused(pair, frame):
    rewriter, state, *_ = pair
    assert not rewriter.finish(data(frame))
    assert state.choices[0].finish is None


def test_finish_shape_with_keys_in_alphabetical_order():
    encoder = ChatEncoder("m")
    state, ref = StreamState("m"), StreamState("m")
    role = {"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None, "index": 0}],
            "created": 1, "id": "c", "model": "m", "object": "chat.completion.chunk"}
    first = {**role, "choices": [{"delta": {"content": "Hi"}, "finish_reason": None, "index": 0}]}
    for s in (state, ref):
        s.process(role)
        s.process(first)
    rewriter = ChatFrameRewriter(state, encoder)
    assert rewriter.learn(data(first), first)
    frame = {**role, "choices": [{"delta": {}, "finish_reason": "length", "index": 0}]}
    assert rewriter.finish(data(frame))
    general(ref, encoder, frame)
    assert state.choices[0].finish == ref.choices[0].finish == "length"


def test_no_finish_shape_when_the_reason_is_not_next_to_the_delta():
    """Another member between the delta and the finish reason: no byte-level finish frame."""
    encoder = ChatEncoder("m")
    state = StreamState("m")
    role = chunk({"role": "assistant", "content": ""})
    state.process(role)
    rewriter = ChatFrameRewriter(state, encoder)
    first = {**BASE, "choices": [{"index": 0, "delta": {"content": "Hi"}, "x": 1, "finish_reason": None}]}
    state.process(first)
    assert rewriter.learn(data(first), first) and rewriter.fin_head is None
    frame = {**BASE, "choices": [{"index": 0, "delta": {}, "x": 1, "finish_reason": "stop"}]}
    assert not rewriter.finish(data(frame))
@pytest.mark.parametrize("text", ["Hello", " world", ",", "ab", "   ", " ", "\u00e9t\u00e9", "\u2028x", "\u00a0",
                                  "a" * 60, "\u4f60\u597d\u4e16\u754c"])
def test_a_token_seen_before_counts_as_the_repeat_guard_counts_it(text):
    """LeanRelay._read's (text, kind) of a content — decoded and checked once, then kept in
    _TOKENS — drive the repeat guard as StreamState._guard does with the text itself."""
    from llmrelay.proxy.fastpath import _TOKENS, _checked, _token
    from llmrelay.streaming import _ChoiceState

    raw = orjson.dumps(text)[1:-1]
    token = _token(raw)
    assert token == _checked(raw) and token[0] == text
    assert _TOKENS.get(raw) == (token if len(raw) <= 48 else None)
    for before in (None, "other", text if len(text) > 2 and text.strip() else None):
        guarded, inlined = _ChoiceState(), _ChoiceState()
        guarded.last_content = inlined.last_content = before
        guarded.repeats = inlined.repeats = 1 if before else 0
        StreamState("m")._guard(guarded, text)
        kind = token[1]
        if text == inlined.last_content:
            inlined.repeats += 1
        elif not kind:
            inlined.last_content, inlined.repeats = text, 1
        elif kind == 1 and inlined.last_content is not None:
            inlined.last_content, inlined.repeats = None, 0
        assert (inlined.last_content, inlined.repeats) == (guarded.last_content, guarded.repeats)


@pytest.mark.parametrize("raw", [b"", b'a"b', b"a\\nb", b"a\\\"", b"tab\there", b"nl\nx", b"\xff\xfe", b"\xe4\xbd"])
def test_a_content_that_needs_the_general_path_is_never_a_token(raw):
    from llmrelay.proxy.fastpath import _TOKENS, _checked, _token

    assert _checked(raw) is None and _token(raw) is None and raw not in _TOKENS
