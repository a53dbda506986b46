"""Virtual keys: who is calling, may they call this model, and are they within budget and limits.

Pipeline steps, each called once per request by the app:

* :meth:`KeyManager.authenticate` — the master key (constant-time comparison) or a virtual
  key, looked up by its SHA-256 in an in-memory cache. Only a key seen for the first time
  waits for the database; a cached key is refreshed in the background every few seconds, and
  every write to a key, team, user or end user is announced in the database's change feed,
  which each worker polls (so a delete or block reaches every worker within ~0.5 s). When the
  database is down, cached keys keep working.
* :meth:`KeyManager.admit` — expiry, blocked, the model allow-lists (key, team, user; names,
  ``*`` wildcards, access groups from ``model_info.access_groups``), budgets (key, team, user,
  end user, per-model) and one atomic rate-limit check (:mod:`llmrelay.proxy.rate_limits`).
* :meth:`KeyManager.finish` — the request's cost goes to the in-memory spend of everything it
  is charged to, and a row to the spend queue (:mod:`llmrelay.proxy.spend`); its limits are
  released.

Neither a key nor its hash appears in a log line.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import math
import os
import secrets
import time
from datetime import datetime, timezone
from typing import Any

import orjson

from ..logging_obj import cache_hit_cost
from ..storage import Store, StoreConflict, StoreError, database_url, default_sqlite_path, open_store
from ..storage.base import member_id
from .auth import key_matches
from .budgets import model_budget, next_reset
from .rate_limits import Decision, Limit, LimitBackend, LocalLimits, rate_limit_headers, retry_after_seconds
from .spend import SpendQueue, request_cost, spend_row, usage_tokens as _tokens
from .warmup import warm_tokenizers

__all__ = ["KeyManager", "Principal", "hash_key", "new_key", "key_name", "deployment_index"]

log = logging.getLogger("llmrelay.proxy.keys")

#: Seconds after which a cached key, team, user or end user is re-read (in the background);
#: ``general_settings.user_api_key_cache_ttl`` overrides it.
REFRESH_AFTER = 5.0
#: Seconds an unknown key stays "unknown" before it is looked up again.
NEGATIVE_TTL = 2.0
#: Seconds between polls of the change feed (``LLMRELAY_KEYS_POLL_INTERVAL``; in shared mode a
#: Redis broadcast brings other instances' changes at once, the feed is the fallback).
POLL_INTERVAL = float(os.environ.get("LLMRELAY_KEYS_POLL_INTERVAL") or 0.25)
#: Seconds between looks for the default SQLite file while there is none: another process may
#: create it (a request that needs the database looks for it itself, and opening it here wakes
#: the loop at once).
NO_STORE_INTERVAL = 5.0
#: Seconds between budget-reset sweeps of the database.
RESET_INTERVAL = 2.0
#: Cache size beyond which entries for unknown keys are dropped.
MAX_CACHED = 100_000
#: LiteLLM's user row that holds the whole gateway's budget and spend (litellm_settings.max_budget)
PROXY_BUDGET = "litellm-proxy-budget"
#: Allow-list entries that allow every model: LiteLLM's ``all-proxy-models`` and ``*``.
ALL_MODELS = frozenset({"all-proxy-models", "*"})
#: A key's allow-list entry for whatever its team may call (the team's own list is checked on its
#: own; LiteLLM's UI makes team keys with it). A key without a team gets nothing from it.
ALL_TEAM_MODELS = "all-team-models"

try:
    # CPython's own SHA-256 (``_sha2`` from 3.12, ``_sha256`` before): the same digest as
    # OpenSSL's, without its per-call context set-up (~4.8k instead of ~6.5k instructions for a key)
    from _sha2 import sha256 as _sha256  # type: ignore[import-not-found]
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,no-redef]
    except ImportError:
        _sha256 = hashlib.sha256
_now = time.time
_dumps = orjson.dumps
_monotonic = time.monotonic
_exists = os.path.exists
_dict_get = dict.get


def _set_none(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def hash_key(key: str | bytes) -> str:
    """The id a key is stored under: its SHA-256, hex (as LiteLLM stores ``token``)."""
    return _sha256(key.encode() if isinstance(key, str) else key).hexdigest()


def new_key() -> str:
    return "sk-" + secrets.token_urlsafe(24)


def float_text(value: Any) -> bytes:
    """``repr(float(value))``, encoded: through orjson (Ryū, ~1.3k instructions instead of
    ~5k) where its text is the same — from 1e-4 to 1e16, where neither uses an exponent — else
    by ``repr``."""
    if type(value) is float and (1e-4 <= value < 1e16 or value == 0.0):
        return _dumps(value)
    return repr(float(value)).encode()


def key_name(key: str) -> str:
    """The displayable form of a key: ``sk-...`` and its last 4 characters."""
    return f"sk-...{key[-4:]}"


class Refusal:
    """What the app answers instead of calling the upstream (rendered in the API's error shape)."""

    __slots__ = ("status", "message", "type", "param", "code", "headers")

    def __init__(self, status: int, message: str, type_: str, *, param: str | None = None,
                 code: str | None = None, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code or str(status)
        self.headers = headers



class _Entry:
    """A cached row (None: known not to exist) and when it was read."""

    __slots__ = ("row", "fetched", "stale", "allowed", "limits", "spend_head", "budget_header", "expires",
                 "alone")

    def __init__(self, row: dict[str, Any] | None) -> None:
        self.row = row
        self.fetched = _monotonic()
        self.stale = False
        #: the row's ``expires``, and whether nothing but the key itself is checked at admission
        #: (no team, user, per-model budget, not blocked: most keys). A cached row's fields
        #: other than its spend and budget periods never change in place (a write replaces the entry).
        self.expires = row.get("expires") if row is not None else None
        self.alone = row is not None and not (row.get("team_id") or row.get("user_id") or row.get("blocked")
                                              or row.get("model_max_budget"))
        self.allowed: dict[str, bool] = {}
        #: model → (team row, user row, the limits built from them): rebuilt when those change
        self.limits: dict[str, tuple[Any, Any, list[Limit]]] = {}
        #: what a key's spend rows share (``spend._spend_head``), built once
        self.spend_head: tuple[tuple[tuple[str, str], ...], int, tuple] | None = None
        #: the ``x-litellm-key-max-budget`` header (or None), built once
        self.budget_header: tuple[bytes, bytes] | None = None
        if row is not None and row.get("max_budget") is not None:
            self.budget_header = (b"x-litellm-key-max-budget", repr(float(row["max_budget"])).encode())


class Principal:
    """Who is calling, for one request."""

    __slots__ = ("master", "token", "entry", "limits", "decision", "end_user", "model", "charged", "tokens",
                 "admitted", "tags", "member")

    def __init__(self, master: bool, token: str | None = None, entry: _Entry | None = None) -> None:
        self.master = master
        self.token = token
        self.entry = entry
        self.limits: list[Limit] | None = None
        self.decision: Decision | None = None
        self.end_user: str | None = None
        self.model: str | None = None
        self.charged = False
        #: (prompt, completion) tokens of the finished request (set by finish)
        self.tokens = (0, 0)
        #: the (team, user, end user) rows admission read: charged when the cache did not keep them
        self.admitted: tuple[Any, Any, Any] | None = None
        #: the request's own tags (its ``metadata.tags``), for its spend row
        self.tags: list[str] | None = None
        #: the id of the key's user's membership row in its team, when it has one (its spend)
        self.member: str | None = None

    @property
    def key(self) -> dict[str, Any] | None:
        return self.entry.row if self.entry is not None else None

    # LiteLLM's UserAPIKeyAuth fields, as the proxy hooks read them (observe.UserAPIKeyAuth)
    @property
    def api_key(self) -> str | None:
        """The key's token (its SHA-256), never the key."""
        return self.token

    def _field(self, name: str) -> Any:
        entry = self.entry
        return entry.row.get(name) if entry is not None and entry.row is not None else None

    key_alias = property(lambda self: self._field("key_alias"))
    user_id = property(lambda self: self._field("user_id"))
    team_id = property(lambda self: self._field("team_id"))
    team_alias = property(lambda self: None)
    metadata = property(lambda self: self._field("metadata") or {})


class KeyManager:
    """Keys, budgets, limits and spend for one gateway process."""

    def __init__(self, master_key: str, *, url: str | None = None, settings: dict[str, Any] | None = None,
                 access_groups: dict[str, set[str]] | None = None,
                 deployment_models: dict[str, set[str]] | None = None,
                 deployment_lookup: Any = None, limiter: LimitBackend | None = None) -> None:
        settings = settings or {}
        self._master = master_key.encode()
        self.url = database_url(url if url is not None else settings.get("database_url"))
        #: the default SQLite file (no database_url), looked for until it exists
        self._sqlite_path = default_sqlite_path() if self.url is None else None
        self.store: Store | None = None
        #: set when a store is opened, to wake the maintenance loop from its slow no-store wait
        self._opened: asyncio.Future | None = None
        self.limiter: LimitBackend = limiter or LocalLimits()
        # the in-process counters answer at once: no coroutine per request
        self._acquire_now = getattr(self.limiter, "acquire_now", None)
        self._release_now = getattr(self.limiter, "release_now", None)
        self.access_groups = access_groups or {}
        self.deployment_models = deployment_models or {}
        #: model_id → the deployment's config entry (``Router.get_deployment``), for prices.
        self.deployment_lookup = deployment_lookup
        self.deployments: dict[Any, tuple] = {}
        self.store_prompts = bool(settings.get("store_prompts_in_spend_logs"))
        ttl = settings.get("user_api_key_cache_ttl")
        self.refresh_after = float(ttl) if ttl is not None else REFRESH_AFTER
        self.spend = SpendQueue(
            self, interval=float(settings.get("proxy_batch_write_at") or 0.5),
            enabled=not settings.get("disable_spend_logs"),
        )
        self._cache: dict[str, dict[str, _Entry]] = {"key": {}, "team": {}, "user": {}, "end_user": {},
                                                     "team_member": {}}
        #: (kind, ident) → the read in flight and the generation it started in
        self._inflight: dict[tuple[str, str], tuple[asyncio.Future, int]] = {}
        #: Bumped by every invalidation (here, a broadcast, the change feed): a read that was in
        #: flight then may hold the row from before the change, so it is not cached (one counter
        #: for all rows: an unrelated change costs a re-read, never memory per row).
        self._generation = 0
        self._to_refresh: set[tuple[str, str]] = set()
        self._seen: dict[int, float] = {}
        self._last_seq = 0
        #: (store, its :meth:`~llmrelay.storage.base.Store.feed_mark`) when the feed was last read
        self._feed_seen: Any = None
        #: (store, feed mark, its end_user_writes) before the last budget sweep that succeeded,
        #: and when a period ends next (see _sweep)
        self._swept: Any = None
        self._next_due = 0.0
        self._task: asyncio.Task | None = None
        self._down_since: float | None = None
        self._open_error: str | None = None
        self._warm: asyncio.Future | None = None
        #: Called ``listener(budget_type, labels)`` once per budget period when a soft_budget is
        #: crossed (``labels``: hashed_api_key, api_key_alias, team, user, end_user); the app adds
        #: the Prometheus counter here.
        self.soft_budget_listeners: list[Any] = []
        #: ``litellm_settings.default_key_generate_params`` / ``upperbound_key_generate_params``
        #: (name → mapping; ``ProxyConfig.key_generate_params``), applied by /key/generate and /key/update.
        self.key_generate_params: dict[str, dict[str, Any]] = {}
        #: ``litellm_settings.max_end_user_budget_id``: the budget tier of end users without one
        self.default_end_user_tier: str | None = None
        #: ``litellm_settings.max_end_user_budget``: the budget of end users without one
        self.default_end_user_budget: float | None = None
        #: ``litellm_settings.default_internal_user_params`` / ``max_internal_user_budget`` /
        #: ``internal_user_budget_duration`` (``ProxyConfig.internal_user_settings``), applied by /user/new.
        self.internal_user_settings: dict[str, Any] = {}
        #: ``litellm_settings.max_budget`` (> 0) / ``budget_duration``: the whole gateway's budget,
        #: kept as LiteLLM keeps it, in the user row ``litellm-proxy-budget``
        self.proxy_budget: dict[str, Any] | None = None
        #: (kind, id) → spend not written yet of rows the spend log does not name (the gateway's
        #: budget row, team memberships): added to them by the maintenance loop
        self._side_pending: dict[tuple[str, str], float] = {}
        self._alerts: set[asyncio.Task] = set()
        #: Shared mode (:class:`~llmrelay.proxy.shared_limits.RedisLimits`, the limiter): budgets
        #: read and spend added on Redis, key changes broadcast to every instance.
        self.shared: Any = limiter if getattr(limiter, "shares_budgets", False) else None
        #: ``general_settings.store_model_in_db``: the database is opened (made) at start
        self.store_models = False
        #: The database's models (:class:`~.db_models.DbModels`), for the management API.
        self.db_models: Any = None
        #: Called with a model row's id when the change feed (or a broadcast) says it changed.
        self.model_listener: Any = None
        if self.shared is not None:
            self.shared.attach(self)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open and migrate the database (if there is one yet; the SQLite default is made now
        when end users have a default budget: their spend must be kept) and start the
        background work."""
        needed = (self.default_end_user_budget is not None or self.default_end_user_tier is not None
                  or self.proxy_budget is not None or self.store_models)
        store = await self._try_open(create=needed)
        if store is not None:
            await self._warm  # before serving: see _try_open
            if self.proxy_budget is not None:
                await store.run(self._ensure_proxy_budget, store)
        self._task = asyncio.ensure_future(self._maintain())
        self.spend.start()

    def _all_models(self) -> list[str]:
        return [model for models in self.deployment_models.values() for model in models]

    async def stop(self) -> None:
        """Flush the spend queue and close the database (graceful shutdown)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.spend.stop()
        if self.store is not None:
            try:
                await self._flush_side_spend(self.store)
            except StoreError as exc:
                log.error("the spend of the gateway's budget and team members was not written: %s", exc)
        if self.store is not None:
            store, self.store = self.store, None
            await asyncio.to_thread(store.close)

    async def _try_open(self, create: bool = False) -> Store | None:
        if self.store is not None:
            return self.store
        if self._sqlite_path is not None and not create and not _exists(self._sqlite_path):
            return None  # SQLite by default, created when the first key is
        try:
            store = await asyncio.to_thread(self._open_sync)
        except StoreError as exc:
            if self._open_error != str(exc):
                log.error("KEY DATABASE UNAVAILABLE: %s; only the master key and cached keys work "
                          "until it is back (retrying)", exc)
                self._open_error = str(exc)
            return None
        self.store = store
        self._open_error = None
        opened = self._opened
        if opened is not None and not opened.done():
            opened.set_result(None)
        if self._warm is None:
            # Streams without upstream usage are counted offline; load the tokenizers now
            # rather than in the first such request (~1 s, holding the GIL).
            self._warm = asyncio.ensure_future(warm_tokenizers(self._all_models()))
        log.info("keys and spend in %s", store.describe)
        return store

    def _open_sync(self) -> Store:
        store = open_store(self.url)
        try:
            store.migrate()
            self._last_seq = store.last_change()
        except BaseException:
            store.close()
            raise
        return store

    async def ensure_store(self) -> Store:
        """The store, created if needed (management writes); :class:`StoreError` if unavailable."""
        store = await self._try_open(create=True)
        if store is None:
            raise StoreError(self._open_error or "the key database is unavailable")
        return store

    async def _maintain(self) -> None:
        last_reset = last_prune = 0.0
        loop = asyncio.get_running_loop()
        while True:
            if self.store is None and self._sqlite_path is not None:
                # No database yet: nothing is cached from one, so there is nothing to poll; look
                # for the file now and then (a request that needs it looks itself), and go on at
                # once when this process opens it (a key created here)
                opened = self._opened = loop.create_future()
                timer = loop.call_later(NO_STORE_INTERVAL, _set_none, opened)
                try:
                    await opened
                finally:
                    timer.cancel()
                    self._opened = None
                if self.store is not None:
                    continue  # (poll from the next interval: the feed starts where it opened)
            else:
                await asyncio.sleep(POLL_INTERVAL)
            try:
                store = self.store or await self._try_open()
                if store is None:
                    continue
                mark = store.feed_mark()
                if mark is None or self._feed_seen != (store, mark):  # (else nothing new in the feed)
                    await self._poll(store, mark)
                if self._to_refresh:
                    await self._refresh_stale(store)
                if self._side_pending:
                    await self._flush_side_spend(store)
                now = _monotonic()
                if now - last_reset >= RESET_INTERVAL:
                    last_reset = now
                    await self._sweep(store)
                if now - last_prune >= 600:
                    last_prune = now
                    await store.run(store.prune_changes, _now() - 3600)
                self._db_ok()
            except StoreError as exc:
                self._db_down(exc)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("key maintenance failed")

    async def _sweep(self, store: Store) -> None:
        """The budget-reset sweep (:meth:`_reset_budgets`), on the store's thread — unless
        nothing can be due: no period has ended since the last sweep, and nothing was written
        since that could start one (:meth:`~llmrelay.storage.base.Store.feed_mark`: a change
        here or in another process; an end user this process's spend made). Each sweep is a
        thread hop and eight queries; most 2-second intervals have nothing to reset."""
        mark = store.feed_mark()
        seen = (store, mark, store.end_user_writes) if mark is not None else None
        if seen is not None and seen == self._swept and _now() < self._next_due:
            return
        self._swept = None  # (until this sweep succeeds)
        due = await store.run(self._reset_budgets, store)
        self._next_due = due if due is not None else math.inf
        self._swept = seen

    def _db_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = _monotonic()
            log.error("KEY DATABASE UNAVAILABLE: %s; cached keys keep working, spend is queued", exc)

    def _db_ok(self) -> None:
        if self._down_since is not None:
            log.warning("key database is back after %.1fs", _monotonic() - self._down_since)
            self._down_since = None

    # ------------------------------------------------------------------ the cache
    async def _poll(self, store: Store, mark: Any = None) -> None:
        """Read the change feed (``mark``: the store's feed mark taken before, remembered once
        read: while it stays the same, the maintenance loop does not call this)."""
        now = _now()
        changes = await store.run(store.changes, self._last_seq, now - 5.0)
        self._feed_seen = (store, mark)
        for change in changes:
            seq = change["seq"]
            if seq in self._seen:
                continue
            self._seen[seq] = now
            self._generation += 1
            self._last_seq = max(self._last_seq, seq)
            self._mark_stale(change["kind"], change["ident"])
        if len(self._seen) > 10000:
            self._seen = {s: t for s, t in self._seen.items() if t > now - 10.0}
        if self._to_refresh:
            await self._refresh_stale(store)

    async def _refresh_stale(self, store: Store) -> None:
        todo = list(self._to_refresh)
        self._to_refresh = set()
        for i, (kind, ident) in enumerate(todo):
            generation = self._generation
            try:
                row = await store.run(store.get_effective, kind, ident, self.default_end_user_tier)
            except BaseException:
                # (the database failed: what was not read is read on a later pass, else a
                # stale row would never be refreshed again — _lookup queues a row only once)
                self._to_refresh.update(todo[i:])
                raise
            if generation == self._generation:
                self._put(kind, ident, row, generation)
            else:  # invalidated while being read: read it again
                self._to_refresh.add((kind, ident))

    def _ensure_proxy_budget(self, store: Store) -> None:
        """The ``litellm-proxy-budget`` user row with the configured budget (made, or changed
        when the config changed; its spend is kept)."""
        budget = self.proxy_budget
        row = store.get("user", PROXY_BUDGET)
        duration = budget.get("budget_duration")
        wanted = {"max_budget": budget["max_budget"], "budget_duration": duration}
        if row is None:
            try:
                store.insert("user", {"user_id": PROXY_BUDGET, **wanted,
                                      "budget_reset_at": next_reset(duration, _now()) if duration else None})
            except StoreConflict:  # (another worker made it)
                pass
        elif any(row.get(name) != value for name, value in wanted.items()):
            if row.get("budget_duration") != duration:
                wanted["budget_reset_at"] = next_reset(duration, _now()) if duration else None
            store.update("user", PROXY_BUDGET, wanted)

    async def _flush_side_spend(self, store: Store) -> None:
        """Add the spend since the last flush to the rows the spend log does not name
        (``litellm-proxy-budget``, team memberships)."""
        pending = self._side_pending
        if not pending:
            return
        self._side_pending = {}
        for i, ((kind, ident), amount) in enumerate(pending.items()):
            try:
                await store.run(store.add_spend, kind, ident, amount)
            except BaseException:
                for where, left in list(pending.items())[i:]:  # (written with the next flush)
                    self._side_pending[where] = self._side_pending.get(where, 0.0) + left
                raise

    def _add_side_spend(self, kind: str, ident: str, cost: float) -> None:
        where = (kind, ident)
        self._side_pending[where] = self._side_pending.get(where, 0.0) + cost
        row = self.cached(kind, ident)
        if row is not None:
            row["spend"] += cost

    async def _member_over_budget(self, who: Principal, team_id: str, user_id: str, now: float) -> Refusal | None:
        """A team member's own budget in the team (LiteLLM's ``max_budget_in_team``); the
        membership row, when there is one, also takes the request's cost."""
        ident = member_id(team_id, user_id)
        found = await self._lookup("team_member", ident)
        row = found.row if found is not None else None
        if row is None:
            return None
        who.member = ident
        _new_period(row, now)
        limit = row.get("max_budget")
        if limit is not None and row["spend"] >= limit:
            return Refusal(400, f"ExceededBudget: Crossed spend within team. UserID: {user_id}, in team {team_id} "
                                f"has exceeded their budget. Current spend: {row['spend']}; Max Budget: {limit}",
                           "budget_exceeded")
        return None

    async def _proxy_over_budget(self, now: float) -> Refusal | None:
        """LiteLLM's global proxy budget: the gateway's spend this period over ``max_budget``."""
        found = await self._lookup("user", PROXY_BUDGET)
        row = found.row if found is not None else None
        if row is None:
            return None
        _new_period(row, now)
        limit = row.get("max_budget")
        if limit is not None and row["spend"] > limit:
            return Refusal(400, f"ExceededBudget: LiteLLM Proxy has exceeded its budget. Current spend: "
                                f"{row['spend']}; Max Budget: {limit}", "budget_exceeded")
        return None

    def _tier_rows(self) -> list[tuple[str, str]]:
        """A budget tier changed: the cached keys and end users to read again — those that
        took limits from a tier (tiers change rarely; which rows a tier reaches is not
        tracked; with a default tier for end users, every end user). Unknown end users are
        forgotten (one may have a default tier now)."""
        self._generation += 1
        out = []
        for kind in ("key", "end_user"):
            cache = self._cache[kind]
            every = kind == "end_user" and self.default_end_user_tier is not None
            for ident, entry in list(cache.items()):
                if entry.row is None:
                    if kind == "end_user":
                        del cache[ident]
                elif every or "litellm_budget_table" in entry.row:
                    out.append((kind, ident))
        return out

    def _put(self, kind: str, ident: str, row: dict[str, Any] | None, generation: int) -> _Entry:
        """The entry for ``row``, just read; cached only if nothing was invalidated since the
        read began (``generation``): else it may be the row from before a change, and caching it
        would undo the invalidation (it still answers the request that read it, which began
        before the change)."""
        cache = self._cache[kind]
        if kind == "end_user" and self.default_end_user_budget is not None:
            # (read as enforced, with its tier: Store.get_effective) without a budget of its own:
            # litellm_settings.max_end_user_budget
            if row is None:
                row = {"user_id": ident, "spend": 0.0, "blocked": False, "budget_reset_at": None}
            if row.get("max_budget") is None:
                row["max_budget"] = self.default_end_user_budget
        if row is not None:
            if self.shared is not None:  # the ledger's spend: reconciles the shared counter
                self.shared.reconcile(kind, ident, row)
            row["spend"] = float(row.get("spend") or 0.0) + self.spend.pending_cost(kind, ident)
            if self._side_pending:
                row["spend"] += self._side_pending.get((kind, ident), 0.0)
            old = cache.get(ident)
            if old is not None and old.row is not None:
                _keep_known(old.row, row)
        elif len(cache) >= MAX_CACHED:
            # many unknown keys (a scan?): forget the unknown ones, never the real ones
            for name in [n for n, e in cache.items() if e.row is None]:
                del cache[name]
        entry = _Entry(row)
        if generation == self._generation:
            cache[ident] = entry
        elif row is not None:
            # read again, in the background, after the change: then cached (else the next request
            # would wait for the database again, and get a 503 for a key it just used if it is down)
            self._to_refresh.add((kind, ident))
        return entry

    async def _lookup(self, kind: str, ident: str) -> _Entry | None:
        """The cached entry, read from the database on first sight; None if it cannot be read."""
        cache = self._cache[kind]
        entry = cache.get(ident)
        if entry is not None:
            age = _monotonic() - entry.fetched
            if entry.row is None:
                # (a membership is made only through the management API, whose change reaches
                # this process and drops the entry: the next request does not read it again)
                if age < NEGATIVE_TTL or kind == "team_member":
                    return entry
            else:
                if age > self.refresh_after and not entry.stale:
                    entry.stale = True
                    self._to_refresh.add((kind, ident))
                return entry
        store = self.store or await self._try_open()
        if store is None:
            return entry
        pending = self._inflight.get((kind, ident))
        if pending is None or pending[1] != self._generation:  # (not a read from before a change)
            pending = (asyncio.ensure_future(store.run(store.get_effective, kind, ident, self.default_end_user_tier)),
                       self._generation)
            self._inflight[(kind, ident)] = pending
            pending[0].add_done_callback(
                lambda _f, k=(kind, ident), p=pending: self._inflight.pop(k) if self._inflight.get(k) is p else None)
        try:
            row = await asyncio.shield(pending[0])
        except StoreError as exc:
            self._db_down(exc)
            return entry
        return self._put(kind, ident, row, pending[1])

    def invalidate(self, kind: str, ident: str, spend_set: bool = False) -> None:
        """Forget a cached row in this process (the change feed tells the other workers; in
        shared mode a Redis broadcast tells every instance at once; ``spend_set``: an admin set
        its spend, so the cost they queued for it before is dropped)."""
        self._generation += 1
        if kind == "budget":  # (this process changed it: the next request reads the rows)
            for kind_, ident_ in self._tier_rows():
                self._cache[kind_].pop(ident_, None)
        elif kind in self._cache:
            self._cache[kind].pop(ident, None)
        if self.shared is not None:
            self.shared.announce(kind, ident, spend_set)

    def changed_elsewhere(self, kind: str, ident: str, spend_set: bool = False) -> None:
        """Another instance changed this row: read it again now (a cached row keeps serving
        if the database cannot be read; a remembered unknown key is forgotten)."""
        if spend_set:
            self.spend.forget_queued(kind, ident)
        self._generation += 1
        if self._mark_stale(kind, ident):
            asyncio.ensure_future(self._refresh_now())

    def _mark_stale(self, kind: str, ident: str) -> bool:
        """A row changed elsewhere: queue it to be read again (a budget tier: every cached row
        that may take limits from a tier); a remembered unknown key is forgotten (it may exist
        now). True when something was queued."""
        if kind == "budget":
            self._to_refresh.update(self._tier_rows())
            return True
        if kind == "model":  # (a model added, changed or deleted through the API: the gateway reloads it)
            if self.model_listener is not None:
                self.model_listener(ident)
            return False
        cache = self._cache.get(kind)
        entry = cache.get(ident) if cache is not None else None
        if entry is None:
            return False
        if entry.row is None:
            del cache[ident]
            return False
        self._to_refresh.add((kind, ident))
        return True

    async def _refresh_now(self) -> None:
        try:
            store = self.store or await self._try_open()
            if store is not None:
                await self._refresh_stale(store)
        except StoreError as exc:
            self._db_down(exc)

    def cached(self, kind: str, ident: str | None) -> dict[str, Any] | None:
        entry = self._cache[kind].get(ident) if ident else None
        return entry.row if entry is not None else None

    # ------------------------------------------------------------------ authenticate
    async def authenticate(self, presented: bytes | None) -> Principal | Refusal:
        """The caller, or the refusal to send (401 unknown key, 503 database unavailable)."""
        if key_matches(presented, self._master):  # constant-time
            return Principal(True)
        if presented is None:
            return _NO_KEY
        token = _sha256(presented).hexdigest()
        entry = self._cache["key"].get(token)
        if entry is None or entry.row is None or (not entry.stale and _monotonic() - entry.fetched > self.refresh_after):
            entry = await self._lookup("key", token)  # (a stale row already being re-read: served as it is)
        if entry is None:
            if self.store is None and self.url is None:
                return _UNKNOWN_KEY
            return Refusal(503, "The key database is unavailable and this key is not cached; retry shortly.",
                            "api_error", headers=[(b"retry-after", b"1")])
        if entry.row is None:
            return _UNKNOWN_KEY
        # expired or blocked: refused on every route, as LiteLLM (its own /key/info too)
        expires = entry.expires
        if expires is not None:
            now = _now()
            if expires <= now:
                return _expired(entry.row, expires, now)
        if not entry.alone and entry.row.get("blocked"):
            return _BLOCKED
        return Principal(False, token, entry)

    # ------------------------------------------------------------------ admit
    async def admit(self, who: Principal, model: str, end_user: Any, prefetch: Any = None) -> Refusal | None:
        """Everything checked before the upstream call; a refusal, or None to go on (then the
        request is charged at :meth:`finish`; refused requests cost nothing and are not logged).

        ``prefetch``: the request's cache lookup (``CacheRequest``), read in the same Redis round
        trip as the limits and budgets in shared mode."""
        if who.master:
            return await self._admit_master(who, model, end_user, prefetch)
        entry = who.entry  # the key's own cache entry (its allow-list and limits are kept on it)
        key = entry.row
        now = _now()
        if self.proxy_budget is not None:
            refused = await self._proxy_over_budget(now)
            if refused is not None:
                return refused
        # (an expired or blocked key was refused by authenticate)
        team = user = customer = None
        if not entry.alone:
            if key.get("team_id"):
                found = await self._lookup("team", key["team_id"])
                team = found.row if found is not None else None
                if team is not None and team.get("blocked"):
                    return _team_blocked(key["team_id"])
            if key.get("user_id"):
                found = await self._lookup("user", key["user_id"])
                user = found.row if found is not None else None
                if key.get("team_id"):  # the user's budget in the team (LiteLLM's max_budget_in_team)
                    refused = await self._member_over_budget(who, key["team_id"], key["user_id"], now)
                    if refused is not None:
                        return refused
        allowed = entry.allowed.get(model)
        if allowed is None:
            allowed = entry.allowed[model] = self._allowed(key.get("models"), model, bool(key.get("team_id")))
        if not allowed:
            return Refusal(
                401, f"key not allowed to access model. This key can only access models={key.get('models')}. "
                f"Tried to access {model}", "key_model_access_denied", param="model")
        if team is not None and not self._allowed(team.get("models"), model):
            return Refusal(
                401, f"team not allowed to access model. This team can only access models={team.get('models')}. "
                f"Tried to access {model}", "team_model_access_denied", param="model")
        if user is not None and not self._allowed(user.get("models"), model):
            return Refusal(401, f"user not allowed to access model {model}", "key_model_access_denied", param="model")
        if end_user and isinstance(end_user, str):
            who.end_user = end_user
            found = await self._lookup("end_user", end_user)
            customer = found.row if found is not None else None
            if customer is not None and customer.get("blocked"):
                return Refusal(400, f"End user {end_user} is blocked.", "budget_exceeded")
        if team is not None or user is not None or customer is not None:
            who.admitted = (team, user, customer)
        if team is not None or user is not None or customer is not None or not entry.alone:
            # a team's key spends the team's budget, not its owner's personal one (LiteLLM's rule)
            refused = self._over_budget(key, team, None if key.get("team_id") else user, customer, model, now)
            if refused is not None:
                return refused
        else:  # the key's own budget only (most keys): _over_budget only when it has work to do
            reset_at = key.get("budget_reset_at")
            limit = key.get("max_budget")
            if (reset_at is not None and reset_at <= now) or (limit is not None and key["spend"] >= limit):
                refused = self._over_budget(key, None, None, None, model, now)
                if refused is not None:
                    return refused
        cached = entry.limits.get(model)
        if cached is not None and cached[0] is team and cached[1] is user:
            limits = cached[2]
        else:
            limits = self._limits(who.token, key, team, user, model)
            entry.limits[model] = (team, user, limits)
        if customer is not None:
            limits = _with_end_user(limits, who.end_user, customer)
        if self.shared is None and self._acquire_now is not None:  # (in-process counters: no coroutine)
            return self._take(who, model, limits)
        return await self._hold(who, model, key, team, None if key.get("team_id") else user, customer, limits,
                                prefetch, now)

    def may_use(self, who: Principal, models: list[str]) -> Refusal | None:
        """After :meth:`admit`: a refusal unless the caller's key (and its team and user, when
        admit read them) may call each of ``models`` (a request's own ``fallbacks``)."""
        if who.master:
            return None
        key = who.entry.row
        team, user, _ = who.admitted or (None, None, None)
        for model in models:
            if not self._allowed(key.get("models"), model, bool(key.get("team_id"))) \
                    or (team is not None and not self._allowed(team.get("models"), model)) \
                    or (user is not None and not self._allowed(user.get("models"), model)):
                return Refusal(
                    401, f"key not allowed to access model. This key can only access models={key.get('models')}. "
                    f"Tried to access {model} (in 'fallbacks')", "key_model_access_denied", param="fallbacks")
        return None

    async def _admit_master(self, who: Principal, model: str, end_user: Any, prefetch: Any) -> Refusal | None:
        """The master key's request: only its end user (the request's ``user``) is checked —
        blocked, its budget and its limits, as LiteLLM checks them for any key."""
        who.model = model
        if not (isinstance(end_user, str) and end_user):
            return None
        who.end_user = end_user
        if self.store is None:  # (no database open: no end users to check)
            return None
        found = await self._lookup("end_user", end_user)
        customer = found.row if found is not None else None
        if customer is None:
            return None
        if customer.get("blocked"):
            return Refusal(400, f"End user {end_user} is blocked.", "budget_exceeded")
        who.admitted = (None, None, customer)
        now = _now()
        refused = self._over_budget(None, None, None, customer, model, now)
        if refused is not None:
            return refused
        return await self._hold(who, model, None, None, None, customer, _with_end_user([], end_user, customer),
                                prefetch, now)

    async def _hold(self, who: Principal, model: str, key: dict | None, team: dict | None, user: dict | None,
                    customer: dict | None, limits: list[Limit], prefetch: Any, now: float) -> Refusal | None:
        """Take the request's place in its limits (and, in shared mode, check its budgets on
        every instance); a refusal, or None with ``who`` holding what it took."""
        shared = self.shared
        if shared is not None:
            budgets = shared.budgets(who.token, key, team, user, customer, model)
            if not (limits or budgets):
                who.model = model
                return None
            # limits, shared budgets and the cache lookup: one round trip
            decision = await shared.admit(limits, budgets, prefetch)
            if decision is None:  # spent on other instances too (the rows now say how much)
                return self._over_budget(key, team, user, customer, model, now) or _SPENT
        elif self._acquire_now is not None or not limits:
            return self._take(who, model, limits)
        else:
            decision = await self.limiter.acquire(limits)
        return self._held(who, model, limits, decision)

    def _take(self, who: Principal, model: str, limits: list[Limit]) -> Refusal | None:
        """:meth:`_hold` with the in-process counters (``acquire_now``; never waits) and no shared
        budgets: the same outcome without a coroutine."""
        if not limits:
            who.model = model
            return None
        return self._held(who, model, limits, self._acquire_now(limits))

    @staticmethod
    def _held(who: Principal, model: str, limits: list[Limit], decision: Decision) -> Refusal | None:
        """The limiter's ``decision`` for ``limits``: the 429 to send, or None with ``who`` holding them."""
        if not decision.allowed:
            wait = retry_after_seconds(decision.retry_after)
            return Refusal(429, f"Rate limit reached: {decision.reason}. Retry after {wait}s.",
                            "rate_limit_error", headers=[(b"retry-after", b"%d" % wait)])
        if limits:
            who.limits = limits
            who.decision = decision
        who.model = model
        return None

    async def visible_models(self, who: Any, names: Any) -> list[str] | None:
        """The model groups of ``names`` a caller may use (its key's, team's and user's
        allow-lists; LiteLLM's ``/models`` for a key lists only these), or None for all."""
        entry = getattr(who, "entry", None)
        if who is None or who.master or entry is None or entry.row is None:
            return None
        key = entry.row
        in_team = bool(key.get("team_id"))
        lists = [(key.get("models"), in_team)]
        for kind, ident in (("team", key.get("team_id")), ("user", key.get("user_id"))):
            if ident:
                found = await self._lookup(kind, ident)
                lists.append((found.row.get("models") if found is not None and found.row is not None else None, False))
        lists = [(models, team) for models, team in lists if models]
        if not lists:
            return None
        return [name for name in names if all(self._allowed(models, name, team) for models, team in lists)]

    def _allowed(self, models: list[str] | None, model: str, in_team: bool = False) -> bool:
        """Whether the allow-list ``models`` lets ``model`` through (``in_team``: the list is a
        key's in a team, where ``all-team-models`` defers to the team's list)."""
        if not models:
            return True
        names = self.deployment_models.get(model, ())
        for pattern in models:
            if pattern == model or pattern in ALL_MODELS or (in_team and pattern == ALL_TEAM_MODELS):
                return True
            if model in self.access_groups.get(pattern, ()):
                return True
            if "*" in pattern and (fnmatch.fnmatchcase(model, pattern)
                                   or any(fnmatch.fnmatchcase(n, pattern) for n in names)):
                return True
        return False

    def _over_budget(self, key: dict, team: dict | None, user: dict | None, customer: dict | None,
                     model: str, now: float) -> Refusal | None:
        for kind, row in (("key", key), ("team", team), ("user", user), ("end_user", customer)):
            if row is None:
                continue
            _new_period(row, now)
            limit = row.get("max_budget")
            if limit is not None and row["spend"] >= limit:
                spend = row["spend"]
                if kind == "key":
                    # LiteLLM's message, then its older one (its docs and clients still match it)
                    message = (f"Budget has been exceeded! Current cost: {spend}, Max budget: {limit} "
                               f"(ExceededTokenBudget: Current spend for token: {spend}; Max Budget for Token: {limit})")
                elif kind == "end_user":
                    message = f"ExceededBudget: End User={row['user_id']} over budget. Spend={spend}, Budget={limit}"
                elif kind == "user":  # (LiteLLM's text, which clients match)
                    message = f"ExceededBudget: User={row['user_id']} over budget. Spend={spend}, Budget={limit}"
                else:
                    ident = row.get("team_id") if kind == "team" else row.get("user_id")
                    message = f"Budget has been exceeded! {kind.capitalize()}={ident} Current cost: {spend}, Max budget: {limit}"
                return Refusal(400, message, "budget_exceeded")
        per_model = key.get("model_max_budget") if key is not None else None
        if per_model and model in per_model:
            limit, period = model_budget(per_model[model])
            spent = (key.get("model_spend") or {}).get(model, 0.0)
            if period and spent:
                resets = key.get("model_budget_reset_at") or {}
                at = resets.get(model)
                if at is not None and at <= now:
                    # the model's own period is over: this process at once, the database by the sweep
                    key["model_spend"] = {**key["model_spend"], model: 0.0}
                    key["model_budget_reset_at"] = {**resets, model: next_reset(period, now)}
                    spent = 0.0
            if limit is not None and spent >= float(limit):
                return Refusal(400, f"Budget has been exceeded for model={model}! Current cost: {spent}, "
                                f"Max budget: {float(limit)}", "budget_exceeded")
        return None

    @staticmethod
    def _limits(token: str, key: dict, team: dict | None, user: dict | None, model: str) -> list[Limit]:
        out = []
        for label, counter, row in (("key", "key:" + token, key),
                                    ("team", "team:" + (key.get("team_id") or ""), team),
                                    ("user", "user:" + (key.get("user_id") or ""), user)):
            if row is None:
                continue
            rpm, tpm, par = row.get("rpm_limit"), row.get("tpm_limit"), row.get("max_parallel_requests")
            if rpm is not None or tpm is not None or par is not None:
                out.append(Limit(counter, label, rpm, tpm, par))
        model_rpm = (key.get("model_rpm_limit") or {}).get(model)
        model_tpm = (key.get("model_tpm_limit") or {}).get(model)
        if model_rpm is not None or model_tpm is not None:
            out.append(Limit(f"key:{token}:model:{model}", f"key model {model}", model_rpm, model_tpm))
        elif team is not None:  # the team's per-model limits, shared by its keys (a key's own win)
            model_rpm, model_tpm = _team_model_limit(team, "model_rpm_limit", model), \
                _team_model_limit(team, "model_tpm_limit", model)
            if model_rpm is not None or model_tpm is not None:
                out.append(Limit(f"team:{key['team_id']}:model:{model}", f"team model {model}", model_rpm, model_tpm))
        return out

    def headers(self, who: Principal) -> list[tuple[bytes, bytes]]:
        """Response headers: ``x-ratelimit-*`` and the key's spend and budget."""
        decision = who.decision
        out = rate_limit_headers(decision) if decision is not None else []
        entry = who.entry
        if entry is not None:
            out.append((b"x-litellm-key-spend", float_text(entry.row["spend"])))
            if entry.budget_header is not None:
                out.append(entry.budget_header)
        return out

    # ------------------------------------------------------------------ finish
    async def finish(self, who: Principal, ctx: Any) -> None:
        """The request ended (any way): its final usage and cost (``ctx.usage``, ``ctx.cost``,
        which the end-of-request fan-out then reports), its charge, and its limits released."""
        if who.charged or who.model is None or (who.master and not self.spend.accepts(who)):
            return  # (a master-key request on a gateway without a database: nothing to record)
        who.charged = True
        usage = ctx.usage
        result = ctx.result
        if usage is None and result is not None:
            state = getattr(result, "state", None)
            if state is not None and hasattr(state, "usage"):
                # a cut or failed stream, or no upstream usage: what was generated, counted offline
                usage = ctx.usage = state.usage()
        if usage is not None:
            who.tokens = tokens = _tokens(usage)  # (once: the spend row takes them too)
        else:
            tokens = who.tokens
        limits = who.limits
        if limits:
            if self._release_now is not None:
                self._release_now(limits, tokens[0] + tokens[1])
            else:
                await self.limiter.release(limits, tokens[0] + tokens[1])
        cost = ctx.cost = self._cost(result, who.model, usage)
        if cost:
            self._charge(who, cost)

    def _cost(self, result: Any, model: str, usage: Any) -> float:
        """USD for the request: the price the library already put on the response (with the
        deployment's prices; a cache hit costs nothing), else priced here from ``usage`` (a cut
        stream: what it generated)."""
        if usage is None:
            return 0.0
        hidden = getattr(result, "_hp", None)  # (our responses' slot, without the property's call)
        if hidden is None:
            hidden = getattr(result, "_hidden_params", None)
        if hidden is not None:
            # (a stream's mapping computes only its cost: its other keys read without its get's frame)
            if (_dict_get(hidden, "cache_hit") if isinstance(hidden, dict) else hidden.get("cache_hit")):
                return cache_hit_cost(hidden)
            cost = hidden.get("response_cost")  # a stream's: priced once, when it ended
            if cost is not None:
                return float(cost)
        return request_cost(self, result, model, usage)

    def on_request_end(self, ctx: Any) -> None:
        """The fan-out's hook (``observe.on_request_end``): queue the request's spend row."""
        who = ctx.auth
        if who is not None and who.charged and self.spend.enabled:  # (charged: accepted by the spend log)
            self.spend.add(*spend_row(self, who, ctx))

    def _charge(self, who: Principal, cost: float) -> None:
        if self.shared is not None:  # the shared counters, in the background
            self.shared.charge(who, cost)
        if self.proxy_budget is not None:
            self._add_side_spend("user", PROXY_BUDGET, cost)
        if who.member is not None:
            self._add_side_spend("team_member", who.member, cost)
        entry = who.entry
        if entry is not None:
            current = self._cache["key"].get(who.token)
            if current is not None and current is not entry and current.row is not None:
                # the key was re-read while the request ran: the row now cached takes the charge
                # (the re-read's spend is the database's plus the queued cost, not this request's)
                entry = current
            key = entry.row
            model = who.model
            if model:
                per = key.get("model_spend")
                if per is None:
                    per = key["model_spend"] = {}
                per[model] = per.get(model, 0.0) + cost
            spend = key["spend"] = key["spend"] + cost
            soft = key.get("soft_budget")
            if soft is not None and spend >= soft and not key.get("soft_budget_cooldown"):
                self._soft_budget_crossed(who, "key", who.token, key)
            team_id = user_id = None
            if not entry.alone:  # (most keys have neither team nor user: no loop, no lookups)
                team_id, user_id = key.get("team_id"), key.get("user_id")
            if team_id or user_id:
                for i, kind, ident in ((0, "team", team_id), (1, "user", user_id)):
                    row = self.cached(kind, ident)
                    if row is None and ident and who.admitted is not None:
                        row = who.admitted[i]
                    if row is not None:
                        self._add_spend(who, kind, ident, row, cost)
        if who.end_user:
            row = self.cached("end_user", who.end_user)
            if row is None and who.admitted is not None:
                # a first read a change elsewhere overtook is not cached (_put): the row the
                # request was admitted with takes its charge, and alerts for its soft budget
                row = who.admitted[2]
            if row is not None:
                self._add_spend(who, "end_user", who.end_user, row, cost)

    def _add_spend(self, who: Principal, kind: str, ident: str, row: dict[str, Any], cost: float) -> None:
        """Add ``cost`` to a cached row's spend; alert once when it crosses the row's soft budget."""
        spend = row["spend"] = row["spend"] + cost
        soft = row.get("soft_budget")
        if soft is not None and spend >= soft and not row.get("soft_budget_cooldown"):
            self._soft_budget_crossed(who, kind, ident, row)

    # ------------------------------------------------------------------ soft budgets
    def _soft_budget_crossed(self, who: Principal, kind: str, ident: str, row: dict[str, Any]) -> None:
        """``row``'s spend reached its soft_budget: alert once per budget period (the flag is
        set here at once, and in the database in the background, where only the first process
        to set it alerts)."""
        row["soft_budget_cooldown"] = True
        task = asyncio.ensure_future(self._alert_soft_budget(who, kind, ident, row, float(row["spend"])))
        self._alerts.add(task)
        task.add_done_callback(self._alerts.discard)

    async def _alert_soft_budget(self, who: Principal, kind: str, ident: str, row: dict[str, Any],
                                 spend: float) -> None:
        store = self.store
        if store is not None:
            try:
                if not await store.run(store.set_soft_budget_alerted, kind, ident):
                    return  # another process alerted for this period
            except StoreError as exc:
                self._db_down(exc)  # alert anyway: better twice than never
        key = who.key or {}
        if kind == "key":
            name = f"key {key.get('key_alias') or key.get('key_name') or '(no alias)'}"
        elif kind == "team":
            name = f"team {row.get('team_alias') or ident}"
        else:
            name = f"{'end user' if kind == 'end_user' else 'user'} {ident}"
        limit = row.get("max_budget")
        log.warning("SOFT BUDGET CROSSED: %s spent %.6g USD, soft_budget %.6g USD%s; no further alert until "
                    "its budget resets%s", name, spend, float(row["soft_budget"]),
                    f", max_budget {float(limit):.6g} USD" if limit is not None else "",
                    f" (budget_duration {row['budget_duration']})" if row.get("budget_duration") else "")
        labels = {"hashed_api_key": who.token or "", "api_key_alias": key.get("key_alias") or "",
                  "team": key.get("team_id") or "", "user": key.get("user_id") or "",
                  "end_user": who.end_user or ""}
        for listener in self.soft_budget_listeners:
            try:
                listener(kind, labels)
            except Exception:  # noqa: BLE001 - an observer never breaks the gateway
                log.warning("soft-budget listener %r failed", listener, exc_info=True)

    # ------------------------------------------------------------------ budgets in the database
    def _reset_budgets(self, store: Store) -> float | None:
        """Reset the budgets whose period ended, start those of tier-linked rows without one;
        when the next period ends (:meth:`~llmrelay.storage.base.Store.next_reset_due`)."""
        now = _now()
        tier = self.default_end_user_tier
        for kind in ("key", "end_user"):  # a budget period from a tier: its first one starts now
            for row in store.unarmed_tier_periods(kind, tier):
                store.start_period(kind, row["ident"], next_reset(row["budget_duration"], now))
        for kind in ("key", "team", "user", "end_user", "team_member"):
            for due in store.due_resets(kind, now, tier):
                duration = due.get("budget_duration")
                following = next_reset(duration, now) if duration else None
                store.reset_budget(kind, due["ident"], due["budget_reset_at"], following)
        for due in store.due_model_resets(now):
            # per-model budgets with their own time_period whose period ended
            per_model = due.get("model_max_budget") or {}
            resets, ended = {}, []
            for model, at in (due.get("model_budget_reset_at") or {}).items():
                period = model_budget(per_model.get(model))[1] if model in per_model else None
                if period is None:
                    continue  # no longer has a period of its own
                if at <= now:
                    ended.append(model)
                    at = next_reset(period, now)
                resets[model] = at
            store.reset_model_budgets(due["token"], due["model_reset_at"], ended, resets,
                                      min(resets.values()) if resets else None)
        return store.next_reset_due()


def _new_period(row: dict[str, Any], now: float) -> None:
    """A row whose budget period is over starts the next one in this process (the database is
    reset by the sweep); per-model budgets with their own period keep their spend."""
    reset_at = row.get("budget_reset_at")
    if reset_at is not None and reset_at <= now and row.get("budget_duration"):
        row["spend"] = 0.0
        own = row.get("model_budget_reset_at")
        row["model_spend"] = {m: v for m, v in (row.get("model_spend") or {}).items() if m in own} \
            if own else None
        row["soft_budget_cooldown"] = False
        row["budget_reset_at"] = next_reset(row["budget_duration"], now)


def end_user_of(params: dict[str, Any]) -> Any:
    """The end user a request's body names, in LiteLLM's order: ``user``, then
    ``metadata.user_id``, ``safety_identifier`` (the request headers LiteLLM reads come first;
    the app checks them)."""
    user = params.get("user")
    if user:
        return user
    metadata = params.get("metadata")
    if type(metadata) is dict and metadata.get("user_id"):
        return metadata["user_id"]
    return params.get("safety_identifier") or user


def _with_end_user(limits: list[Limit], end_user: str, customer: dict[str, Any]) -> list[Limit]:
    """``limits`` and an end user's own (LiteLLM's ``/customer/new`` rpm_limit, …)."""
    rpm, tpm, par = customer.get("rpm_limit"), customer.get("tpm_limit"), customer.get("max_parallel_requests")
    if rpm is None and tpm is None and par is None:
        return limits
    return [*limits, Limit("end_user:" + end_user, "end user", rpm, tpm, par)]


def _team_model_limit(team: dict[str, Any], name: str, model: str) -> Any:
    """A team's ``model_rpm_limit`` / ``model_tpm_limit`` for ``model``: its own field, else
    the same name in its metadata (LiteLLM reads both)."""
    limits = team.get(name)
    if not limits:
        metadata = team.get("metadata")
        limits = metadata.get(name) if isinstance(metadata, dict) else None
    value = limits.get(model) if isinstance(limits, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 2**63:
        return None
    return int(value)


def _keep_known(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A row re-read from the database replaces ``old``: within the same budget period, keep
    what this process already knew. (A spend batch written while the row was being read is in
    neither the row read nor the queue's pending cost; spend only grows within a period.)"""
    if old.get("budget_reset_at") != new.get("budget_reset_at"):
        return  # a new period (or a changed one): the database's row is right
    if old["spend"] > new["spend"] and old.get("updated_at") == new.get("updated_at"):
        new["spend"] = old["spend"]  # (a changed row may have had its spend set: /key/update {"spend": 0})
    if old.get("soft_budget_cooldown") and old.get("soft_budget") == new.get("soft_budget"):
        new["soft_budget_cooldown"] = True  # (the alert's database write may still be on its way)
    known = old.get("model_spend")
    if known and old.get("model_budget_reset_at") == new.get("model_budget_reset_at"):
        fresh = new.get("model_spend") or {}
        new["model_spend"] = {**fresh, **{m: v for m, v in known.items() if v > fresh.get(m, 0.0)}}


_SPENT = Refusal(400, "Budget has been exceeded!", "budget_exceeded")

# Authentication errors: LiteLLM's messages, types and codes (its ProxyException body
# ``{"error": {"message", "type", "param", "code"}}``, code a string), status 401 and
# ``WWW-Authenticate`` (docs/keys.md#authentication-errors). Never the key or its hash.
_CHALLENGE = [(b"www-authenticate", b"Bearer")]
_NO_KEY = Refusal(401, "Authentication Error, No api key passed in. Send the gateway's master key or a virtual key "
                       "as 'Authorization: Bearer <key>'.", "auth_error", headers=_CHALLENGE)
_UNKNOWN_KEY = Refusal(401, "Authentication Error, Invalid proxy server token passed. The key is neither the "
                            "gateway's master key nor a key made with `/key/generate` (or it was deleted).",
                       "token_not_found_in_db", param="key", headers=_CHALLENGE)
_BLOCKED = Refusal(401, "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin.",
                   "auth_error", headers=_CHALLENGE)


def _utc(ts: float) -> str:
    return str(datetime.fromtimestamp(ts, timezone.utc))


def _expired(row: dict[str, Any], expires: float, now: float) -> Refusal:
    """LiteLLM's expired-key refusal; ``param`` is the key's displayable name (``sk-...abcd``,
    as LiteLLM's abbreviated key), never the key."""
    return Refusal(401, f"Authentication Error - Expired Key. Key Expiry time {_utc(expires)} and current time "
                        f"{_utc(now)}", "expired_key", param=row.get("key_name"), headers=_CHALLENGE)


def _team_blocked(team_id: str) -> Refusal:
    return Refusal(401, f"Authentication Error, Team={team_id} is blocked. Update via `/team/unblock` if you're an "
                        "admin.", "auth_error", headers=_CHALLENGE)


def deployment_index(config: Any) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(access group → model names, model name → its deployments' ``litellm_params.model``)."""
    groups: dict[str, set[str]] = {}
    models: dict[str, set[str]] = {}
    for d in config.deployments:
        models.setdefault(d.model_name, set()).add(str(d.litellm_params.get("model")))
        for group in d.model_info.get("access_groups") or ():
            groups.setdefault(str(group), set()).add(d.model_name)
    return groups, models

