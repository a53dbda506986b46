"""Cache hits served as bytes (``CacheRequest.served``, llmrelay/proxy/response_cache.py): the
bytes must be the general replay's (stream state machine + chat encoder), with the stored id
(a fresh one per hit if none was stored) and the client's model name; entries a template cannot express go the general way.

A local-memory cache (the same ``Cache`` class as Redis, another backend) holds the entries.
"""

from __future__ import annotations

import time

import orjson
import pytest

from llmrelay.caching import Cache
from llmrelay.caching.replay import encode_entry
from llmrelay.proxy.ingress import CanonicalRequest
from llmrelay.proxy.ingress.chat import ChatEncoder, ChatIngress
from llmrelay.proxy.response_cache import GatewayCache, Rendered

USAGE = {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}

ANSWERS = {
    "text": {"id": "chatcmpl-up", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini-2024",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello \"world\" é\n"},
                          "finish_reason": "stop"}],
             "usage": USAGE},
    "tools": {"id": "chatcmpl-up", "object": "chat.completion", "created": 1700000001, "model": "m",
              "system_fingerprint": "fp_1",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
                  {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}},
                  {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
                           "finish_reason": "tool_calls"}],
              "usage": USAGE},
    "reasoning, two choices": {
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1700000002, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "A", "reasoning_content": "think"},
                     "finish_reason": "stop"},
                    {"index": 1, "message": {"role": "assistant", "content": "B"}, "finish_reason": "length"}],
        "usage": {**USAGE, "completion_tokens_details": {"reasoning_tokens": 2}}},
}


def _request(model: str = "gpt-4o-mini", stream: bool = False, content: str = "hi", **params) -> CanonicalRequest:
    return CanonicalRequest(model, [{"role": "user", "content": content}], stream, params)


async def _store(gateway: GatewayCache, request: CanonicalRequest, answer: dict) -> None:
    await gateway.cache.astore(gateway.request({"headers": []}, request).key, answer)


async def _general_bytes(gateway: GatewayCache, request: CanonicalRequest) -> tuple[bytes, str]:
    """(body, id) of the general path's answer to a hit: the replay through the stream state
    machine and the chat encoder (as ``ProxyApp._stream``), or the chat ingress's JSON."""
    cr = gateway.request({"headers": []}, request)
    result = await cr.acall(None, request)  # a hit: the Router is not called
    assert cr.hit
    if not request.stream:
        return ChatIngress().response_body(result, request), result.id
    encoder = ChatEncoder(request.model)
    frames = [encoder.chunk(chunk) async for chunk in result]
    return encoder.start() + b"".join(frames) + encoder.end(), orjson.loads(frames[0][6:])["id"]


@pytest.fixture
def gateway() -> GatewayCache:
    return GatewayCache(Cache(type="local"))


@pytest.mark.parametrize("name", list(ANSWERS))
@pytest.mark.parametrize("stream, options", [(False, None), (True, None), (True, {"include_usage": True}),
                                             (True, {"include_usage": False})])
async def test_served_bytes_are_the_general_paths(gateway, name, stream, options):
    params = {"stream_options": options} if options is not None else {}
    request = _request("my \"alias\" ü", stream, **params)
    await _store(gateway, request, ANSWERS[name])
    general, general_id = await _general_bytes(gateway, request)
    for _ in range(2):  # rendered on the first hit, from the memo on the second
        cr = gateway.request({"headers": []}, request)
        served = await cr.served(request)
        assert served is not None and cr.hit
        first = orjson.loads(served.body[6:served.body.index(b"\n\n")] if stream else served.body)
        assert served.body.replace(first["id"].encode(), general_id.encode()) == general
        assert served.usage == ANSWERS[name]["usage"]
    assert len(gateway.rendered) == 1


@pytest.mark.parametrize("stored_id", ["chatcmpl-up", None])
async def test_a_stream_hit_keeps_the_stream_contract(gateway, stored_id):
    request = _request("alias-of-gpt", True, stream_options={"include_usage": True})
    await _store(gateway, request, {**ANSWERS["text"], "id": stored_id})
    bodies = [(await gateway.request({"headers": []}, request).served(request)).body for _ in range(3)]
    ids = set()
    for body in bodies:
        assert body.endswith(b"data: [DONE]\n\n")
        chunks = [orjson.loads(f[6:]) for f in body.split(b"\n\n")[:-2]]
        assert len({c["id"] for c in chunks}) == 1  # one id for the whole stream
        ids.add(chunks[0]["id"])
        assert all(c["model"] == "alias-of-gpt" for c in chunks)  # the client's model name
        assert all(c["created"] == 1700000000 for c in chunks)  # the stored answer's
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"  # role first
        assert "role" not in chunks[1]["choices"][0]["delta"]
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, "stop"]
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == USAGE
    if stored_id:
        assert ids == {stored_id}  # the stored answer's id, as LiteLLM's hits
    else:
        assert len(ids) == 3 and all(i.startswith("chatcmpl-") for i in ids)  # none stored: one per hit


