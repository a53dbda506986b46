"""A database read still in flight when what it reads changes (on SQLite and on a real
PostgreSQL): it must not bring the state from before the change back into memory (the key
manager's row cache, the Responses API state read through on a miss).

The read is held open by the store itself (:func:`dbs.held_store`: the row is read, then its
return waits for an :class:`asyncio.Event`), so the interleaving is the same on every run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from dbs import database_for, held_store
from llmrelay.proxy.keys import KeyManager, Principal, hash_key, new_key
from llmrelay.proxy.response_db import ResponseDB
from llmrelay.response_store import ResponseStore

MODEL = "gpt-4o-mini"


@pytest.fixture(params=["sqlite", "postgres"])
def keys(request: pytest.FixtureRequest, tmp_path) -> Iterator[KeyManager]:
    with database_for(request.param, str(tmp_path), "llmrelay_kc") as url:
        store = held_store(url)
        manager = KeyManager("sk-master", url=url)
        manager.store = store  # (not started: no maintenance loop, every step is the test's)
        try:
            yield manager
        finally:
            store.close()


async def authenticate(keys: KeyManager, raw: str) -> Principal:
    who = await keys.authenticate(raw.encode())
    assert isinstance(who, Principal), who.message
    return who


async def refused(keys: KeyManager, raw: str) -> str | None:
    """The refusal's type for a new request with ``raw`` (None: admitted)."""
    who = await keys.authenticate(raw.encode())
    if not isinstance(who, Principal):
        return who.type
    refusal = await keys.admit(who, MODEL, None)
    return refusal.type if refusal is not None else None


async def block_during_a_read(keys: KeyManager, told: str) -> tuple[str, asyncio.Future]:
    """A new key; a request whose read of it is held while the key is blocked and this manager
    is told (``told``: /key/update here, another instance's broadcast, or the change feed)."""
    store = keys.store
    raw = new_key()
    token = hash_key(raw)
    await store.run(store.insert, "key", {"token": token, "key_name": "sk-...test"})
    store.hold("get_effective", "key", token)
    first = asyncio.ensure_future(authenticate(keys, raw))  # reads the key, unblocked
    await store.read.wait()
    assert await store.run(store.update, "key", token, {"blocked": True})
    if told == "invalidate":
        keys.invalidate("key", token)
    elif told == "broadcast":
        keys.changed_elsewhere("key", token)
    else:
        await keys._poll(store)
    return raw, first


TOLD = pytest.mark.parametrize("told", ["invalidate", "broadcast", "change_feed"])


@TOLD
async def test_a_read_in_flight_during_a_change_does_not_cache_the_old_row(keys, told):
    raw, first = await block_during_a_read(keys, told)
    keys.store.release.set()
    await first  # (began before the change: either answer is right for it)
    assert keys.cached("key", hash_key(raw)) in (None, await keys.store.run(keys.store.get, "key", hash_key(raw)))
    assert await refused(keys, raw) == "auth_error"


@TOLD
async def test_a_request_after_a_change_does_not_wait_for_a_read_from_before_it(keys, told):
    raw, first = await block_during_a_read(keys, told)
    later = asyncio.ensure_future(refused(keys, raw))
    keys.store.release.set()
    await first
    assert await later == "auth_error"


async def test_a_background_refresh_during_a_change_does_not_cache_the_old_row(keys):
    store = keys.store
    raw = new_key()
    await store.run(store.insert, "team", {"team_id": "team-race"})
    await store.run(store.insert, "key", {"token": hash_key(raw), "key_name": "sk-...test", "team_id": "team-race"})
    assert await refused(keys, raw) is None  # the key and its team are cached

    store.hold("get_effective", "team", "team-race")
    keys._to_refresh.add(("team", "team-race"))  # its periodic re-read (the maintenance loop's step)
    refresh = asyncio.ensure_future(keys._refresh_stale(store))
    await store.read.wait()
    assert await store.run(store.update, "team", "team-race", {"blocked": True})  # /team/block
    keys.invalidate("team", "team-race")
    store.release.set()
    await refresh

    who = await keys.authenticate(raw.encode())
    refusal = await keys.admit(who, MODEL, None)
    assert (refusal.status, refusal.type) == (401, "auth_error")  # LiteLLM's
    assert refusal.message.startswith("Authentication Error, Team=team-race is blocked.")


async def test_a_response_deleted_while_it_is_being_read_stays_deleted(keys):
    store = keys.store
    memory = ResponseStore()
    db = ResponseDB(keys, memory)
    conversation = [{"role": "user", "content": "hi"}]
    await store.run(store.write_responses, [("put", "resp_race", conversation, {"id": "resp_race"}, time.time() + 600)])
    store.hold("read_response", "resp_race")
    first = asyncio.ensure_future(db.load("resp_race"))  # GET /v1/responses/resp_race: a miss, read
    await store.read.wait()

    await db.load("resp_race")  # DELETE /v1/responses/resp_race: its own read, then the delete
    assert memory.get("resp_race") == conversation and memory.delete("resp_race")
    store.release.set()
    await first
    assert memory.get("resp_race") is None


