"""Spend: what each request cost, written to the spend log in the background.

The request path only appends a row to a bounded in-memory queue (:meth:`SpendQueue.add`); a
background task writes the queue in batches every ``proxy_batch_write_at`` seconds (default
0.5), one transaction per batch (rows and the spend of their key, team, user and end user).
When the database is down the rows stay queued (up to ``MAX_QUEUED``; beyond that new rows are
dropped with a loud log line) and are written when it is back. Graceful shutdown flushes the
queue; a crash loses at most the last interval's rows.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from ..storage import StoreError
from ..logging_obj import cache_hit_cost
from ..storage.base import SPEND_COLUMNS, utc_day
from .write_behind import WriteBehind

if TYPE_CHECKING:
    from .keys import KeyManager, Principal

__all__ = ["request_tags", "SpendQueue", "request_cost", "spend_row", "usage_tokens", "MAX_QUEUED"]

log = logging.getLogger("llmrelay.proxy.spend")

#: Most rows held while the database is unreachable.
MAX_QUEUED = 200_000
#: Most rows per write.
BATCH = 2000
_perf = time.perf_counter
_time = time.time
_dumps = orjson.dumps
_dict_get = dict.get
#: The columns of every spend row the request path makes, in its tuple's order...
_FIXED = ("request_id", "api_key", "model_group", "model", "model_id", "call_type", "status", "prompt_tokens",
          "completion_tokens", "total_tokens", "spend", "start_time", "end_time", "day", "metadata")
#: ... then those of these that the row has (a bit each in its shape; the others are NULL and
#: not bound, nor is ``response``, never set here).
_OPTIONAL = ("team_id", "user_id", "tags", "end_user", "messages")
_TEAM, _USER, _TAGS, _END_USER, _MESSAGES = (1 << i for i in range(len(_OPTIONAL)))
_MODEL_GROUP, _COST = map(_FIXED.index, ("model_group", "spend"))
assert set(_FIXED) | set(_OPTIONAL) | {"response"} == set(SPEND_COLUMNS)


@functools.lru_cache(maxsize=None)
def shape_columns(shape: int) -> tuple[str, ...]:
    """The columns of a spend row of this shape (see :func:`spend_row`)."""
    return _FIXED + tuple(col for i, col in enumerate(_OPTIONAL) if shape & (1 << i))


class _Batch:
    """Up to ``BATCH`` rows written in one transaction, with what they add to each owner's spend
    (summed as the rows come, so the writer does not go over the rows again)."""

    __slots__ = ("rows", "n", "charges", "model_only")

    def __init__(self) -> None:
        #: shape → the rows of that shape (tuples in the order of ``shape_columns(shape)``)
        self.rows: dict[int, list[tuple]] = {}
        self.n = 0
        #: (owners, model group) → cost: one sum per combination (``owners``, the tuple a key's
        #: rows share, its key first), spread over each owner when the batch is written
        self.charges: dict[tuple[tuple, Any], float] = {}
        #: (key token, model group) → cost of a key whose spend an admin set since (see
        #: :meth:`forget`): its per-model spend only
        self.model_only: dict[tuple[str, Any], float] = {}

    def sums(self) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
        """(kind, id) → cost for each key, team, user and end user; (key token, model group) →
        cost (a key's per-model spend)."""
        by: dict[tuple[str, str], float] = {}
        models: dict[tuple[str, str], float] = dict(self.model_only)
        for (owners, model), cost in self.charges.items():
            for owner in owners:
                by[owner] = by.get(owner, 0.0) + cost
            if owners and owners[0][0] == "key" and model:
                at = (owners[0][1], model)
                models[at] = models.get(at, 0.0) + cost
        return by, models

    def cost_of(self, owner: tuple[str, str]) -> float:
        return sum(cost for (owners, _), cost in self.charges.items() if owner in owners)

    def forget(self, owner: tuple[str, str]) -> None:
        """An admin set ``owner``'s spend: what these rows would add to it is dropped (the rows
        themselves are still written; a key's per-model spend is kept)."""
        charges: dict[tuple[tuple, Any], float] = {}
        for (owners, model), cost in self.charges.items():
            if owner in owners:
                if owners[0] == owner and owner[0] == "key" and model:
                    at = (owner[1], model)
                    self.model_only[at] = self.model_only.get(at, 0.0) + cost
                owners = tuple(o for o in owners if o != owner)
            charges[(owners, model)] = charges.get((owners, model), 0.0) + cost
        self.charges = charges


class SpendQueue(WriteBehind):
    """Spend rows waiting to be written, and the cost they add that the database has not seen."""

    what = "spend log"

    def __init__(self, keys: "KeyManager", interval: float = 0.5, enabled: bool = True,
                 max_rows: int = MAX_QUEUED) -> None:
        super().__init__(interval)
        self.keys = keys
        self.enabled = enabled
        self.max_rows = max_rows
        #: the rows queued, in batches (the last one is filled; the first is written next)
        self.batches: deque[_Batch] = deque()
        #: the batch being written (its cost is still pending until the write succeeds), and
        #: a future done when that write ends
        self._writing: _Batch | None = None
        self._written: asyncio.Future | None = None
        #: a regenerated key's old token → its new one (the cost of requests that key made
        #: before is charged to the row under its new token)
        self.renamed: dict[str, str] = {}
        self.queued = 0
        self.written = 0
        self.dropped = 0
        self._last_drop_log = 0.0

    def has_work(self) -> bool:
        return bool(self.batches)

    def lost(self, exc: BaseException) -> None:
        log.error("SPEND LOST: %d spend rows could not be written at shutdown (%s)", self.queued, exc)

    def failed(self, exc: StoreError) -> None:
        self.keys._db_down(exc)

    def accepts(self, who: "Principal") -> bool:
        """Whether a request is logged: spend logging is on and there is a database (a gateway
        with only a master key and no database_url creates none for its spend)."""
        keys = self.keys
        return self.enabled and (keys.store is not None or keys.url is not None or not who.master)

    def pending_cost(self, kind: str, ident: str) -> float:
        """The cost queued (or being written) for a key, team, user or end user that the
        database has not seen yet (added to its row when the row is read back)."""
        owner = (kind, ident)
        total = 0.0
        for batch in self.batches:
            total += batch.cost_of(owner)
        if self._writing is not None:
            total += self._writing.cost_of(owner)
        return total

    async def forget(self, kind: str, ident: str) -> None:
        """An admin is setting this owner's spend: after the write in progress (if any), the
        cost queued for it is dropped, so that spend from before the change is not added to the
        spend set (the spend-log rows are still written)."""
        while self._written is not None:
            await asyncio.shield(self._written)
        self.forget_queued(kind, ident)

    async def rename_key(self, old: str, new: str) -> None:
        """A key is being regenerated (its row's token changes from ``old`` to ``new``): after
        the write in progress, the cost queued or still to come for ``old`` goes to ``new``."""
        while self._written is not None:
            await asyncio.shield(self._written)
        if len(self.renamed) >= 1000:
            del self.renamed[next(iter(self.renamed))]
        self.renamed[old] = new

    def _sums(self, batch: _Batch) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
        by, models = batch.sums()
        renamed = self.renamed
        if renamed:
            moved: dict[tuple[str, str], float] = {}
            for (kind, ident), cost in by.items():
                at = (kind, renamed.get(ident, ident)) if kind == "key" else (kind, ident)
                moved[at] = moved.get(at, 0.0) + cost
            by = moved
            moved = {}
            for (token, model), cost in models.items():
                at = (renamed.get(token, token), model)
                moved[at] = moved.get(at, 0.0) + cost
            models = moved
        return by, models

    def forget_queued(self, kind: str, ident: str) -> None:
        """:meth:`forget` without waiting for a write in progress (another instance set the
        spend: this one heard of it after the fact)."""
        owner = (kind, ident)
        for batch in self.batches:
            batch.forget(owner)

    @property
    def pending(self) -> dict[tuple[str, str], float]:
        """(kind, id) → :meth:`pending_cost`, for every owner with some."""
        out: dict[tuple[str, str], float] = {}
        for batch in (*self.batches, *((self._writing,) if self._writing is not None else ())):
            for owner, cost in batch.sums()[0].items():
                out[owner] = out.get(owner, 0.0) + cost
        return out

    def add(self, shape: int, row: tuple, owners: tuple[tuple[str, str], ...]) -> None:
        """Queue a row (never waits): ``row`` with the columns of its ``shape`` (:func:`spend_row`),
        its cost charged to each of ``owners`` (its key first, if it has one) and to its key's
        per-model spend."""
        if self.queued >= self.max_rows:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                log.error("SPEND LOST: the spend queue is full (%d rows, database unavailable); "
                          "%d rows dropped so far", self.max_rows, self.dropped)
            return
        batches = self.batches
        batch = batches[-1] if batches else None
        if batch is None or batch.n >= BATCH:
            batch = _Batch()
            batches.append(batch)
        rows = batch.rows.get(shape)
        if rows is None:
            rows = batch.rows[shape] = []
        rows.append(row)
        batch.n += 1
        self.queued += 1
        if self.waiter is not None:
            self.wake()
        cost = row[_COST]
        if cost:
            charges = batch.charges
            at = (owners, row[_MODEL_GROUP])
            charges[at] = charges.get(at, 0.0) + cost

    async def flush(self) -> None:
        """Write the rows queued when it begins — every row when the periodic writer is not
        running (shutdown, a flush by hand); :class:`StoreError` (rows kept) if the database fails.

        Rows queued while it writes wait for the next interval: a flush that went on until the
        queue was empty would, under a steady load, write one small batch after another as
        requests end (~16 rows each at C=16), each paying its own transaction and owner updates
        (~130k instructions), instead of one batch per interval."""
        batches = self.batches
        left = len(batches) if self._task is not None else -1
        while batches and left:
            left -= 1
            store = self.keys.store or await self.keys._try_open(create=True)
            if store is None:
                raise StoreError("the spend database is unavailable")
            batch = self._writing = batches.popleft()
            self._written = written = asyncio.get_running_loop().create_future()
            try:
                groups = [(shape_columns(shape), rows) for shape, rows in batch.rows.items()]
                await store.run(store.write_spend_batch, groups, *self._sums(batch))
            except BaseException:
                batches.appendleft(batch)  # written again, first, next time
                raise
            finally:
                self._writing = self._written = None
                written.set_result(None)
            self.queued -= batch.n
            self.written += batch.n
            if self._failing:
                log.warning("spend written again: %d delayed rows caught up", batch.n)
                self._failing = 0
                self.keys._db_ok()


# ====================================================================== cost
def _prices(keys: "KeyManager", model_id: str | None) -> tuple[str | None, str | None, Any]:
    """(litellm model, provider, per-deployment prices) of a deployment, cached by id."""
    cache = keys.deployments
    if model_id in cache:
        return cache[model_id]
    found: tuple[str | None, str | None, Any] = (None, None, None)
    dep = keys.deployment_lookup(model_id) if model_id and keys.deployment_lookup else None
    if dep:
        params = dep.get("litellm_params") or {}
        info = dep.get("model_info") or {}
        found = (params.get("model"), params.get("custom_llm_provider"), _deployment_prices(params, info))
    cache[model_id] = found
    return found


@functools.lru_cache(maxsize=None)
def _cost_module() -> Any:
    """``llmrelay.cost`` (the price table), or None in an installation without it; looked up once."""
    try:
        from .. import cost
    except ImportError:
        return None
    return cost


def _deployment_prices(params: dict, info: dict) -> dict[str, Any] | None:
    cost = _cost_module()
    if cost is None:  # only the deployment's own prices
        prices = {k: v for src in (params, info) for k, v in src.items()
                  if k in ("input_cost_per_token", "output_cost_per_token") and v is not None}
        return prices or None
    return cost.deployment_prices(params, info)


def request_cost(keys: "KeyManager", result: Any, model_group: str, usage: Any) -> float:
    """USD for a request from its usage and the deployment that answered (0 when unpriced)."""
    if usage is None:
        return 0.0
    hidden = getattr(result, "_hidden_params", None)
    if hidden is None:  # (not ``or {}``: a stream's mapping would price itself to answer len())
        hidden = {}
    if hidden.get("cache_hit"):
        return cache_hit_cost(hidden)  # answered from the response cache (all of it, or part)
    model, provider, prices = _prices(keys, hidden.get("model_id"))
    cost = _cost_module()
    if cost is None:
        prices = prices or {}
        get = usage.get if isinstance(usage, dict) else usage.__dict__.get
        return float(prices.get("input_cost_per_token") or 0) * int(get("prompt_tokens") or 0) + \
            float(prices.get("output_cost_per_token") or 0) * int(get("completion_tokens") or 0)
    try:
        return float(cost.usage_cost(model or model_group, usage, provider or hidden.get("custom_llm_provider"),
                                prices, default=0.0) or 0.0)
    except Exception:  # noqa: BLE001 - an unpriced or odd usage must not fail the request
        log.debug("cannot price %s", model_group, exc_info=True)
        return 0.0


def usage_tokens(usage: Any) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of an OpenAI-shaped usage (object or dict), or zeros."""
    if usage is None:
        return 0, 0
    get = usage.get if isinstance(usage, dict) else usage.__dict__.get
    prompt, completion = get("prompt_tokens") or 0, get("completion_tokens") or 0
    # (int() only when needed: a call per field costs more than the rest of this function)
    return (prompt if type(prompt) is int else int(prompt)), (completion if type(completion) is int else int(completion))


#: UTC day of a start time, by its day number (a spend row's ``day`` column).
_DAYS: dict[float, str] = {}
#: (stream, http status) → the status of a spend row with these (and no error), and the JSON text
#: of its metadata without the closing brace.
_META: dict[tuple[Any, Any], tuple[str, str]] = {}


def request_tags(metadata: Any) -> list[str] | None:
    """A request's ``metadata.tags`` (LiteLLM's request tags), or None if it has none that are
    a list of strings."""
    tags = metadata.get("tags") if type(metadata) is dict else None
    if type(tags) is list and tags and all(type(t) is str for t in tags):
        return list(dict.fromkeys(tags))
    return None


def spend_row(keys: "KeyManager", who: "Principal", ctx: Any) -> tuple[int, tuple, tuple[tuple[str, str], ...]]:
    """The spend-log row of a finished request (its usage is ``ctx.usage``, its cost
    ``ctx.cost``): its shape (which optional columns it has), the row (a tuple in the order of
    ``shape_columns(shape)``) and what its cost is charged to: [("key", token), ("team", id),
    ("user", id), ("end_user", id)]."""
    prompt, completion = who.tokens  # (counted by KeyManager.finish)
    end = _time()
    start = end - (_perf() - ctx.start)
    entry = who.entry
    if entry is not None:
        head = entry.spend_head
        if head is None:
            head = entry.spend_head = _spend_head(who.token, entry.row)
        owners, shape, extra = head
    else:
        owners, shape, extra = (), 0, ()
    tags = who.tags
    if tags:  # the request's tags, then the key's (LiteLLM's order)
        if shape & _TAGS:
            own = entry.row.get("tags") or ()
            extra = extra[:-1] + (_dumps(tags + [t for t in own if t not in tags]).decode(),)
        else:
            shape, extra = shape | _TAGS, extra + (_dumps(tags).decode(),)
    end_user = who.end_user
    if end_user:
        owners = (*owners, ("end_user", end_user))
        shape |= _END_USER
        extra += (end_user,)
    if keys.store_prompts and getattr(ctx, "messages", None) is not None:
        shape |= _MESSAGES
        extra += (_dumps(ctx.messages, default=str).decode(),)
    result = ctx.result
    hidden = getattr(result, "_hp", None)  # (our responses' slot, without the property's call)
    if hidden is None:
        hidden = getattr(result, "_hidden_params", None)
    # (a stream's mapping computes only its cost: the deployment's id read without its get's frame)
    model_id = _dict_get(hidden, "model_id") if isinstance(hidden, dict) else \
        hidden.get("model_id") if hidden is not None else None
    response_id = getattr(result, "id", None) or getattr(getattr(result, "state", None), "id", None)
    if ctx.error or ctx.disconnected:
        status = "client_disconnected" if ctx.disconnected else "failure"
        metadata = {"stream": ctx.stream, "http_status": ctx.status}
        if response_id:  # the answer's own id (chatcmpl-…): LiteLLM's spend-log request_id
            metadata["response_id"] = response_id
        if ctx.error:
            metadata["error"] = ctx.error
        metadata_text = _dumps(metadata).decode()
    else:
        # the common rows: their status and the JSON of {"stream", "http_status"} made once,
        # the answer's own id appended
        at = (ctx.stream, ctx.status)
        known = _META.get(at)
        if known is None:
            if len(_META) > 64:
                _META.clear()
            known = _META[at] = ("success" if at[1] == 200 else "failure",
                                 _dumps({"stream": at[0], "http_status": at[1]})[:-1].decode())
        status, metadata_text = known
        metadata_text += (',"response_id":' + _dumps(response_id).decode() + "}") if response_id else "}"
    number = start // 86400
    day = _DAYS.get(number)
    if day is None:
        if len(_DAYS) > 8:
            _DAYS.clear()
        day = _DAYS[number] = utc_day(start)
    row = (ctx.request_id.decode(), who.token, who.model,
           (keys.deployments.get(model_id) or _prices(keys, model_id))[0] if model_id else None, model_id,
           "acompletion", status, prompt, completion, prompt + completion, ctx.cost or 0.0, start, end, day,
           metadata_text)
    return shape, (row + extra if shape else row), owners


def _spend_head(token: str | None, key: dict[str, Any]) -> tuple[tuple[tuple[str, str], ...], int, tuple]:
    """What a key's spend rows share: what they are charged to, and the key's optional columns
    (their shape bits, their values in column order)."""
    team_id, user_id, tags = key.get("team_id"), key.get("user_id"), key.get("tags")
    owners = [("key", token)]
    shape, extra = 0, ()
    if team_id:
        owners.append(("team", team_id))
    if team_id is not None:
        shape, extra = shape | _TEAM, extra + (team_id,)
    if user_id:
        owners.append(("user", user_id))
    if user_id is not None:
        shape, extra = shape | _USER, extra + (user_id,)
    if tags is not None:
        shape, extra = shape | _TAGS, extra + (_dumps(tags).decode(),)
    return tuple(owners), shape, extra
