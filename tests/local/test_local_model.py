"""Real generation with SmolLM2-135M (short max_tokens, so each test takes well under a second)."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

import llmrelay

pytestmark = pytest.mark.usefixtures("needs_model")

MODEL = "local/smollm2"
QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]
ESSAY = [{"role": "user", "content": "Write a long essay about the history of the Roman empire."}]
GREEDY = {"temperature": 0, "max_tokens": 24}
JOIN_TIMEOUT = 10.0  # generous: a stopped worker ends within one token


def _check_contract(chunks: list) -> str:
    """One id, role first only, finish_reason once on the last choice chunk; returns the text."""
    assert chunks
    assert len({c.id for c in chunks}) == 1
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in with_choices[1:])
    reasons = [c.choices[0].finish_reason for c in with_choices]
    assert reasons[-1] in ("stop", "length") and all(r is None for r in reasons[:-1])
    return "".join(c.choices[0].delta.content or "" for c in with_choices)


def _prompt_tokens(path: str, user: str) -> int:
    """Counted independently of llmrelay: SmolLM2's template written out, tokenized by llama.cpp."""
    from llama_cpp import Llama

    llama = Llama(model_path=path, vocab_only=True, verbose=False)
    prompt = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
    try:
        return len(llama.tokenize(prompt.encode(), add_bos=False, special=True))
    finally:
        llama.close()


def test_sync_stream_contract_and_exact_usage(smollm2_path: str) -> None:
    stream = llmrelay.completion(MODEL, QUESTION, stream=True, max_tokens=12, seed=7,
                                 stream_options={"include_usage": True})
    chunks = list(stream)
    text = _check_contract(chunks)
    assert text.strip()
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage.prompt_tokens == _prompt_tokens(smollm2_path, "Why is the sky blue?")
    assert usage.completion_tokens == 12  # finish_reason "length": exactly max_tokens sampled
    assert usage.total_tokens == usage.prompt_tokens + 12
    assert stream.usage.completion_tokens == 12
    assert [c for c in chunks if c.choices][-1].choices[0].finish_reason == "length"


async def test_async_stream_contract(smollm2_path: str) -> None:
    stream = await llmrelay.acompletion(MODEL, QUESTION, stream=True, max_tokens=12, seed=7,
                                        stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    text = _check_contract(chunks)
    assert text.strip()
    assert chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens == _prompt_tokens(smollm2_path, "Why is the sky blue?")


def test_sync_async_stream_and_plain_agree(smollm2_path: str) -> None:
    """Same seed → same text whichever way it is asked for."""
    plain = llmrelay.completion(MODEL, QUESTION, **GREEDY)
    streamed = _check_contract(list(llmrelay.completion(MODEL, QUESTION, stream=True, **GREEDY)))

    async def both() -> tuple:
        aplain = await llmrelay.acompletion(MODEL, QUESTION, **GREEDY)
        astream = await llmrelay.acompletion(MODEL, QUESTION, stream=True, **GREEDY)
        return aplain, _check_contract([c async for c in astream])

    aplain, astreamed = asyncio.run(both())
    assert plain.choices[0].message.content == streamed == aplain.choices[0].message.content == astreamed
    assert plain.choices[0].finish_reason == "length"
    assert plain.usage.completion_tokens == 24
    assert plain.model == "smollm2"


def test_max_tokens_gives_length(smollm2_path: str) -> None:
    response = llmrelay.completion(MODEL, ESSAY, max_tokens=5)
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 5
    response = llmrelay.completion(MODEL, ESSAY, max_completion_tokens=3)
    assert response.usage.completion_tokens == 3


def test_stop_sequences_cut_the_text(smollm2_path: str) -> None:
    full = llmrelay.completion(MODEL, QUESTION, temperature=0, max_tokens=40).choices[0].message.content
    words = full.split(" ")
    assert len(words) > 6, full
    # a stop sequence spanning several tokens, starting mid-text
    stop = " ".join(words[3:5])
    expected = full[: full.index(stop)]
    for stream in (False, True):
        if stream:
            chunks = list(llmrelay.completion(MODEL, QUESTION, stream=True, temperature=0, max_tokens=40, stop=[stop]))
            text, reason = _check_contract(chunks), chunks[-1].choices[0].finish_reason
        else:
            response = llmrelay.completion(MODEL, QUESTION, temperature=0, max_tokens=40, stop=["@@never@@", stop])
            text, reason = response.choices[0].message.content, response.choices[0].finish_reason
        assert text == expected
        assert reason == "stop"


def test_stop_sequence_never_seen_is_held_back_then_released(smollm2_path: str) -> None:
    full = llmrelay.completion(MODEL, QUESTION, temperature=0, max_tokens=20).choices[0].message.content
    # the text's last char + something it never produces: held back at the end, then flushed
    stop = full[-1] + "\x00"
    chunks = list(llmrelay.completion(MODEL, QUESTION, stream=True, temperature=0, max_tokens=20, stop=stop))
    assert _check_contract(chunks) == full
    assert chunks[-1].choices[0].finish_reason == "length"


def test_seed_reproduces(smollm2_path: str) -> None:
    def sample(seed: int) -> str:
        return llmrelay.completion(MODEL, QUESTION, temperature=1.0, max_tokens=20, seed=seed).choices[0].message.content

    first = sample(123)
    assert sample(123) == first
    assert any(sample(seed) != first for seed in (1, 2, 3))


def _worker_of(stream) -> threading.Thread:
    thread = stream._source.thread
    assert thread is not None
    return thread


def test_early_break_and_close_stop_generation(smollm2_path: str) -> None:
    stream = llmrelay.completion(MODEL, ESSAY, stream=True, max_tokens=2000)
    for i, _chunk in enumerate(stream):
        if i == 2:
            break
    thread, source = _worker_of(stream), stream._source
    stream.close()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    assert source.result is None  # cancelled, not finished


def test_abandoned_stream_is_stopped_by_garbage_collection(smollm2_path: str) -> None:
    stream = llmrelay.completion(MODEL, ESSAY, stream=True, max_tokens=2000)
    next(stream)
    thread, source = _worker_of(stream), stream._source
    del stream
    gc.collect()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    assert source.result is None


async def test_async_aclose_and_cancellation_stop_generation(smollm2_path: str) -> None:
    stream = await llmrelay.acompletion(MODEL, ESSAY, stream=True, max_tokens=2000)
    async for _chunk in stream:
        break
    thread, source = _worker_of(stream), stream._source
    await stream.aclose()
    await asyncio.to_thread(thread.join, JOIN_TIMEOUT)
    assert not thread.is_alive() and source.result is None

    stream = await llmrelay.acompletion(MODEL, ESSAY, stream=True, max_tokens=2000)
    started = asyncio.Event()

    async def consume() -> None:
        async for _chunk in stream:
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    thread, source = _worker_of(stream), stream._source
    await asyncio.to_thread(thread.join, JOIN_TIMEOUT)
    assert not thread.is_alive() and source.result is None


async def test_event_loop_keeps_running_during_generation(smollm2_path: str) -> None:
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    response = await llmrelay.acompletion(MODEL, ESSAY, max_tokens=48)
    during = ticks - before
    done = True
    await task
    assert response.usage.completion_tokens == 48
    assert during >= 5  # a blocked loop would not tick at all while the model generates


@pytest.mark.slow
def test_concurrent_threads_are_queued_safely(smollm2_path: str) -> None:
    reference = {
        q: llmrelay.completion(MODEL, [{"role": "user", "content": q}], **GREEDY).choices[0].message.content
        for q in ("Why is the sky blue?", "What is a cat?")
    }
    results: dict[str, list[str]] = {q: [] for q in reference}
    errors: list[BaseException] = []

    def run(q: str) -> None:
        try:
            stream = llmrelay.completion(MODEL, [{"role": "user", "content": q}], stream=True, **GREEDY)
            results[q].append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(q,)) for q in reference for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for q, texts in results.items():
        assert texts == [reference[q]] * 2


