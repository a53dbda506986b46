"""LiteLLM's model management API: ``/model/new``, ``/model/update``, ``/model/delete``.

Master key only (proxy/management.py's rule for every admin route). Needs
``general_settings.store_model_in_db: true`` (or ``STORE_MODEL_IN_DB=True``) and a database;
without it the calls are refused as LiteLLM refuses them (500, "Set STORE_MODEL_IN_DB…").
An entry is validated as a config ``model_list`` entry (a bad one is a 400 naming the problem),
stored as given, then served by this process at once and by every other one on the database
through the change feed (proxy/db_models.py). Answers never show a key or an upstream host:
``litellm_params`` as ``/v1/model/info`` shows them. Config models are not changed through the
API: their ids are refused with a 400.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Any

from ..storage import StoreConflict
from .model_info import SHOWN_PARAMS

__all__ = ["Refused", "ROUTES", "ACCEPTS", "DISABLED_MESSAGE"]

#: LiteLLM's text (clients match it).
DISABLED_MESSAGE = "Set `'STORE_MODEL_IN_DB='True'` in your env to enable this feature."


class Refused(Exception):
    """The request is refused: ``status``, the message, the field at fault."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


def enabled(keys: Any) -> bool:
    """Whether the gateway keeps models in its database (else the routes answer 500, as LiteLLM's)."""
    models = getattr(keys, "db_models", None)
    return models is not None and models.enabled


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A stored model as an answer shows it: no key, no host, no header (``/v1/model/info``'s
    ``litellm_params``), ``model_info`` without secret-named fields."""
    from .config import _secret_name

    params = row.get("litellm_params") or {}
    info = {k: v for k, v in (row.get("model_info") or {}).items() if not _secret_name(str(k))}
    info["id"] = row["model_id"]
    info["db_model"] = True
    return {"model_id": row["model_id"], "model_name": row["model_name"],
            "litellm_params": {k: params[k] for k in SHOWN_PARAMS if k in params},
            "model_info": info, "created_at": _iso(row.get("created_at")), "updated_at": _iso(row.get("updated_at"))}


def _entry(params: dict, current: dict[str, Any] | None) -> dict[str, Any]:
    """The row a request makes (``current``: the stored row an update changes)."""
    name = params.get("model_name")
    litellm_params = params.get("litellm_params")
    info = params.get("model_info")
    for field, value in (("litellm_params", litellm_params), ("model_info", info)):
        if value is not None and not isinstance(value, dict):
            raise Refused(400, f"{field} must be an object.", field)
    if current is None:
        if not isinstance(name, str) or not name.strip():
            raise Refused(400, "model_name is required: the name clients ask for.", "model_name")
        if litellm_params is None:
            raise Refused(400, "litellm_params is required, with at least model (e.g. openai/gpt-4o).",
                          "litellm_params")
        row = {"model_name": name, "litellm_params": dict(litellm_params), "model_info": dict(info or {})}
    else:  # (an update changes what it gives; a null litellm_params value removes it)
        row = {"model_name": current["model_name"], "litellm_params": dict(current.get("litellm_params") or {}),
               "model_info": dict(current.get("model_info") or {})}
        if name is not None:
            row["model_name"] = name
        for field, given in (("litellm_params", litellm_params), ("model_info", info)):
            for key, value in (given or {}).items():
                if value is None:
                    row[field].pop(key, None)
                else:
                    row[field][key] = value
    row["model_info"].pop("id", None)
    return row


def _model_id(value: Any, param: str) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise Refused(400, f"{param} must be the model's id (model_info.id).", param)
    return str(value)


def _served(keys: Any, row: dict[str, Any]) -> None:
    """Validate a row as this gateway would serve it (400 naming the problem)."""
    try:
        keys.db_models.check(row)
    except ValueError as exc:
        raise Refused(400, keys.db_models.app.redact(str(exc))) from None


def _refuse_config(keys: Any, ident: str) -> None:
    if ident in keys.db_models.config_ids:
        raise Refused(400, f"Model {ident!r} is defined in the config file: it cannot be changed or deleted "
                           "through the API (edit the config file instead).", "id")


async def model_new(keys: Any, store: Any, who: Any, params: dict) -> dict:
    info = params.get("model_info")
    given = info.get("id") if isinstance(info, dict) else None
    ident = _model_id(given, "model_info.id") if given is not None else str(uuid.uuid4())
    _refuse_config(keys, ident)
    row = {"model_id": ident, **_entry(params, None)}
    _served(keys, row)
    now = time.time()
    try:
        await store.run(store.insert, "model", {**row, "created_at": now, "updated_at": now})
    except StoreConflict:
        raise Refused(400, f"A model with id {ident!r} already exists; change it with /model/update.",
                      "model_info.id") from None
    return await _reload(keys, store, ident)


async def model_update(keys: Any, store: Any, who: Any, params: dict) -> dict:
    info = params.get("model_info")
    ident = _model_id(info.get("id") if isinstance(info, dict) else params.get("id"), "model_info.id")
    _refuse_config(keys, ident)
    current = await store.run(store.get, "model", ident)
    if current is None:
        raise Refused(400, f"Model with id={ident} not found in db.", "model_info.id")
    row = {"model_id": ident, **_entry(params, current)}
    _served(keys, row)
    if not await store.run(store.update, "model", ident, {k: v for k, v in row.items() if k != "model_id"}):
        raise Refused(400, f"Model with id={ident} not found in db.", "model_info.id")
    return await _reload(keys, store, ident)


async def model_delete(keys: Any, store: Any, who: Any, params: dict) -> dict:
    ident = _model_id(params.get("id"), "id")
    _refuse_config(keys, ident)
    gone = await store.run(store.delete, "model", [ident])
    if not gone:
        raise Refused(400, f"Model with id={ident} not found in db.", "id")
    keys.db_models.apply(ident, None)
    keys.invalidate("model", ident)  # (in shared mode: every instance now, not at its next poll)
    return {"message": f"Model: {ident} deleted successfully"}


async def _reload(keys: Any, store: Any, ident: str) -> dict:
    """Serve the stored row here at once (the others follow the change feed); its answer."""
    row = await store.run(store.get, "model", ident)
    if row is None:  # (deleted meanwhile by another process)
        raise Refused(400, f"Model with id={ident} not found in db.", "model_info.id")
    keys.db_models.apply(ident, row)
    keys.invalidate("model", ident)
    return public(row)


#: path → (method, handler), merged into the management routes.
ROUTES = {
    "/model/new": ("POST", model_new),
    "/model/update": ("POST", model_update),
    "/model/delete": ("POST", model_delete),
}
#: The body fields each route uses.
ACCEPTS = {
    "/model/new": frozenset({"model_name", "litellm_params", "model_info"}),
    "/model/update": frozenset({"model_name", "litellm_params", "model_info", "id"}),
    "/model/delete": frozenset({"id"}),
}