async def test_a_refresh_that_fails_is_tried_again(keys):
    """A cached key is re-read in the background every REFRESH_AFTER seconds (its spend as other
    processes wrote it); a re-read the database failed is queued again, not dropped (the row
    stays marked as being re-read, so nothing else would ever queue it again)."""
    from llmrelay.proxy.keys import REFRESH_AFTER
    from llmrelay.storage import StoreError, open_store

    store = keys.store
    raw = new_key()
    token = hash_key(raw)
    await store.run(store.insert, "key", {"token": token, "key_name": "sk-...test"})
    await authenticate(keys, raw)
    keys._cache["key"][token].fetched -= REFRESH_AFTER + 1
    await authenticate(keys, raw)  # (queues the re-read)
    assert keys._cache["key"][token].stale
    store.close()  # the database fails the re-read
    with pytest.raises(StoreError):
        await keys._refresh_stale(store)
    back = open_store(keys.url)
    try:
        assert await back.run(back.update, "key", token, {"spend": 5.0})
        await keys._refresh_stale(back)
        assert keys.cached("key", token)["spend"] == 5.0
    finally:
        back.close()


async def test_a_first_read_during_an_unrelated_change_is_cached_by_a_later_read(keys):
    """A key's first read that an invalidation overtook (here of another key: one generation
    counter for all rows) is not cached, but read again in the background and cached then, so a
    database that goes down afterwards does not refuse a key that was just used."""
    store = keys.store
    raw = new_key()
    token = hash_key(raw)
    await store.run(store.insert, "key", {"token": token, "key_name": "sk-...test"})
    store.hold("get_effective", "key", token)
    first = asyncio.ensure_future(authenticate(keys, raw))
    await store.read.wait()
    keys.invalidate("key", hash_key(new_key()))  # an unrelated change while the read is in flight
    store.release.set()
    await first
    assert keys.cached("key", token) is None  # (the read may hold the row from before the change)
    await keys._refresh_stale(store)
    assert keys.cached("key", token)["token"] == token


@pytest.mark.parametrize("kind", ["team", "end_user"])
async def test_a_budget_row_whose_first_read_was_overtaken_is_still_charged_and_alerts(keys, kind):
    """A team's or end user's first read that an unrelated change overtook is not cached: the
    request it admitted is still charged to that row, and crosses its soft budget (the alert
    once, as for a cached row), instead of the charge going nowhere."""
    store = keys.store
    raw = new_key()
    crossed: list[tuple[str, dict]] = []
    keys.soft_budget_listeners.append(lambda k, labels: crossed.append((k, labels)))
    ident = "soft-" + kind
    if kind == "team":
        await store.run(store.insert, "team", {"team_id": ident, "soft_budget": 0.5})
        await store.run(store.insert, "key", {"token": hash_key(raw), "key_name": "sk-...test", "team_id": ident})
    else:
        await store.run(store.insert, "end_user", {"user_id": ident, "soft_budget": 0.5})
        await store.run(store.insert, "key", {"token": hash_key(raw), "key_name": "sk-...test"})
    who = await authenticate(keys, raw)
    store.hold("get_effective", kind, ident)
    admitted = asyncio.ensure_future(keys.admit(who, MODEL, ident if kind == "end_user" else None))
    await store.read.wait()
    keys.invalidate("key", hash_key(new_key()))  # an unrelated change while the read is in flight
    store.release.set()
    assert await admitted is None
    assert keys.cached(kind, ident) is None  # (what this test is about: the row was not kept)

    keys._charge(who, 1.0)
    await asyncio.gather(*keys._alerts)
    assert [k for k, _ in crossed] == [kind]
    assert (await store.run(store.get, kind, ident))["soft_budget_cooldown"]


@pytest.mark.parametrize("how", ["refresh", "invalidate"])
async def test_a_key_re_read_while_a_request_is_in_flight_keeps_that_request_s_charge(keys, how):
    """A cached key re-read in the background (its periodic refresh, or the change feed's echo of
    its own creation) while one of its requests is in flight: the request is charged when it ends,
    after the re-read replaced the cached row. The charge must land on the row now cached, not on
    the one the request was admitted with (else the budget check and the budget gauges undercount
    until the next re-read, after the key cache's TTL). The same after an invalidation."""
    store = keys.store
    raw = new_key()
    token = hash_key(raw)
    await store.run(store.insert, "key", {"token": token, "key_name": "sk-...test", "max_budget": 1.0})
    who = await authenticate(keys, raw)
    assert await keys.admit(who, MODEL, None) is None
    if how == "refresh":
        keys._to_refresh.add(("key", token))
        await keys._refresh_stale(store)
    else:  # /key/update of another field: forgotten, then read again by the next request
        keys.invalidate("key", token)
        await authenticate(keys, raw)
    assert keys._cache["key"][token] is not who.entry  # (the row the request holds was replaced)

    keys._charge(who, 0.25)
    assert keys.cached("key", token)["spend"] == 0.25
    assert keys.cached("key", token)["model_spend"] == {MODEL: 0.25}
