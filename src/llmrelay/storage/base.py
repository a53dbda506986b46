"""The storage interface every backend implements, with the SQL they share.

A backend only opens connections and runs transactions (:meth:`Store._transaction`); the
queries live here, written once with ``?`` placeholders in the SQL both SQLite and PostgreSQL
speak. Every method is synchronous and thread-safe: the gateway calls them through
:meth:`Store.run`, on the store's own threads, so the event loop never waits on a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import operator
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, Sequence, TypeVar

import orjson

from .migrations import MIGRATIONS

__all__ = ["Store", "StoreError", "StoreConflict", "ENTITIES", "SPEND_COLUMNS", "SPEND_REPORT_GROUPS", "TIER_FIELDS",
           "member_id"]

T = TypeVar("T")

_JSON = "json"
_BOOL = "bool"
_BUDGET_COLUMNS = {
    "max_budget": None, "soft_budget": None, "spend": None, "budget_duration": None,
    "budget_reset_at": None, "rpm_limit": None, "tpm_limit": None, "max_parallel_requests": None,
    "models": _JSON, "metadata": _JSON, "tags": _JSON, "blocked": _BOOL, "created_at": None,
    "updated_at": None, "soft_budget_cooldown": _BOOL,
}

#: kind → (table, id column, {column: None | "json" | "bool"}).
ENTITIES: dict[str, tuple[str, str, dict[str, str | None]]] = {
    "key": ("llmrelay_keys", "token", {
        "token": None, "key_name": None, "key_alias": None, "team_id": None, "user_id": None,
        "expires": None, "model_max_budget": _JSON, "model_rpm_limit": _JSON,
        "model_tpm_limit": _JSON, "model_spend": _JSON, "model_budget_reset_at": _JSON,
        "model_reset_at": None, "budget_id": None, **_BUDGET_COLUMNS}),
    "team": ("llmrelay_teams", "team_id", {
        "team_id": None, "team_alias": None, "members": _JSON, "model_rpm_limit": _JSON, "model_tpm_limit": _JSON,
        **_BUDGET_COLUMNS}),
    "user": ("llmrelay_users", "user_id", {
        "user_id": None, "user_email": None, "user_role": None, "teams": _JSON, **_BUDGET_COLUMNS}),
    "end_user": ("llmrelay_end_users", "user_id", {"user_id": None, "alias": None, "budget_id": None,
                                                   **_BUDGET_COLUMNS}),
    # a user's budget in a team (LiteLLM's ``max_budget_in_team``): id :func:`member_id`
    "team_member": ("llmrelay_team_members", "member_id", {
        "member_id": None, "team_id": None, "user_id": None, **_BUDGET_COLUMNS}),
    # LiteLLM's budget tiers (``/budget/new``): limits that keys and end users with its
    # ``budget_id`` take for every one they leave unset (:meth:`Store.get_effective`)
    "budget": ("llmrelay_budgets", "budget_id", {
        "budget_id": None, "max_budget": None, "soft_budget": None, "budget_duration": None, "rpm_limit": None,
        "tpm_limit": None, "max_parallel_requests": None, "model_max_budget": _JSON, "created_at": None,
        "updated_at": None}),
    # models added through the management API (LiteLLM's ``/model/new`` with ``store_model_in_db``),
    # ``litellm_params`` as given (``os.environ/NAME`` values resolved when a gateway loads them)
    "model": ("llmrelay_models", "model_id", {
        "model_id": None, "model_name": None, "litellm_params": _JSON, "model_info": _JSON, "created_at": None,
        "updated_at": None}),
}

#: What a budget tier gives the keys and end users linked to it (those they leave unset).
TIER_FIELDS = ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests",
               "model_max_budget")

#: The spend table's columns, in the order of the rows :meth:`Store.write_spend_batch` takes.
SPEND_COLUMNS = (
    "request_id", "api_key", "team_id", "user_id", "end_user", "model_group", "model", "model_id",
    "call_type", "status", "prompt_tokens", "completion_tokens", "total_tokens", "spend",
    "start_time", "end_time", "day", "tags", "metadata", "messages", "response",
)
_SPEND_JSON = frozenset({"tags", "metadata"})
_SPEND_JSON_AT = [i for i, c in enumerate(SPEND_COLUMNS) if c in _SPEND_JSON]
#: A spend row's columns in one C call (a row with them all).
_SPEND_VALUES = operator.itemgetter(*SPEND_COLUMNS)
#: (owner kind, index of its id column) of what a row's cost is added to.
_SPEND_OWNERS = tuple((kind, SPEND_COLUMNS.index(col)) for kind, col in (
    ("key", "api_key"), ("team", "team_id"), ("user", "user_id"), ("end_user", "end_user")))
_DAY, _START, _TOTAL, _PROMPT, _COMPLETION, _COST, _KEY, _GROUP = map(
    SPEND_COLUMNS.index, ("day", "start_time", "total_tokens", "prompt_tokens", "completion_tokens", "spend",
                          "api_key", "model_group"))


#: Values bound by one INSERT at most (SQLite's limit before 3.32 is 999, PostgreSQL's 65535).
_MAX_BOUND = 999


@functools.lru_cache(maxsize=64)
def _insert_spend(columns: tuple[str, ...], count: int = 1) -> str:
    """The INSERT of ``count`` spend rows with these columns (the others NULL: binding a None
    costs sqlite3 an adapter lookup, ~1k instructions a value)."""
    row = f"({', '.join('?' * len(columns))})"
    return (f"INSERT INTO llmrelay_spend_logs ({', '.join(columns)}) "
            f"VALUES {', '.join([row] * count)} ON CONFLICT (request_id) DO NOTHING")


def _insert_spend_rows(cur: Any, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (each in the order of ``columns``) with as few statements as the bound-value
    limit allows. Not ``executemany``: SQLite's runs one statement per row and its module lets
    go of the GIL around each, so a batch of 500 rows was 500 GIL hand-offs with the event loop
    (each a futex wake and a wait of up to the switch interval), which cost the gateway more CPU
    than the rows' own work."""
    per = max(1, _MAX_BOUND // len(columns))
    for start in range(0, len(rows), per):
        part = rows[start:start + per]
        cur.execute(_insert_spend(columns, len(part)), [value for row in part for value in row])


#: Spend columns whose value the rows of a batch often share, in groups bound once per statement
#: where the rows share every column of the group (``call_type`` always; the request's outcome
#: and day; its key's; its model's). Whole groups, not single columns: a statement's shape is
#: then one of a few, each prepared once and kept in the connection's statement cache.
_SHARED_GROUPS = (("call_type", "status", "day"), ("api_key", "team_id", "user_id", "tags", "end_user"),
                  ("model_group", "model", "model_id"))


#: A batch of fewer rows than this is written as plain rows (:func:`_insert_spend_rows`), and a
#: larger batch's rest of fewer rows in one statement of its row count (at most this many shapes
#: more per column set); a larger rest in statements of a power of two of rows.
_SMALL = 16


@functools.lru_cache(maxsize=256)
def _insert_spend_shared(columns: tuple[str, ...], shared: tuple[int, ...], count: int) -> str:
    """The INSERT of ``count`` spend rows with these columns where those at ``shared`` (indexes
    into ``columns``) have one value for all rows, bound once as the first numbered parameters
    (``?1``…), the others one per row after them."""
    numbers = [0] * len(columns)
    for n, i in enumerate(shared, 1):
        numbers[i] = n
    varying = [i for i in range(len(columns)) if i not in shared]
    rows = []
    next_number = len(shared) + 1
    for _ in range(count):
        for i in varying:
            numbers[i] = next_number
            next_number += 1
        rows.append(f"({', '.join(f'?{n}' for n in numbers)})")
    return (f"INSERT INTO llmrelay_spend_logs ({', '.join(columns)}) "
            f"VALUES {', '.join(rows)} ON CONFLICT (request_id) DO NOTHING")


@functools.lru_cache(maxsize=64)
def _shared_groups_at(columns: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    """The indexes into ``columns`` of each of :data:`_SHARED_GROUPS`' columns it has."""
    groups = (tuple(columns.index(col) for col in group if col in columns) for group in _SHARED_GROUPS)
    return tuple(group for group in groups if group)


@functools.lru_cache(maxsize=64)
def _shareable_at(columns: tuple[str, ...]) -> tuple[tuple[int, ...], Callable[[Sequence[Any]], tuple]]:
    """The indexes into ``columns`` of every column of :data:`_SHARED_GROUPS` it has (sorted), and
    an ``itemgetter`` of them (a tuple whatever their number)."""
    every = tuple(sorted(i for group in _shared_groups_at(columns) for i in group))
    getter = operator.itemgetter(*every) if len(every) > 1 else (lambda row, at=every: tuple(row[i] for i in at))
    return every, getter


def _insert_spend_rows_shared(cur: Any, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
    """:func:`_insert_spend_rows` with numbered parameters (SQLite's ``?NNN``): the values of a
    group of :data:`_SHARED_GROUPS` that every row of a statement has (its key's, its model's…)
    are bound once, not once per row (a bound text costs SQLite ~0.8k instructions: a lock, a
    copy, an allocation). A statement holds as many rows as it can bind, a power of two of them
    or a rest of fewer than :data:`_SMALL`, so each shape is prepared once, then taken from the
    connection's statement cache (a row count of its own for the last statement of every batch
    was a new statement to compile per batch). A batch of fewer than :data:`_SMALL` rows (a
    quiet gateway's, or streams') is written as plain rows: one statement, nothing to find."""
    if len(rows) < _SMALL:  # (a few rows: the plain statement costs less than finding what they share)
        _insert_spend_rows(cur, columns, rows)
        return
    groups = _shared_groups_at(columns)
    every, heads_of = _shareable_at(columns)
    width = len(columns)
    shareable = len(every)
    most = (_MAX_BOUND - shareable) // max(1, width - shareable)  # (rows a statement holds at most)
    start, left = 0, len(rows)
    while left:
        part = rows[start:start + most]
        first = part[0]
        n = len(part)
        # (list.count and tuple comparison compare by identity first: the rows of one key share
        # its objects) — the usual case first: one key, one model, one outcome and day, every
        # shareable column shared, found with one C call a row instead of a transposed batch
        heads = list(map(heads_of, part))
        if heads.count(heads[0]) == n:
            shared = every
        else:
            by_column = tuple(zip(*part))
            shared = tuple(sorted(i for group in groups if all(by_column[i].count(first[i]) == n for i in group)
                                  for i in group))
        varying = [i for i in range(width) if i not in shared]
        per = (_MAX_BOUND - len(shared)) // len(varying)
        # (count <= len(part): most >= per; a small rest in one statement of its own count — one
        # statement of up to _SMALL rows costs less than two or three of a power of two)
        count = per if left >= per else left if left < _SMALL else 1 << (left.bit_length() - 1)
        if len(part) > count:
            part = part[:count]  # (what all of them shared, these share)
        values = [first[i] for i in shared]
        values += itertools.chain.from_iterable(map(operator.itemgetter(*varying), part)) if len(varying) > 1 \
            else [row[varying[0]] for row in part]
        cur.execute(_insert_spend_shared(columns, shared, count), values)
        start += count
        left -= count


#: What the spend report can group by (the column, or the row's UTC day).
SPEND_REPORT_GROUPS = {"key": "api_key", "api_key": "api_key", "team": "team_id", "team_id": "team_id",
                       "user": "user_id", "user_id": "user_id", "end_user": "end_user",
                       "customer": "end_user", "model": "model_group", "model_group": "model_group",
                       "day": "day"}
_SPEND_FILTERS = ("request_id", "api_key", "team_id", "user_id", "end_user", "model_group", "status")


class StoreError(Exception):
    """The database could not be reached or refused the operation."""


class StoreConflict(StoreError):
    """A row with that id already exists."""


def _encode(kind: str | None, value: Any) -> Any:
    if value is None:
        return None
    if kind == _JSON:
        return orjson.dumps(value).decode()
    if kind == _BOOL:
        return 1 if value else 0
    return value


def _decode(kind: str | None, value: Any) -> Any:
    if value is None:
        return None
    if kind == _JSON:
        return orjson.loads(value)
    if kind == _BOOL:
        return bool(value)
    return value


def member_id(team_id: str, user_id: str) -> str:
    """The id of a user's membership row in a team (``team_member``)."""
    return orjson.dumps([team_id, user_id]).decode()


def temp_budget_increase(metadata: Any, now: float) -> float:
    """A key's temporary budget increase (LiteLLM's ``temp_budget_increase`` until
    ``temp_budget_expiry``, an ISO-8601 date or time, kept in its metadata) at ``now``; 0 when
    it has none or it has expired."""
    if not isinstance(metadata, dict) or metadata.get("temp_budget_increase") is None:
        return 0.0
    try:
        until = datetime.fromisoformat(str(metadata.get("temp_budget_expiry")).replace("Z", "+00:00"))
        if until.tzinfo is None:
            until = until.replace(tzinfo=timezone.utc)
        increase = float(metadata["temp_budget_increase"])
    except (TypeError, ValueError):
        return 0.0
    return increase if now < until.timestamp() and math.isfinite(increase) else 0.0


def utc_day(ts: float) -> str:
    """``YYYY-MM-DD`` of a Unix time, in UTC."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


class Store:
    """A database holding keys, teams, users, end users, spend logs and the change feed.

    Subclasses implement :meth:`_transaction` (a context manager yielding a cursor whose
    ``execute``/``executemany`` take ``?`` SQL and whose ``fetchall`` returns dicts),
    :meth:`_migration_lock`, :attr:`serial` and :meth:`close`.
    """

    #: The auto-increment primary key column type.
    serial = "INTEGER PRIMARY KEY"
    #: Whether the backend's SQL takes numbered parameters (``?NNN``): spend rows then bind a
    #: value the rows of a statement share once (:func:`_insert_spend_rows_shared`).
    numbered_params = False
    #: Whether ``UPDATE … RETURNING`` is understood (PostgreSQL; SQLite from 3.35): a spend
    #: batch then reads a key's per-model spend from the update of its spend, not with a SELECT.
    returning = True
    #: A short description for logs (never a password).
    describe = "database"
    #: Threads that run the calls made through :meth:`run`.
    threads = 1

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        #: Change-feed rows this store wrote (part of :meth:`feed_mark`).
        self.feed_writes = 0
        #: Spend batches of this store that charged an end user (may have made its row, whose
        #: budget period the reset sweep then starts: see :meth:`next_reset_due`).
        self.end_user_writes = 0

    # ------------------------------------------------------------------ plumbing
    def _transaction(self) -> contextlib.AbstractContextManager[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _migration_lock(self, cur: Any) -> None:
        """Serialise concurrent migrations (two gateways starting on one database)."""

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store method on the store's threads (never on the event loop)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="llmrelay-db")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _read(self) -> contextlib.AbstractContextManager[Any]:
        """A cursor for one read-only statement (a backend may run it without a transaction of
        its own around it: one statement reads one snapshot either way); a transaction here."""
        return self._transaction()

    def _cursor(self) -> contextlib.AbstractContextManager[Any]:
        """A transaction's cursor: :meth:`_transaction` itself (no generator of its own around
        it: one frame less to enter and leave per transaction)."""
        return self._transaction()

    # ------------------------------------------------------------------ schema
    def version(self) -> int:
        """The schema version applied (0 for an empty database)."""
        with self._cursor() as cur:
            return self._version(cur)

    def _version(self, cur: Any) -> int:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS llmrelay_schema_migrations "
            "(version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        cur.execute("SELECT MAX(version) AS v FROM llmrelay_schema_migrations")
        row = cur.fetchall()
        return int(row[0]["v"] or 0) if row else 0

    def migrate(self) -> list[int]:
        """Apply every migration not applied yet, each in its own transaction; the versions applied."""
        applied: list[int] = []
        for number, name, statements in MIGRATIONS:
            with self._cursor() as cur:
                self._migration_lock(cur)
                if self._version(cur) >= number:
                    continue
                for statement in statements:
                    cur.execute(statement.replace("{serial}", self.serial))
                cur.execute(
                    "INSERT INTO llmrelay_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (number, name, time.time()),
                )
                applied.append(number)
        return applied

    # ------------------------------------------------------------------ entities
    def get(self, kind: str, ident: str) -> dict[str, Any] | None:
        """One key (by its hash), team, user or end user; None if there is none."""
        table, id_col, columns = ENTITIES[kind]
        with self._cursor() as cur:
            cur.execute(f"SELECT * FROM {table} WHERE {id_col} = ?", (ident,))
            rows = cur.fetchall()
        return _row(columns, rows[0]) if rows else None

    def get_effective(self, kind: str, ident: str, default_tier: str | None = None) -> dict[str, Any] | None:
        """A row as it is enforced: a key or end user linked to a budget tier (its
        ``budget_id``; an end user without one: ``default_tier``, LiteLLM's
        ``max_end_user_budget_id``) with each of :data:`TIER_FIELDS` it leaves unset taken from
        the tier, and ``litellm_budget_table`` the tier itself. An end user with no row yet but a
        default tier is answered as a new one of that tier (spend 0). A key's ``max_budget``
        includes its temporary increase until that expires (:func:`temp_budget_increase`)."""
        table, id_col, columns = ENTITIES[kind]
        tier = None
        with self._cursor() as cur:
            cur.execute(f"SELECT * FROM {table} WHERE {id_col} = ?", (ident,))
            rows = cur.fetchall()
            row = _row(columns, rows[0]) if rows else None
            tier_id = row.get("budget_id") if row is not None else None
            if tier_id is None and kind == "end_user":
                tier_id = default_tier
            if tier_id is not None and kind in ("key", "end_user"):
                tier_table, tier_col, tier_columns = ENTITIES["budget"]
                cur.execute(f"SELECT * FROM {tier_table} WHERE {tier_col} = ?", (tier_id,))
                found = cur.fetchall()
                tier = _row(tier_columns, found[0]) if found else None
        if tier is not None:
            if row is None:
                row = {"user_id": ident, "spend": 0.0, "blocked": False, "budget_reset_at": None}
            for name in TIER_FIELDS:
                if row.get(name) in (None, {}) and tier.get(name) is not None:
                    row[name] = tier[name]
            row["litellm_budget_table"] = tier
        if kind == "key" and row is not None and row.get("max_budget") is not None:
            row["max_budget"] += temp_budget_increase(row.get("metadata"), time.time())
        return row

    def find(self, kind: str, where: dict[str, Any] | None = None, limit: int = 100, offset: int = 0,
             newest_first: bool = False) -> list[dict[str, Any]]:
        """Rows whose columns equal ``where``'s values, oldest first (or newest first)."""
        table, id_col, columns = ENTITIES[kind]
        clauses, params = _where(columns, where or {})
        order = "DESC" if newest_first else "ASC"
        with self._cursor() as cur:
            cur.execute(
                f"SELECT * FROM {table}{clauses} ORDER BY created_at {order}, {id_col} {order} LIMIT ? OFFSET ?",
                (*params, int(limit), int(offset)),
            )
            return [_row(columns, r) for r in cur.fetchall()]

    def count(self, kind: str, where: dict[str, Any] | None = None) -> int:
        table, _, columns = ENTITIES[kind]
        clauses, params = _where(columns, where or {})
        with self._cursor() as cur:
            cur.execute(f"SELECT COUNT(*) AS n FROM {table}{clauses}", params)
            return int(cur.fetchall()[0]["n"])

    def insert(self, kind: str, row: dict[str, Any]) -> None:
        """Add a row; :class:`StoreConflict` if its id exists."""
        table, id_col, columns = ENTITIES[kind]
        now = time.time()
        row = {"created_at": now, "updated_at": now, "spend": 0.0, "blocked": False, **row}
        names = [c for c in row if c in columns]
        with self._cursor() as cur:
            cur.execute(f"SELECT 1 AS x FROM {table} WHERE {id_col} = ?", (row[id_col],))
            if cur.fetchall():
                raise StoreConflict(f"{kind} {row[id_col]!r} already exists")
            cur.execute(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                tuple(_encode(columns[c], row[c]) for c in names),
            )
            self._changed(cur, kind, row[id_col], now)

    def update(self, kind: str, ident: str, fields: dict[str, Any], new_ident: str | None = None) -> bool:
        """Set some columns of a row (and with ``new_ident`` give it a new id: a regenerated
        key), in one transaction; False if there is no such row."""
        table, id_col, columns = ENTITIES[kind]
        now = time.time()
        fields = {c: v for c, v in {**fields, "updated_at": now}.items() if c in columns and c != id_col}
        values = [_encode(columns[c], v) for c, v in fields.items()]
        sets = [f"{c} = ?" for c in fields]
        if new_ident is not None:
            sets.insert(0, f"{id_col} = ?")
            values.insert(0, new_ident)
        with self._cursor() as cur:
            cur.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE {id_col} = ?", (*values, ident))
            if cur.rowcount == 0:
                return False
            self._changed(cur, kind, ident, now)
            if new_ident is not None:
                self._changed(cur, kind, new_ident, now)
        return True

    def delete(self, kind: str, idents: Sequence[str]) -> list[str]:
        """Delete rows; the ids that existed."""
        table, id_col, _ = ENTITIES[kind]
        now = time.time()
        gone: list[str] = []
        with self._cursor() as cur:
            for ident in idents:
                cur.execute(f"DELETE FROM {table} WHERE {id_col} = ?", (ident,))
                if cur.rowcount:
                    gone.append(ident)
                    self._changed(cur, kind, ident, now)
        return gone

    # ------------------------------------------------------------------ change feed
    def _changed(self, cur: Any, kind: str, ident: str, now: float) -> None:
        cur.execute("INSERT INTO llmrelay_changes (kind, ident, at) VALUES (?, ?, ?)", (kind, ident, now))
        self.feed_writes += 1

    def feed_mark(self) -> Any:
        """A cheap token, called on the event loop (no thread hop, never waits): equal to an
        earlier one only if nothing was written to the change feed in between, by this store
        or any other process; None when it cannot tell at once (then read :meth:`changes`).
        This backend cannot tell."""
        return None

    def changes(self, after_seq: int, since: float) -> list[dict[str, Any]]:
        """Change-feed rows with ``seq > after_seq`` or written at/after ``since`` (a sequence
        number can commit late under concurrent writers, so callers re-read a time window)."""
        with self._read() as cur:
            cur.execute(
                "SELECT seq, kind, ident, at FROM llmrelay_changes WHERE seq > ? OR at >= ? ORDER BY seq",
                (int(after_seq), float(since)),
            )
            return cur.fetchall()

    def last_change(self) -> int:
        with self._read() as cur:
            cur.execute("SELECT MAX(seq) AS s FROM llmrelay_changes")
            return int(cur.fetchall()[0]["s"] or 0)

    def prune_changes(self, before: float) -> None:
        with self._cursor() as cur:
            cur.execute("DELETE FROM llmrelay_changes WHERE at < ?", (before,))

    # ------------------------------------------------------------------ budgets
    def _tier_duration(self, kind: str) -> tuple[str, str]:
        """(the SQL of a row's budget period, the joins it needs): a key or end user without a
        period of its own has its budget tier's (an end user without a tier: the default tier's,
        bound as the first parameter)."""
        if kind == "key":
            return ("COALESCE(t.budget_duration, b.budget_duration)",
                    " LEFT JOIN llmrelay_budgets b ON b.budget_id = t.budget_id")
        if kind == "end_user":
            return ("COALESCE(t.budget_duration, b.budget_duration, d.budget_duration)",
                    " LEFT JOIN llmrelay_budgets b ON b.budget_id = t.budget_id"
                    " LEFT JOIN llmrelay_budgets d ON t.budget_id IS NULL AND d.budget_id = ?")
        return "t.budget_duration", ""

    def _rows_with_period(self, kind: str, default_tier: str | None, where: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of ``kind`` matching ``where`` (``{period}``: the SQL of a row's budget period)
        as (ident, budget_duration — the tier's for a row without its own — budget_reset_at)."""
        table, id_col, _ = ENTITIES[kind]
        duration, join = self._tier_duration(kind)
        bound = (default_tier,) if kind == "end_user" else ()
        with self._read() as cur:
            cur.execute(
                f"SELECT t.{id_col} AS ident, {duration} AS budget_duration, t.budget_reset_at AS budget_reset_at "
                f"FROM {table} t{join} WHERE {where.format(period=duration)}",
                (*bound, *params),
            )
            return cur.fetchall()

    def due_resets(self, kind: str, now: float, default_tier: str | None = None) -> list[dict[str, Any]]:
        """Rows whose budget period ended (id, budget_duration, budget_reset_at); the period
        of a key or end user without one of its own is its budget tier's (``default_tier``: an
        end user's without a ``budget_id``)."""
        return self._rows_with_period(kind, default_tier,
                                      "t.budget_reset_at IS NOT NULL AND t.budget_reset_at <= ?", now)

    def unarmed_tier_periods(self, kind: str, default_tier: str | None = None) -> list[dict[str, Any]]:
        """Keys or end users whose budget period comes from their tier but has not started
        (no ``budget_reset_at``: linked before the tier had a period, or an end user first seen
        by its spend): id and the tier's budget_duration."""
        if kind not in ("key", "end_user"):
            return []
        return self._rows_with_period(
            kind, default_tier, "t.budget_reset_at IS NULL AND t.budget_duration IS NULL AND {period} IS NOT NULL")

    def next_reset_due(self) -> float | None:
        """The earliest ``budget_reset_at`` of any key, team, user, end user or team member, or
        ``model_reset_at`` of a key (None: none has a period). Until then, and while nothing is
        written (:meth:`feed_mark`, :attr:`end_user_writes`), a sweep finds nothing to reset."""
        arms = [f"SELECT MIN(budget_reset_at) AS at FROM {ENTITIES[kind][0]}"
                for kind in ("key", "team", "user", "end_user", "team_member")]
        arms.append("SELECT MIN(model_reset_at) AS at FROM llmrelay_keys")
        with self._read() as cur:
            cur.execute(f"SELECT MIN(at) AS at FROM ({' UNION ALL '.join(arms)}) due")
            found = cur.fetchall()
        return float(found[0]["at"]) if found and found[0]["at"] is not None else None

    def add_spend(self, kind: str, ident: str, amount: float) -> bool:
        """Add ``amount`` to a row's spend (no change-feed entry: spend is re-read on refresh)."""
        table, id_col, _ = ENTITIES[kind]
        with self._cursor() as cur:
            cur.execute(f"UPDATE {table} SET spend = spend + ? WHERE {id_col} = ?", (amount, ident))
            return cur.rowcount > 0

    def start_period(self, kind: str, ident: str, reset_at: float) -> bool:
        """Start a row's first budget period (a no-op if it has one already)."""
        table, id_col, _ = ENTITIES[kind]
        now = time.time()
        with self._cursor() as cur:
            cur.execute(f"UPDATE {table} SET budget_reset_at = ? WHERE {id_col} = ? AND budget_reset_at IS NULL",
                        (reset_at, ident))
            if cur.rowcount == 0:
                return False
            self._changed(cur, kind, ident, now)
        return True

    def reset_budget(self, kind: str, ident: str, was_due: float, next_reset: float | None) -> bool:
        """Zero the spend of a row whose period ended at ``was_due`` (a no-op if another
        process did it first), and re-arm its soft-budget alert. A key's per-model spend goes
        with it, except for the models whose budget has its own period."""
        table, id_col, _ = ENTITIES[kind]
        now = time.time()
        with self._cursor() as cur:
            if kind == "key":
                cur.execute("SELECT model_spend, model_budget_reset_at FROM llmrelay_keys "
                            "WHERE token = ? AND budget_reset_at = ?", (ident, was_due))
                found = cur.fetchall()
                if not found:
                    return False
                kept = None
                if found[0]["model_spend"] and found[0]["model_budget_reset_at"]:
                    own = orjson.loads(found[0]["model_budget_reset_at"])
                    spend = {m: v for m, v in orjson.loads(found[0]["model_spend"]).items() if m in own}
                    kept = orjson.dumps(spend).decode() if spend else None
                cur.execute(
                    "UPDATE llmrelay_keys SET spend = 0, model_spend = ?, soft_budget_cooldown = 0, "
                    "budget_reset_at = ?, updated_at = ? WHERE token = ? AND budget_reset_at = ?",
                    (kept, next_reset, now, ident, was_due),
                )
            else:
                cur.execute(
                    f"UPDATE {table} SET spend = 0, soft_budget_cooldown = 0, budget_reset_at = ?, updated_at = ? "
                    f"WHERE {id_col} = ? AND budget_reset_at = ?",
                    (next_reset, now, ident, was_due),
                )
            if cur.rowcount == 0:
                return False
            self._changed(cur, kind, ident, now)
        return True

    def due_model_resets(self, now: float) -> list[dict[str, Any]]:
        """Keys with a per-model budget period that ended (token, model_max_budget,
        model_budget_reset_at, model_reset_at)."""
        with self._read() as cur:
            cur.execute(
                "SELECT token, model_max_budget, model_budget_reset_at, model_reset_at FROM llmrelay_keys "
                "WHERE model_reset_at IS NOT NULL AND model_reset_at <= ?",
                (now,),
            )
            return [_row(ENTITIES["key"][2], r) for r in cur.fetchall()]

    def reset_model_budgets(self, token: str, was_due: float, models: Sequence[str],
                            resets: dict[str, float], next_due: float | None) -> bool:
        """Zero the spend of ``models`` on a key (their periods ended) and store their next
        periods (``resets``, the earliest ``next_due``); a no-op if another process did it
        first (``model_reset_at`` is no longer ``was_due``)."""
        now = time.time()
        with self._cursor() as cur:
            cur.execute("SELECT model_spend FROM llmrelay_keys WHERE token = ? AND model_reset_at = ?",
                        (token, was_due))
            found = cur.fetchall()
            if not found:
                return False
            spend = orjson.loads(found[0]["model_spend"]) if found[0]["model_spend"] else {}
            for model in models:
                spend.pop(model, None)
            cur.execute(
                "UPDATE llmrelay_keys SET model_spend = ?, model_budget_reset_at = ?, model_reset_at = ?, "
                "updated_at = ? WHERE token = ? AND model_reset_at = ?",
                (orjson.dumps(spend).decode() if spend else None, orjson.dumps(resets).decode(), next_due, now,
                 token, was_due),
            )
            if cur.rowcount == 0:
                return False
            self._changed(cur, "key", token, now)
        return True

    def set_soft_budget_alerted(self, kind: str, ident: str) -> bool:
        """Mark a row's soft-budget alert as sent for this period; False if it already was
        (another process alerted first) or there is no such row."""
        table, id_col, _ = ENTITIES[kind]
        with self._cursor() as cur:
            cur.execute(f"UPDATE {table} SET soft_budget_cooldown = 1 WHERE {id_col} = ? AND soft_budget_cooldown = 0",
                        (ident,))
            return cur.rowcount == 1

    # ------------------------------------------------------------------ spend
    def write_spend(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert spend-log rows (dicts by column; ``day`` and ``total_tokens`` derived when
        missing) and add their cost to their key, team, user and end user, in one transaction
        (all or nothing, so a failed batch can simply be written again)."""
        if not rows:
            return
        by: dict[tuple[str, str], float] = {}
        models: dict[tuple[str, str], float] = {}
        values = []
        dumps = orjson.dumps
        days: dict[int, str] = {}
        for r in rows:
            try:
                row = list(_SPEND_VALUES(r))
            except KeyError:  # a row without some optional columns
                row = list(map(r.get, SPEND_COLUMNS))
            for i in _SPEND_JSON_AT:
                if row[i] is not None:
                    row[i] = dumps(row[i]).decode()
            if row[_DAY] is None:
                number = int(row[_START] // 86400)
                day = days.get(number)
                if day is None:
                    day = days[number] = utc_day(row[_START])
                row[_DAY] = day
            if row[_TOTAL] is None:
                row[_TOTAL] = int(row[_PROMPT] or 0) + int(row[_COMPLETION] or 0)
            values.append(row)
            cost = float(row[_COST] or 0.0)
            if not cost:
                continue
            for kind, at in _SPEND_OWNERS:
                ident = row[at]
                if ident:
                    by[(kind, ident)] = by.get((kind, ident), 0.0) + cost
            if row[_KEY] and row[_GROUP]:
                models[(row[_KEY], row[_GROUP])] = models.get((row[_KEY], row[_GROUP]), 0.0) + cost
        self.write_spend_batch([(SPEND_COLUMNS, values)], by, models)

    def write_spend_batch(self, groups: Sequence[tuple[tuple[str, ...], Sequence[Sequence[Any]]]],
                          by: dict[tuple[str, str], float], models: dict[tuple[str, str], float]) -> None:
        """:meth:`write_spend` for rows already made (JSON columns as text, ``day`` and
        ``total_tokens`` set), in groups of the same columns — ``(columns, rows)``, each row in
        the order of its ``columns`` (a subset of :data:`SPEND_COLUMNS`; the others are NULL and
        not bound) — with their costs already summed: ``by`` (kind, id) → cost for each key,
        team, user and end user, ``models`` (key token, model group) → cost. One transaction."""
        if not groups:
            return
        per_key: dict[str, dict[str, float]] = {}
        for (token, model), cost in models.items():
            per_key.setdefault(token, {})[model] = cost
        with self._cursor() as cur:
            insert = _insert_spend_rows_shared if self.numbered_params else _insert_spend_rows
            for columns, rows in groups:
                insert(cur, columns, rows)
            current_models: dict[str, Any] = {}
            for (kind, ident), cost in sorted(by.items()):
                table, id_col, _ = ENTITIES[kind]
                if kind == "key" and ident in per_key and self.returning:
                    # (the update locks the row, so the per-model spend it returns is the one to add to)
                    cur.execute("UPDATE llmrelay_keys SET spend = spend + ? WHERE token = ? RETURNING model_spend",
                                (cost, ident))
                    current_models[ident] = cur.fetchall()
                elif kind == "end_user":
                    self.end_user_writes += 1
                    now = time.time()
                    cur.execute(
                        f"INSERT INTO {table} (user_id, spend, blocked, created_at, updated_at) VALUES (?, ?, 0, ?, ?) "
                        "ON CONFLICT (user_id) DO UPDATE SET spend = llmrelay_end_users.spend + excluded.spend",
                        (ident, cost, now, now),
                    )
                else:
                    cur.execute(f"UPDATE {table} SET spend = spend + ? WHERE {id_col} = ?", (cost, ident))
            for token, per in sorted(per_key.items()):
                found = current_models.get(token)
                if found is None:  # (its spend not charged in this batch, or no RETURNING)
                    cur.execute("SELECT model_spend FROM llmrelay_keys WHERE token = ?", (token,))
                    found = cur.fetchall()
                if not found:
                    continue
                current = orjson.loads(found[0]["model_spend"]) if found[0]["model_spend"] else {}
                for model, cost in per.items():
                    current[model] = current.get(model, 0.0) + cost
                cur.execute("UPDATE llmrelay_keys SET model_spend = ? WHERE token = ?",
                            (orjson.dumps(current).decode(), token))

    def spend_logs(self, filters: dict[str, Any] | None = None, start: float | None = None,
                   end: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Spend-log rows, newest first."""
        where, params = _spend_where(filters, start, end)
        with self._cursor() as cur:
            cur.execute(f"SELECT * FROM llmrelay_spend_logs{where} ORDER BY start_time DESC LIMIT ?",
                        (*params, int(limit)))
            rows = cur.fetchall()
        for r in rows:
            for c in _SPEND_JSON:
                if r.get(c) is not None:
                    r[c] = orjson.loads(r[c])
        return rows

    def spend_report(self, group_by: str, start: float | None = None, end: float | None = None,
                     filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Spend, requests and tokens summed per ``group_by`` (see ``SPEND_REPORT_GROUPS``)."""
        col = SPEND_REPORT_GROUPS[group_by]
        where, params = _spend_where(filters, start, end)
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {col} AS grp, SUM(spend) AS spend, COUNT(*) AS requests, "
                "SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens, "
                f"SUM(total_tokens) AS total_tokens FROM llmrelay_spend_logs{where} GROUP BY {col} ORDER BY {col}",
                params,
            )
            rows = cur.fetchall()
        return [{"group": r["grp"], "spend": float(r["spend"] or 0), "requests": int(r["requests"]),
                 "prompt_tokens": int(r["prompt_tokens"] or 0), "completion_tokens": int(r["completion_tokens"] or 0),
                 "total_tokens": int(r["total_tokens"] or 0)} for r in rows]


    # ------------------------------------------------------------------ responses
    def write_responses(self, ops: Sequence[tuple]) -> None:
        """Apply Responses API state changes in order, in one transaction: ``("put", id,
        conversation, response, expires_at)`` (JSON values) or ``("delete", id)``."""
        if not ops:
            return
        dumps = orjson.dumps
        with self._cursor() as cur:
            for op in ops:
                if op[0] == "delete":
                    cur.execute("DELETE FROM llmrelay_responses WHERE response_id = ?", (op[1],))
                    continue
                _, ident, conversation, response, expires_at = op
                cur.execute(
                    "INSERT INTO llmrelay_responses (response_id, conversation, response, expires_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (response_id) DO UPDATE SET "
                    "conversation = excluded.conversation, response = excluded.response, "
                    "expires_at = excluded.expires_at",
                    (ident, dumps(conversation, default=str).decode(),
                     None if response is None else dumps(response, default=str).decode(), float(expires_at)),
                )

    def read_response(self, ident: str, now: float) -> tuple[list, dict | None, float] | None:
        """(conversation, response, expires_at) of a stored response not expired at ``now``, or None."""
        with self._cursor() as cur:
            cur.execute("SELECT conversation, response, expires_at FROM llmrelay_responses "
                        "WHERE response_id = ? AND expires_at > ?", (ident, float(now)))
            rows = cur.fetchall()
        if not rows:
            return None
        row = rows[0]
        response = orjson.loads(row["response"]) if row["response"] is not None else None
        return orjson.loads(row["conversation"]), response, float(row["expires_at"])

    def prune_responses(self, now: float) -> int:
        """Delete the responses expired at ``now``; how many."""
        with self._cursor() as cur:
            cur.execute("DELETE FROM llmrelay_responses WHERE expires_at <= ?", (float(now),))
            return max(0, cur.rowcount)


def _spend_where(filters: dict[str, Any] | None, start: float | None, end: float | None) -> tuple[str, list]:
    """The WHERE clause for spend-log queries: column filters and a [start, end) time range."""
    clauses, params = [], []
    for col, value in (filters or {}).items():
        if col in _SPEND_FILTERS and value is not None:
            clauses.append(f"{col} = ?")
            params.append(value)
    if start is not None:
        clauses.append("start_time >= ?")
        params.append(start)
    if end is not None:
        clauses.append("start_time < ?")
        params.append(end)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _row(columns: dict[str, str | None], raw: dict[str, Any]) -> dict[str, Any]:
    return {c: _decode(columns.get(c), v) for c, v in raw.items()}


def _where(columns: dict[str, str | None], where: dict[str, Any]) -> tuple[str, tuple]:
    parts, params = [], []
    for col, value in where.items():
        if col not in columns:
            raise KeyError(col)
        if value is None:
            parts.append(f"{col} IS NULL")
        else:
            parts.append(f"{col} = ?")
            params.append(_encode(columns[col], value))
    return (f" WHERE {' AND '.join(parts)}" if parts else ""), tuple(params)

