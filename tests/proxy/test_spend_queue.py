"""The spend queue's periodic writer (proxy/spend.py), on SQLite and on a real PostgreSQL: a
flush writes the rows queued when it began, one batch per interval, and shutdown writes all."""

from __future__ import annotations

import asyncio
import time

import pytest

from dbs import database_for
from llmrelay.proxy.keys import KeyManager, hash_key, new_key
from llmrelay.storage import open_store
from llmrelay.storage.base import utc_day


def row(token: str, n: int) -> tuple:
    """A spend row of the request path's shape 0 (see spend.spend_row)."""
    now = time.time()
    return (f"{int(now * 1000):012x}test{n:016x}", token, "gpt-4o-mini", "openai/gpt-4o-mini", "dep-1",
            "acompletion", "success", 10, 5, 15, 0.25, now, now + 0.01, utc_day(now), '{"stream":false}')


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_flush_writes_what_was_queued_when_it_began(backend, tmp_path):
    with database_for(backend, str(tmp_path), "llmrelay_sq") as url:
        keys = KeyManager("sk-master", url=url, settings={"proxy_batch_write_at": 3600})
        await keys.start()  # (the periodic writer runs, asleep for the hour)
        try:
            store = keys.store
            token = hash_key(new_key())
            await store.run(store.insert, "key", {"token": token, "key_name": "sk-...test"})
            owners = (("key", token),)
            for n in range(5):
                keys.spend.add(0, row(token, n), owners)
            flush = asyncio.ensure_future(keys.spend.flush())
            while keys.spend._writing is None:
                await asyncio.sleep(0)
            for n in range(5, 8):  # requests that end while the batch is being written
                keys.spend.add(0, row(token, n), owners)
            await flush
            # the 3 later rows wait for the next interval (a flush that went on until the queue
            # was empty would write small batches back to back under a steady load)
            assert (keys.spend.written, keys.spend.queued) == (5, 3)
            assert len(await store.run(store.spend_logs, {"api_key": token})) == 5
            assert keys.spend.pending_cost("key", token) == pytest.approx(0.75)
            assert (await store.run(store.get, "key", token))["spend"] == pytest.approx(1.25)
        finally:
            await keys.stop()  # shutdown writes everything queued
        assert (keys.spend.written, keys.spend.queued) == (8, 0)
        again = open_store(url)
        try:
            assert len(again.spend_logs({"api_key": token})) == 8
            assert again.get("key", token)["spend"] == pytest.approx(2.0)
        finally:
            again.close()


async def test_a_full_queue_drops_new_rows_with_one_loud_line(tmp_path, caplog):
    """The queue is bounded: beyond ``max_rows`` a new row is dropped (never waited for), with a
    ``SPEND LOST`` line, once per 10 s however many are dropped; what was queued is still written."""
    import logging

    keys = KeyManager("sk-master", url=f"sqlite:///{tmp_path}/llmrelay.db", settings={"proxy_batch_write_at": 3600})
    await keys.start()
    try:
        keys.spend.max_rows = 3
        token = hash_key(new_key())
        with caplog.at_level(logging.ERROR, logger="llmrelay.proxy.spend"):
            for n in range(6):
                keys.spend.add(0, row(token, n), (("key", token),))
        assert (keys.spend.queued, keys.spend.dropped) == (3, 3)
        lost = [r.getMessage() for r in caplog.records if "SPEND LOST" in r.getMessage()]
        assert len(lost) == 1 and "full" in lost[0]
        await keys.spend.flush()
        assert keys.spend.written == 3
        assert len(await keys.store.run(keys.store.spend_logs, {"api_key": token})) == 3
    finally:
        await keys.stop()


async def test_admission_with_in_process_counters_takes_and_refuses_as_before(tmp_path):
    """A key's limits on the in-process counters are taken without a coroutine (``_take``): the
    same decision, headers and 429 (with Retry-After) as through the limiter's coroutine."""
    keys = KeyManager("sk-master", url=f"sqlite:///{tmp_path}/llmrelay.db", settings={"proxy_batch_write_at": 3600})
    await keys.start()
    try:
        key = new_key()
        await keys.store.run(keys.store.insert, "key", {"token": hash_key(key), "rpm_limit": 2})
        limited = await keys.store.run(keys.store.insert, "key", {"token": hash_key(key + "x")})
        assert limited is None
        for n in range(2):
            who = await keys.authenticate(key.encode())
            assert await keys.admit(who, "gpt-4o-mini", None) is None
            assert who.model == "gpt-4o-mini" and who.limits and who.decision.allowed
            assert (b"x-ratelimit-remaining-requests", b"%d" % (1 - n)) in keys.headers(who)
        who = await keys.authenticate(key.encode())
        refused = await keys.admit(who, "gpt-4o-mini", None)
        assert refused.status == 429 and refused.type == "rate_limit_error"
        assert refused.headers[0][0] == b"retry-after" and int(refused.headers[0][1]) >= 1
        assert who.model is None and who.limits is None
        free = await keys.authenticate((key + "x").encode())  # (no limits: nothing taken)
        assert await keys.admit(free, "gpt-4o-mini", None) is None
        assert free.model == "gpt-4o-mini" and free.limits is None and free.decision is None
    finally:
        await keys.stop()
