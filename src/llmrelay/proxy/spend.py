"""Spend: what each request cost, written to the spend log in the background.

The request path only appends a row to a bounded in-memory queue (:meth:`SpendQueue.add`); a
background task writes the queue in batches every ``proxy_batch_write_at`` seconds (default
0.5), one transaction per batch (rows and the spend of their key, team, user and end user).
When the database is down the rows stay queued (up to ``MAX_QUEUED``; beyond that new rows are
dropped with a loud log line) and are written when it is back. Graceful shutdown flushes the
queue; a crash loses at most the last interval's rows.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ..storage import StoreError
from .write_behind import WriteBehind

if TYPE_CHECKING:
    from .keys import KeyManager, Principal

__all__ = ["SpendQueue", "request_cost", "spend_row", "usage_tokens", "MAX_QUEUED"]

log = logging.getLogger("llmrelay.proxy.spend")

#: Most rows held while the database is unreachable.
MAX_QUEUED = 200_000
#: Most rows per write.
BATCH = 2000
_perf = time.perf_counter
_time = time.time


class SpendQueue(WriteBehind):
    """Spend rows waiting to be written, and the cost they add that the database has not seen."""

    what = "spend log"

    def __init__(self, keys: "KeyManager", interval: float = 0.5, enabled: bool = True,
                 max_rows: int = MAX_QUEUED) -> None:
        super().__init__(interval)
        self.keys = keys
        self.enabled = enabled
        self.max_rows = max_rows
        self.rows: deque[dict[str, Any]] = deque()
        #: (kind, id) → cost queued but not yet written (added to rows read back from the database).
        self.pending: dict[tuple[str, str], float] = {}
        self.written = 0
        self.dropped = 0
        self._last_drop_log = 0.0

    def lost(self, exc: BaseException) -> None:
        log.error("SPEND LOST: %d spend rows could not be written at shutdown (%s)", len(self.rows), exc)

    def failed(self, exc: StoreError) -> None:
        self.keys._db_down(exc)

    def accepts(self, who: "Principal") -> bool:
        """Whether a request is logged: spend logging is on and there is a database (a gateway
        with only a master key and no database_url creates none for its spend)."""
        keys = self.keys
        return self.enabled and (keys.store is not None or keys.url is not None or not who.master)

    def add(self, row: dict[str, Any]) -> None:
        """Queue a row (never waits)."""
        if len(self.rows) >= self.max_rows:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                log.error("SPEND LOST: the spend queue is full (%d rows, database unavailable); "
                          "%d rows dropped so far", self.max_rows, self.dropped)
            return
        self.rows.append(row)
        cost = row["spend"]
        if cost:
            pending = self.pending
            for owner in row["_owners"]:
                pending[owner] = pending.get(owner, 0.0) + cost

    async def flush(self) -> None:
        """Write every queued row; :class:`StoreError` (rows kept) if the database fails."""
        rows = self.rows
        while rows:
            store = self.keys.store or await self.keys._try_open(create=True)
            if store is None:
                raise StoreError("the spend database is unavailable")
            batch = await self.write_batch(rows, store, store.write_spend, BATCH)
            self.written += len(batch)
            pending = self.pending
            for row in batch:
                cost = row["spend"]
                if cost:
                    for owner in row["_owners"]:
                        left = pending.get(owner, 0.0) - cost
                        if left > 1e-12:
                            pending[owner] = left
                        else:
                            pending.pop(owner, None)
            if self._failing:
                log.warning("spend written again: %d delayed rows caught up", len(batch))
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
        return 0.0  # answered from the response cache: no upstream cost
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


def spend_row(keys: "KeyManager", who: "Principal", ctx: Any, cost: float) -> dict[str, Any]:
    """The spend-log row of a finished request (its usage is ``ctx.usage``)."""
    prompt, completion = usage_tokens(ctx.usage)
    end = _time()
    start = end - (_perf() - ctx.start)
    entry = who.entry
    key = entry.row if entry is not None else None
    if key is not None:
        team_id = key.get("team_id")
        user_id = key.get("user_id")
        owners = entry.owners
        if owners is None:
            owners = entry.owners = [("key", who.token)]
            if team_id:
                owners.append(("team", team_id))
            if user_id:
                owners.append(("user", user_id))
        tags = key.get("tags")
    else:
        team_id = user_id = tags = None
        owners = []
    if who.end_user:
        owners = [*owners, ("end_user", who.end_user)]
    hidden = getattr(ctx.result, "_hidden_params", None)
    model_id = hidden.get("model_id") if hidden is not None else None
    if ctx.disconnected:
        status = "client_disconnected"
    elif ctx.status == 200 and ctx.error is None:
        status = "success"
    else:
        status = "failure"
    metadata = {"stream": ctx.stream, "http_status": ctx.status}
    result = ctx.result
    response_id = getattr(result, "id", None) or getattr(getattr(result, "state", None), "id", None)
    if response_id:  # the answer's own id (chatcmpl-…): LiteLLM's spend-log request_id
        metadata["response_id"] = response_id
    if ctx.error:
        metadata["error"] = ctx.error
    row = {
        "request_id": ctx.request_id.decode(),
        "api_key": who.token,
        "team_id": team_id,
        "user_id": user_id,
        "end_user": who.end_user,
        "model_group": who.model,
        "model": (keys.deployments.get(model_id) or _prices(keys, model_id))[0] if model_id else None,
        "model_id": model_id,
        "call_type": "acompletion",
        "status": status,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "day": None,  # filled in by the writer
        "spend": cost,
        "start_time": start,
        "end_time": end,
        "tags": tags,
        "metadata": metadata,
        "messages": None,
        "response": None,
        "_owners": owners,
    }
    if keys.store_prompts and getattr(ctx, "messages", None) is not None:
        import orjson

        row["messages"] = orjson.dumps(ctx.messages, default=str).decode()
    return row