async def test_include_usage_honoured_as_before(gateway):
    request = _request(stream=True)
    await _store(gateway, request, ANSWERS["text"])
    body = (await gateway.request({"headers": []}, request).served(request)).body
    assert b'"usage"' not in body
    with_usage = _request(stream=True, stream_options={"include_usage": True})
    body = (await gateway.request({"headers": []}, with_usage).served(with_usage)).body
    assert body.count(b'"usage"') == 1


@pytest.mark.parametrize("stored_id", ["chatcmpl-\"odd\" id", None])
async def test_non_stream_hits_carry_the_id_and_the_clients_model(gateway, stored_id):
    request = _request("other")
    await _store(gateway, request, {**ANSWERS["tools"], "id": stored_id})
    seen = set()
    for _ in range(3):
        body = orjson.loads((await gateway.request({"headers": []}, request).served(request)).body)
        assert body["model"] == "other" and body["object"] == "chat.completion"
        assert body["created"] == 1700000001
        assert body["choices"][0]["message"]["tool_calls"][1]["function"]["name"] == "g"
        seen.add(body["id"])
    assert seen == {stored_id} if stored_id else len(seen) == 3


@pytest.mark.parametrize("answer", [
    # a placeholder in the answer itself: the template cannot tell it from the real places
    {**ANSWERS["text"], "choices": [{"index": 0, "message": {"role": "assistant",
                                                           "content": "x\x00llmrelay-cache-model\x00"},
                                     "finish_reason": "stop"}]},
    {k: v for k, v in ANSWERS["text"].items() if k != "usage"},  # no usage stored: counted per hit
    {k: v for k, v in ANSWERS["text"].items() if k != "created"},  # no time stored: now, per hit
    {**ANSWERS["text"], "id": 12345},  # an id that is not a string
])
@pytest.mark.parametrize("stream", [False, True])
async def test_entries_without_a_template_are_replayed_the_general_way(gateway, answer, stream):
    request = _request(stream=stream)
    await _store(gateway, request, answer)
    cr = gateway.request({"headers": []}, request)
    assert await cr.served(request) is None and not cr.hit
    result = await cr.acall(None, request)  # the entry already read: served from it, no Router
    assert cr.hit and result._hidden_params["cache_hit"] is True
    if stream:
        chunks = [c async for c in result]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
            answer["choices"][0]["message"]["content"]


async def test_misses_unreadable_and_stale_entries(gateway):
    request = _request()
    cr = gateway.request({"headers": []}, request)
    assert await cr.served(request) is None and not cr.hit  # nothing stored
    key = cr.key
    gateway.cache.backend.set(key, b"not json", None)
    assert await gateway.request({"headers": []}, request).served(request) is None
    gateway.cache.backend.set(key, b'{"v": 2, "something": "else"}', None)  # another format: ignored
    assert await gateway.request({"headers": []}, request).served(request) is None
    gateway.cache.backend.set(key, encode_entry(ANSWERS["text"], now=time.time() - 100), None)
    assert await gateway.request({"headers": []}, request).served(request) is not None
    old = gateway.request({"headers": [(b"cache-control", b"max-age=10")]}, request)
    assert await old.served(request) is None and not old.hit


async def test_no_cache_control_reads_nothing(gateway):
    request = _request()
    await _store(gateway, request, ANSWERS["text"])
    cr = gateway.request({"headers": [(b"cache-control", b"no-cache")]}, request)
    assert await cr.served(request) is None and not cr.hit


async def test_prefetched_entry_is_used(gateway):
    """The keys' admission may have read the entry in its own round trip: no read of its own."""
    request = _request(stream=True)
    cr = gateway.request({"headers": []}, request)
    cr.prefetched(encode_entry(ANSWERS["text"]))  # nothing in the backend itself
    served = await cr.served(request)
    assert served is not None and served.chunks == 2 and b"Hello" in served.body


async def test_served_result_for_the_callbacks(gateway):
    request = _request("other", stream=True)
    await _store(gateway, request, ANSWERS["text"])
    served = await gateway.request({"headers": []}, request).served(request)
    assert served._hidden_params["cache_hit"] is True
    response = served.state.response()  # what the end-of-request callbacks report
    first = orjson.loads(served.body[6:served.body.index(b"\n\n")])
    assert response.id == first["id"] == served.id and response.model == "other"  # (served.id: the spend log's)
    assert response.choices[0].message.content == ANSWERS["text"]["choices"][0]["message"]["content"]
    assert response._hidden_params["cache_hit"] is True


def test_rendered_memo_is_bounded():
    memo = Rendered(max_bytes=64 * 1024)
    raws = [encode_entry({**ANSWERS["text"], "id": f"chatcmpl-{i}"}) for i in range(200)]
    for raw in raws:
        entry = memo.entry(raw)
        assert memo.body(raw, entry, True, False) is not None
        assert memo.size <= memo.max_bytes
    assert 0 < len(memo) < 200
    assert memo.entry(raws[-1]) is memo.entry(raws[-1])  # the latest are kept
    big = encode_entry({**ANSWERS["text"], "choices": [{"index": 0, "message": {"role": "assistant",
                                                                              "content": "x" * 8000},
                                                        "finish_reason": "stop"}]})
    entry = memo.entry(big)  # too large to keep: decoded (and rendered) for each hit
    assert memo.body(big, entry, False, False) is not None
    assert memo.entry(big) is not entry and memo.size <= memo.max_bytes