@pytest.mark.slow
async def test_concurrent_async_requests_are_queued_safely(smollm2_path: str) -> None:
    questions = ("Why is the sky blue?", "What is a cat?")
    reference = [
        (await llmrelay.acompletion(MODEL, [{"role": "user", "content": q}], **GREEDY)).choices[0].message.content
        for q in questions
    ]

    async def run(q: str) -> str:
        stream = await llmrelay.acompletion(MODEL, [{"role": "user", "content": q}], stream=True, **GREEDY)
        return _check_contract([c async for c in stream])

    assert await asyncio.gather(*(run(q) for q in questions)) == reference


def test_model_path_and_aliases(smollm2_path: str) -> None:
    expected = llmrelay.completion(MODEL, QUESTION, **GREEDY).choices[0].message.content
    for model, extra in (
        ("local/SmolLM2-135M-Instruct", {}),
        (f"local/{smollm2_path}", {}),
        ("local/my-model", {"model_path": smollm2_path}),
    ):
        response = llmrelay.completion(model, QUESTION, **GREEDY, **extra)
        assert response.choices[0].message.content == expected


def test_system_message_and_content_parts(smollm2_path: str) -> None:
    messages = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": [{"type": "text", "text": "Why is the sky "}, {"type": "text", "text": "blue?"}]},
    ]
    response = llmrelay.completion(MODEL, messages, max_tokens=4)
    # sampled: the model may end its answer before the limit (then finish_reason is "stop")
    usage, finish = response.usage, response.choices[0].finish_reason
    assert (usage.completion_tokens, finish) == (4, "length") or (0 < usage.completion_tokens < 4 and finish == "stop")
    with pytest.raises(llmrelay.BadRequestError, match="text only"):
        llmrelay.completion(MODEL, [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])


def test_n_is_dropped_with_drop_params(smollm2_path: str) -> None:
    response = llmrelay.completion(MODEL, QUESTION, n=2, drop_params=True, max_tokens=3)
    assert len(response.choices) == 1


def test_prompt_longer_than_the_context_window(smollm2_path: str) -> None:
    messages = [{"role": "user", "content": "hello " * 5000}]
    with pytest.raises(llmrelay.ContextWindowExceededError):
        llmrelay.completion(MODEL, messages, max_tokens=4)
    with pytest.raises(llmrelay.ContextWindowExceededError):
        list(llmrelay.completion(MODEL, messages, stream=True, max_tokens=4))
