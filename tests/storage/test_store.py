"""The storage interface, the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from llmrelay.storage import StoreConflict, StoreError, open_store
from llmrelay.storage.migrations import LATEST


def test_migrations_are_applied_once(store, store_url):
    assert store.version() == LATEST
    assert store.migrate() == []
    other = open_store(store_url)
    try:
        assert other.migrate() == []
        assert other.version() == LATEST
    finally:
        other.close()


def test_concurrent_migrations_on_a_fresh_database(store_url):
    stores = [open_store(store_url) for _ in range(3)]
    results: list = []

    def go(s):
        try:
            results.append(s.migrate())
        except Exception as exc:  # noqa: BLE001 - reported below
            results.append(exc)

    threads = [threading.Thread(target=go, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert all(isinstance(r, list) for r in results), results
    # each migration applied exactly once (its own locked transaction: migrators may split them)
    assert sorted(v for r in results for v in r) == list(range(1, LATEST + 1))


def test_entity_round_trip_with_json_and_bool_columns(store):
    store.insert("key", {"token": "h1", "key_alias": "a", "models": ["gpt-4o", "openai/*"],
                         "metadata": {"x": 1}, "max_budget": 2.5, "rpm_limit": 7, "blocked": True})
    row = store.get("key", "h1")
    assert row["models"] == ["gpt-4o", "openai/*"] and row["metadata"] == {"x": 1}
    assert row["blocked"] is True and row["max_budget"] == 2.5 and row["rpm_limit"] == 7 and row["spend"] == 0
    assert store.get("key", "nope") is None
    with pytest.raises(StoreConflict):
        store.insert("key", {"token": "h1"})
    assert store.update("key", "h1", {"key_alias": "b", "blocked": False, "models": None})
    row = store.get("key", "h1")
    assert (row["key_alias"], row["blocked"], row["models"]) == ("b", False, None)
    assert not store.update("key", "missing", {"key_alias": "c"})
    assert store.update("key", "h1", {"key_name": "sk-...new"}, new_ident="h2")
    assert store.get("key", "h1") is None and store.get("key", "h2")["key_alias"] == "b"
    assert store.delete("key", ["h2", "zz"]) == ["h2"]
    assert store.get("key", "h2") is None


def test_find_and_count(store):
    for i in range(5):
        store.insert("key", {"token": f"t{i}", "team_id": "A" if i % 2 else "B"})
    assert [r["token"] for r in store.find("key", {"team_id": "A"})] == ["t1", "t3"]
    assert store.count("key") == 5 and store.count("key", {"team_id": "B"}) == 3
    assert len(store.find("key", limit=2, offset=4)) == 1


def test_change_feed_lists_every_write(store):
    start = store.last_change()
    store.insert("team", {"team_id": "T"})
    store.update("team", "T", {"team_alias": "x"})
    store.delete("team", ["T"])
    changes = store.changes(start, time.time() + 60)
    assert [(c["kind"], c["ident"]) for c in changes] == [("team", "T")] * 3
    assert len(store.changes(0, 0.0)) >= 3
    store.prune_changes(time.time() + 1)
    assert store.changes(0, 0.0) == []


def _spend(i: int, **kw):
    row = {"request_id": f"r{i}", "api_key": "k", "team_id": "T", "user_id": "U", "end_user": "E",
           "model_group": "m", "status": "success", "prompt_tokens": 3, "completion_tokens": 4,
           "spend": 0.5, "start_time": 1_700_000_000.0 + i, "end_time": 1_700_000_001.0 + i,
           "tags": ["a"], "metadata": {"n": i}}
    row.update(kw)
    return row


def test_write_spend_adds_to_every_owner_in_one_transaction(store):
    store.insert("key", {"token": "k", "team_id": "T", "user_id": "U"})
    store.insert("team", {"team_id": "T"})
    store.insert("user", {"user_id": "U"})
    store.write_spend([_spend(i) for i in range(4)] + [_spend(9, model_group="n", spend=0.25)])
    assert store.get("key", "k")["spend"] == pytest.approx(2.25)
    assert store.get("key", "k")["model_spend"] == {"m": 2.0, "n": 0.25}
    assert store.get("team", "T")["spend"] == pytest.approx(2.25)
    assert store.get("user", "U")["spend"] == pytest.approx(2.25)
    assert store.get("end_user", "E")["spend"] == pytest.approx(2.25)  # created on first spend
    logs = store.spend_logs({"api_key": "k"}, limit=2)
    assert [r["request_id"] for r in logs] == ["r9", "r3"] and logs[0]["tags"] == ["a"]
    assert logs[0]["total_tokens"] == 7 and logs[0]["day"] == "2023-11-14"
    report = store.spend_report("model")
    assert [(r["group"], r["requests"], r["spend"]) for r in report] == [("m", 4, 2.0), ("n", 1, 0.25)]
    assert store.spend_report("day")[0]["total_tokens"] == 35
    assert store.spend_report("key", start=1_700_000_003.0)[0]["requests"] == 2


@pytest.mark.parametrize("returning", [True, False], ids=["update-returning", "select"])
def test_a_keys_per_model_spend_adds_up_over_batches(store, returning):
    """A key's per-model spend is read where the batch adds to it (from the update of its spend
    with RETURNING, else a SELECT) and grows over batches; a key whose spend the batch does not
    charge (only its per-model spend) and a key that is gone are handled too."""
    if returning and not store.returning:
        pytest.skip("this SQLite has no RETURNING (before 3.35)")
    store.returning = returning
    store.insert("key", {"token": "k"})
    store.insert("key", {"token": "j", "model_spend": {"m": 1.0}})
    cols = ("request_id", "api_key", "model_group", "spend", "start_time", "end_time", "day")
    for n in range(3):
        rows = [(f"r{n}{i}", "k", "m" if i % 2 else "n", 0.5, 1_700_000_000.0 + n, 1_700_000_001.0 + n, "2023-11-14")
                for i in range(4)]
        store.write_spend_batch([(cols, rows)], {("key", "k"): 2.0, ("key", "gone"): 1.0},
                                {("k", "m"): 1.0, ("k", "n"): 1.0, ("j", "m"): 0.25, ("gone", "m"): 1.0})
    assert store.get("key", "k")["spend"] == pytest.approx(6.0)
    assert store.get("key", "k")["model_spend"] == pytest.approx({"m": 3.0, "n": 3.0})
    assert store.get("key", "j")["spend"] == 0.0  # (its spend was set since: per-model only)
    assert store.get("key", "j")["model_spend"] == pytest.approx({"m": 1.75})
    assert store.get("key", "gone") is None


def test_write_spend_of_a_batch_over_one_statements_rows(store):
    """A batch of more rows than one INSERT binds (999 values): every row written once, a
    request id seen twice (in the batch and again later) kept once."""
    store.insert("key", {"token": "k"})
    rows = [_spend(i, spend=0.01) for i in range(250)]
    store.write_spend(rows + [_spend(7, spend=0.01)])
    store.write_spend(rows[:3])
    logs = store.spend_logs({"api_key": "k"}, limit=1000)
    assert sorted(r["request_id"] for r in logs) == sorted(f"r{i}" for i in range(250))
    assert {r["metadata"]["n"] for r in logs} == set(range(250))
    assert store.spend_report("key")[0]["requests"] == 250


def test_write_spend_batch_rows_as_given_whatever_they_share(store):
    """Rows that share a key, model, status or day in some statements and not in others (SQLite
    binds a value a statement's rows share once), in batches of sizes around a statement's rows:
    each row is read back exactly as written."""
    columns = ("request_id", "api_key", "model_group", "model", "model_id", "call_type", "status",
               "prompt_tokens", "completion_tokens", "total_tokens", "spend", "start_time", "end_time", "day",
               "metadata", "team_id", "tags")
    rows = []
    for i in range(700):
        mixed = 200 <= i < 400  # (a stretch where every shareable column varies from row to row)
        rows.append((f"r{i:04d}", f"key{i % 3}" if mixed else "key0", "m", f"model{i % 2}" if mixed else "model",
                     None if i % 5 == 0 else "dep-1", "acompletion", "failure" if i % 7 == 0 else "success",
                     i, 2 * i, 3 * i, i / 1000, 1_700_000_000.0 + i, 1_700_000_001.0 + i,
                     "2023-11-15" if i >= 650 else "2023-11-14", f'{{"n":{i}}}', "T" if i % 11 else None,
                     '["a"]' if i < 500 else None))
    start = 0
    for size in (1, 2, 3, 60, 61, 124, 125, 130, 194):
        store.write_spend_batch([(columns, rows[start:start + size])], {}, {})
        start += size
    assert start == len(rows)
    logs = store.spend_logs(limit=1000)
    got = sorted((tuple(r[c] for c in columns) for r in logs), key=lambda r: r[0])
    expected = [tuple(["a"] if c == "tags" and v else {"n": i} if c == "metadata" else v
                      for c, v in zip(columns, row)) for i, row in enumerate(rows)]
    assert got == expected


def test_budget_reset_happens_once(store):
    store.insert("key", {"token": "k", "budget_duration": "1h", "budget_reset_at": 100.0, "spend": 3.0})
    due = store.due_resets("key", 150.0)
    assert [(d["ident"], d["budget_reset_at"]) for d in due] == [("k", 100.0)]
    assert store.reset_budget("key", "k", 100.0, 3700.0)
    assert not store.reset_budget("key", "k", 100.0, 3700.0)  # another process got there first
    row = store.get("key", "k")
    assert (row["spend"], row["budget_reset_at"]) == (0, 3700.0)
    assert store.due_resets("key", 150.0) == []


def test_an_unreachable_database_is_a_store_error(tmp_path):
    pytest.importorskip("psycopg")
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    s = open_store(f"postgresql://postgres@127.0.0.1:{port}/test")
    try:
        with pytest.raises(StoreError):
            s.get("key", "x")
    finally:
        s.close()


def test_unknown_scheme():
    with pytest.raises(StoreError, match="postgresql://"):
        open_store("mysql://x")


def test_db_upgrade_command(store_url):
    import subprocess
    import sys

    from proxy.harness import gateway_env

    def run():
        return subprocess.run([sys.executable, "-m", "llmrelay", "db", "upgrade", "--database-url", store_url],
                              env=gateway_env(), capture_output=True, text=True, timeout=60)

    first = run()
    assert first.returncode == 0, first.stderr
    assert f"schema version {LATEST}" in first.stdout and "applied 1" in first.stdout
    again = run()
    assert "nothing to apply" in again.stdout


def test_db_upgrade_reports_an_unreachable_database_in_one_line():
    import subprocess
    import sys

    from proxy.harness import gateway_env

    proc = subprocess.run([sys.executable, "-m", "llmrelay", "db", "upgrade", "--database-url",
                           "postgresql://u:hunter2secret@127.0.0.1:1/x"],
                          env=gateway_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "llmrelay: error:" in proc.stderr
    assert "hunter2secret" not in proc.stderr


def test_sqlite_runs_in_wal_mode(tmp_path):
    import sqlite3

    path = tmp_path / "llmrelay.db"
    s = open_store(f"sqlite:///{path}")
    try:
        s.migrate()
    finally:
        s.close()
    with sqlite3.connect(path) as conn:  # WAL is a property of the file: another process sees it
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_budget_tiers_fill_what_a_row_leaves_unset(store):
    store.insert("budget", {"budget_id": "tier", "rpm_limit": 3, "max_budget": 2.0, "budget_duration": "1d",
                            "model_max_budget": {"gpt-4o": 1}})
    store.insert("key", {"token": "t1", "budget_id": "tier", "rpm_limit": 9})
    store.insert("key", {"token": "t2"})
    own = store.get("key", "t1")
    assert own["rpm_limit"] == 9 and own["max_budget"] is None and "litellm_budget_table" not in own
    effective = store.get_effective("key", "t1")
    assert effective["rpm_limit"] == 9  # the key's own value wins
    assert effective["max_budget"] == 2.0 and effective["budget_duration"] == "1d"
    assert effective["model_max_budget"] == {"gpt-4o": 1}
    assert effective["litellm_budget_table"]["budget_id"] == "tier"
    assert "litellm_budget_table" not in store.get_effective("key", "t2")
    # an end user: its own tier, else the default one; one not seen yet is a new one of that tier
    store.insert("end_user", {"user_id": "u1"})
    assert store.get_effective("end_user", "u1", "tier")["rpm_limit"] == 3
    assert store.get_effective("end_user", "u1")["rpm_limit"] is None
    new = store.get_effective("end_user", "nobody", "tier")
    assert new["user_id"] == "nobody" and new["spend"] == 0.0 and new["max_budget"] == 2.0
    assert store.get_effective("end_user", "nobody") is None
    assert store.get_effective("end_user", "nobody", "no-such-tier") is None


def test_a_tiers_budget_period_starts_and_resets(store):
    store.insert("budget", {"budget_id": "daily", "budget_duration": "1d"})
    store.insert("key", {"token": "k", "budget_id": "daily", "spend": 1.0})
    store.insert("end_user", {"user_id": "e", "spend": 1.0})  # (the default tier's)
    store.insert("end_user", {"user_id": "own", "budget_id": "daily", "budget_duration": "1h",
                              "budget_reset_at": 50.0})
    assert [r["ident"] for r in store.unarmed_tier_periods("key")] == ["k"]
    assert {r["ident"]: r["budget_duration"] for r in store.unarmed_tier_periods("end_user", "daily")} == {"e": "1d"}
    assert store.unarmed_tier_periods("end_user") == []
    assert store.start_period("key", "k", 100.0) and not store.start_period("key", "k", 200.0)
    assert store.start_period("end_user", "e", 100.0)
    due = {r["ident"]: r["budget_duration"] for r in store.due_resets("key", 150.0)}
    assert due == {"k": "1d"}
    due = {r["ident"]: r["budget_duration"] for r in store.due_resets("end_user", 150.0, "daily")}
    assert due == {"e": "1d", "own": "1h"}  # (a row's own period wins)


def test_temp_budget_increase_until_its_expiry():
    from llmrelay.storage.base import temp_budget_increase

    at = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    assert temp_budget_increase({"temp_budget_increase": 5, "temp_budget_expiry": "2023-11-15"}, at) == 5.0
    assert temp_budget_increase({"temp_budget_increase": 5, "temp_budget_expiry": "2023-11-14T22:00:00Z"}, at) == 0.0
    assert temp_budget_increase({"temp_budget_increase": 5, "temp_budget_expiry": "2023-11-14T23:00:00+02:00"},
                                at) == 0.0
    assert temp_budget_increase({"temp_budget_increase": "5", "temp_budget_expiry": "2099-01-01"}, at) == 5.0
    for metadata in (None, {}, {"temp_budget_increase": 5}, {"temp_budget_increase": 5, "temp_budget_expiry": "x"},
                     {"temp_budget_increase": "lots", "temp_budget_expiry": "2099-01-01"}):
        assert temp_budget_increase(metadata, at) == 0.0


def test_write_spend_batch_rows_that_share_equal_values_not_the_same_objects(store):
    """A batch whose rows share every shareable column by value but not by object (rows read
    back, or made apart) is written with those columns bound once (the usual case, found with
    one comparison a row), and a batch where one row differs in one of them falls back to the
    column-by-column check: each row read back as written."""
    columns = ("request_id", "api_key", "model_group", "model", "model_id", "call_type", "status",
               "prompt_tokens", "completion_tokens", "total_tokens", "spend", "start_time", "end_time", "day",
               "metadata")
    def make(i: int, key: str = "key0") -> tuple:
        return (f"q{i:04d}", "".join(key), "m", "".join(["mod", "el"]), "dep-1", "acompletion", "success", i, i, 2 * i,
                i / 100, 1_700_000_000.0 + i, 1_700_000_001.0 + i, "2023-11-14", f'{{"n":{i}}}')
    first = [make(i) for i in range(40)]
    second = [make(i, "key1" if i == 77 else "key0") for i in range(40, 120)]
    store.write_spend_batch([(columns, first)], {}, {})
    store.write_spend_batch([(columns, second)], {}, {})
    logs = store.spend_logs(limit=1000)
    got = sorted((tuple(r[c] for c in columns) for r in logs), key=lambda r: r[0])
    expected = [tuple({"n": i} if c == "metadata" else v for c, v in zip(columns, row))
                for i, row in enumerate(first + second)]
    assert got == expected


def test_sqlite_reads_take_no_write_lock(tmp_path):
    """The change feed's poll and the budget sweep's reads run without ``BEGIN IMMEDIATE``: a
    second connection holding the write lock does not make them fail (with the lock asked for,
    they waited for it and failed with the busy timeout), and they see
    what was committed before them."""
    import sqlite3

    store = open_store(f"sqlite:///{tmp_path}/k.db")
    try:
        store.migrate()
        store.insert("key", {"token": "k", "budget_duration": "1d", "budget_reset_at": 1.0})
        other = sqlite3.connect(f"{tmp_path}/k.db", timeout=0.1, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another gateway mid-write
            store._conn.execute("PRAGMA busy_timeout=100")
            assert [c["ident"] for c in store.changes(0, 0.0)] == ["k"]
            assert store.last_change() >= 1
            assert [r["ident"] for r in store.due_resets("key", time.time())] == ["k"]
            assert store.due_model_resets(time.time()) == []
            with pytest.raises(StoreError):  # a write still waits for it, then fails as before
                store.add_spend("key", "k", 1.0)
        finally:
            other.execute("ROLLBACK")
            other.close()
    finally:
        store.close()


def test_sqlite_feed_mark_moves_with_every_change_feed_write(tmp_path):
    """The change feed's cheap "anything new?" check (read on the event loop, no thread hop):
    it moves when another connection (another gateway process) commits anything and when this
    store writes a change-feed row itself, and stays put for this store's own spend batches and
    reads, so an idle or busy gateway skips most of its 4 polls a second."""
    first = open_store(f"sqlite:///{tmp_path}/k.db")
    second = open_store(f"sqlite:///{tmp_path}/k.db")
    try:
        first.migrate()
        mark = first.feed_mark()
        assert mark is not None and first.feed_mark() == mark  # nothing happened
        first.insert("key", {"token": "k"})  # a change of its own (its cache knew)
        assert first.feed_mark() != mark
        mark = first.feed_mark()
        first.write_spend([_spend(0, api_key="k", team_id=None, user_id=None, end_user=None)])
        first.changes(0, 0.0)
        first.due_resets("key", time.time())
        assert first.feed_mark() == mark  # its own spend and reads: no change in the feed
        second.update("key", "k", {"blocked": True})  # another process's change
        assert first.feed_mark() != mark
        mark = first.feed_mark()
        second.write_spend([_spend(1, api_key="k", team_id=None, user_id=None, end_user=None)])
        assert first.feed_mark() != mark  # (any commit elsewhere: the feed is read, to be sure)
        with first._lock:  # the store's thread mid-write: not waited for
            assert first.feed_mark() is None
    finally:
        second.close()
        first.close()


def test_next_reset_due_is_the_earliest_period_end(store):
    assert store.next_reset_due() is None
    store.insert("key", {"token": "k", "budget_duration": "1h", "budget_reset_at": 500.0})
    store.insert("team", {"team_id": "T", "budget_duration": "1h", "budget_reset_at": 300.0})
    assert store.next_reset_due() == 300.0
    store.update("key", "k", {"model_reset_at": 200.0})
    assert store.next_reset_due() == 200.0
    store.insert("end_user", {"user_id": "E", "budget_duration": "1h", "budget_reset_at": 100.0})
    assert store.next_reset_due() == 100.0
    before = store.end_user_writes
    store.write_spend([_spend(0, api_key="k", team_id=None, user_id=None, end_user="F")])
    assert store.end_user_writes > before  # (a row the sweep may have to start a period of)
