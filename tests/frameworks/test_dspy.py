"""DSPy with ``engine="litellm"`` on llmrelay: plain call, Predict, ChainOfThought, the JSON
adapter (a pydantic class as response_format), async acall, streamify."""

from __future__ import annotations

import asyncio
import json

import pytest

from frameworks.conftest import MODEL

dspy = pytest.importorskip("dspy", reason="dspy is not installed (scripts/setup-env.sh installs it)")

FIELDS = {"reasoning": "Paris is the capital of France.", "answer": "Paris"}


def _answer(body: dict) -> str:
    """Answer in the format DSPy's adapter asked for: JSON or ``[[ ## field ## ]]`` sections."""
    prompt = json.dumps(body["messages"])
    wanted = [f for f in FIELDS if f"[[ ## {f} ## ]]" in prompt or f'\\"{f}\\"' in prompt]
    fields = {f: FIELDS[f] for f in (wanted or ["answer"])}
    if body.get("response_format") or "JSON" in prompt and "[[ ##" not in prompt:
        return json.dumps(fields)
    return "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in fields.items()) + "[[ ## completed ## ]]"


def _lm(srv) -> "dspy.LM":
    return dspy.LM(MODEL, api_base=srv.url + "/v1", api_key="sk-test", engine="litellm", cache=False)


def test_plain_call(server_factory):
    srv = server_factory("Bonjour")
    out = _lm(srv)("Say hello in French")
    assert out == ["Bonjour"]
    assert srv.chat_requests[0]["messages"][-1]["content"] == "Say hello in French"


def test_predict(server_factory):
    srv = server_factory(_answer)
    with dspy.context(lm=_lm(srv)):
        pred = dspy.Predict("question -> answer")(question="What is the capital of France?")
    assert pred.answer == "Paris"


def test_chain_of_thought(server_factory):
    srv = server_factory(_answer)
    with dspy.context(lm=_lm(srv)):
        pred = dspy.ChainOfThought("question -> answer")(question="What is the capital of France?")
    assert pred.answer == "Paris"
    assert pred.reasoning == FIELDS["reasoning"]


def test_json_adapter_sends_a_json_schema(server_factory):
    srv = server_factory(_answer)
    with dspy.context(lm=_lm(srv), adapter=dspy.JSONAdapter()):
        pred = dspy.ChainOfThought("question -> answer")(question="What is the capital of France?")
    assert pred.answer == "Paris"
    rf = srv.chat_requests[0]["response_format"]
    assert rf["type"] == "json_schema", rf
    schema = rf["json_schema"]["schema"]
    assert set(schema["properties"]) == {"reasoning", "answer"}
    assert schema["additionalProperties"] is False


def test_async_acall(server_factory):
    srv = server_factory(_answer)

    async def main():
        with dspy.context(lm=_lm(srv)):
            return await dspy.Predict("question -> answer").acall(question="Capital of France?")

    assert asyncio.run(main()).answer == "Paris"


def test_streamify(server_factory):
    srv = server_factory(_answer)
    program = dspy.streamify(
        dspy.Predict("question -> answer"),
        stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")],
    )

    async def main():
        chunks, final = [], None
        with dspy.context(lm=_lm(srv)):
            async for item in program(question="Capital of France?"):
                if isinstance(item, dspy.streaming.StreamResponse):
                    chunks.append(item.chunk)
                elif isinstance(item, dspy.Prediction):
                    final = item
        return chunks, final

    chunks, final = asyncio.run(main())
    assert final is not None and final.answer == "Paris"
    assert "".join(chunks).strip() == "Paris"
    assert srv.chat_requests[0]["stream"] is True


def test_disk_cache_round_trip(server_factory, tmp_path):
    """DSPy's disk cache unpickles only classes from ``litellm.types.*``: a cached llmrelay
    response is served on the second call without a request."""
    srv = server_factory(_answer)
    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=False, disk_cache_dir=str(tmp_path))
    try:
        lm = dspy.LM(MODEL, api_base=srv.url + "/v1", api_key="sk-test", engine="litellm", cache=True)
        with dspy.context(lm=lm):
            first = dspy.Predict("question -> answer")(question="Capital of France, cached?")
            second = dspy.Predict("question -> answer")(question="Capital of France, cached?")
    finally:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    assert first.answer == second.answer == "Paris"
    assert len(srv.chat_requests) == 1
