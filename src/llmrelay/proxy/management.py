"""The management API in LiteLLM's shapes: keys, teams, users, end users (customers), budget
tiers, spend, models (proxy/model_management.py).

Every route needs the master key, except ``GET /key/info`` for the caller's own key.
Keys are shown once (in the answer to ``/key/generate``, ``/key/regenerate``, ``/user/new``);
afterwards a key is named by its SHA-256 (``token``) or its ``key_alias``.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import parse_qs

import orjson

from ..storage import StoreConflict, StoreError
from ..storage.base import member_id
from . import errors, model_management
from .budgets import DurationError, model_budget, model_resets, next_reset, parse_duration
from .keys import KeyManager, Principal, hash_key, key_name, new_key

__all__ = ["handle", "is_management_path", "logged_path", "routes"]

log = logging.getLogger("llmrelay.proxy.management")

Answer = tuple  # (status, body bytes, extra headers | None)

#: (``spend`` too: LiteLLM's admin scripts reset a spend with ``{"spend": 0}``)
_BUDGET_FIELDS = ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit",
                  "max_parallel_requests", "models", "metadata", "tags", "blocked", "spend")
_KEY_FIELDS = _BUDGET_FIELDS + ("key_alias", "team_id", "user_id", "model_max_budget", "model_rpm_limit",
                                "model_tpm_limit", "expires", "budget_id")
_TEAM_FIELDS = _BUDGET_FIELDS + ("team_alias", "members", "model_rpm_limit", "model_tpm_limit")
_USER_FIELDS = _BUDGET_FIELDS + ("user_email", "user_role", "teams")
_CUSTOMER_FIELDS = ("alias", "max_budget", "soft_budget", "budget_duration", "blocked", "metadata", "spend",
                    "rpm_limit", "tpm_limit", "max_parallel_requests", "budget_id")
#: A budget tier's fields (LiteLLM's ``/budget/new``).
_TIER_FIELDS = ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests",
                "model_max_budget")
_TIMES = ("expires", "budget_reset_at", "created_at", "updated_at", "model_reset_at")


class _Bad(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


def routes() -> list[tuple[str, str]]:
    """(path, method) of every management route (for the OpenAPI document)."""
    return [(path, method) for path, (method, _) in _ROUTES.items()]


def is_management_path(path: str) -> bool:
    return path.startswith(("/key/", "/team/", "/user/", "/customer/", "/end_user/", "/budget/", "/spend/",
                            "/global/spend/")) or path.rstrip("/") in model_management.ROUTES


_SECRET_IN_PATH = re.compile(r"sk-[^/]*|[0-9a-fA-F]{64}")


def logged_path(path: str) -> str:
    """``path`` as the access log may show it: LiteLLM's ``/key/{key}/regenerate`` (and any
    unknown management path) carries a key or its hash, which no log line may."""
    if path.rstrip("/") in _ROUTES:
        return path
    if path.startswith("/key/") and path.endswith("/regenerate"):
        return "/key/{key}/regenerate"
    return _SECRET_IN_PATH.sub("[REDACTED]", path)


async def handle(keys: KeyManager, who: Principal, method: str, path: str, query: bytes, body: bytes) -> Answer:
    """Answer one management request (the caller is already authenticated)."""
    if path.startswith("/key/") and path.endswith("/regenerate") and path.count("/") == 3:
        route, params = "/key/regenerate", {"key": path.split("/")[2]}
    else:
        route, params = path.rstrip("/"), {}
    entry = _ROUTES.get(route)
    if entry is None:
        return _error(404, f"Unknown path: {method} {path}")
    want, fn = entry
    if method != want:
        return _error(405, f"Method not allowed; use {want}.")
    try:
        if want == "GET":
            params.update({k: v[-1] for k, v in parse_qs(query.decode("latin-1")).items()})
        else:
            data = orjson.loads(body) if body.strip() else {}
            if type(data) is not dict:
                raise _Bad(400, "The request body must be a JSON object.")
            params.update(data)
        if not who.master and not (route == "/key/info" and _is_own_key(who, params)):
            if route == "/key/info":  # another key's info: forbidden (403), as in LiteLLM
                return _error(403, "You are not allowed to access this key's info: a key can read only its "
                                   "own /key/info.", type_="auth_error")
            # (LiteLLM: "Authentication Error, Only proxy admin can be used to generate, delete, …")
            return _error(401, f"Authentication Error, Only the master key (proxy admin) can use {route}; a key can "
                               "read only its own /key/info.", type_="auth_error")
        if route in model_management.ROUTES and not model_management.enabled(keys):
            # (LiteLLM's answer, before any database is opened or made)
            return _error(500, model_management.DISABLED_MESSAGE)
        store = await keys.ensure_store()
        result = await fn(keys, store, who, params)
        ignored = _ignored(route, params) if want == "POST" else None
        if ignored:
            # (names only: a value may be a secret)
            log.warning("%s: ignored field(s) llmrelay does not implement: %s", route, ", ".join(ignored))
            if isinstance(result, dict):
                result = {**result, "llmrelay_ignored_fields": ignored}
    except (_Bad, model_management.Refused) as exc:
        return _error(exc.status, str(exc), param=exc.param)
    except orjson.JSONDecodeError as exc:
        return _error(400, f"The request body is not valid JSON: {exc}")
    except StoreError as exc:
        return _error(503, f"The key database is unavailable: {exc}", extra=[(b"retry-after", b"1")])
    return 200, orjson.dumps(result, default=str), None


def _error(status: int, message: str, *, param: str | None = None, type_: str | None = None,
           extra: list | None = None) -> Answer:
    return status, errors.error_json(message, status, param=param, type=type_), extra


def _is_own_key(who: Principal, params: dict) -> bool:
    asked = params.get("key")
    return asked is None or _token_of(asked) == who.token


def _token_of(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise _Bad(400, "'key' must be a key (sk-…) or its token (the key's SHA-256).", "key")
    return hash_key(key) if key.startswith("sk-") or len(key) != 64 else key


# ====================================================================== validation
#: The largest whole number stored (a 64-bit column).
_MAX_WHOLE = 2**63 - 1


def _number(name: str, value: Any, integer: bool = False) -> Any:
    """A finite number ≥ 0 (a whole one for ``integer``) or None; a number in a text (``"10"``)
    is read as LiteLLM's pydantic models read it; anything else is a 400 naming ``name``."""
    if value is None:
        return None
    sent = value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
            or (integer and (value != int(value) or value > _MAX_WHOLE))):
        raise _Bad(400, f"{name} must be a {'whole ' if integer else ''}number ≥ 0, got {sent!r}",
                   name.split(" ", 1)[0])
    return int(value) if integer else float(value)


def _fields(params: dict, allowed: tuple[str, ...], now: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in allowed:
        if name not in params:
            continue
        value = params[name]
        if name in ("max_budget", "soft_budget", "spend"):
            value = _number(name, value)
            if name == "soft_budget":
                out["soft_budget_cooldown"] = False  # a new soft budget alerts again
        elif name in ("rpm_limit", "tpm_limit", "max_parallel_requests"):
            value = _number(name, value, integer=True)
        elif name == "budget_duration":
            if value is not None:
                try:
                    parse_duration(value)
                except DurationError as exc:
                    raise _Bad(400, f"budget_duration: {exc}", name) from None
                out["budget_reset_at"] = next_reset(value, now)
            else:
                out["budget_reset_at"] = None
        elif name in ("models", "tags", "teams"):
            if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                raise _Bad(400, f"{name} must be a list of strings", name)
        elif name in ("metadata", "model_max_budget", "model_rpm_limit", "model_tpm_limit"):
            if value is not None and not isinstance(value, dict):
                raise _Bad(400, f"{name} must be an object", name)
            if name in ("model_rpm_limit", "model_tpm_limit"):
                if value is not None:
                    value = {str(model): _number(f"{name} of {model!r}", limit, integer=True)
                             for model, limit in value.items()}
            if name == "model_max_budget":
                try:
                    for entry in (value or {}).values():
                        limit = model_budget(entry)[0]
                        if limit is not None and not (math.isfinite(limit) and limit >= 0):
                            raise ValueError(f"a budget must be a finite number ≥ 0, got {limit!r}")
                    resets = model_resets(value, now)
                except (DurationError, TypeError, ValueError) as exc:
                    raise _Bad(400, f"model_max_budget: {exc} (use a number or "
                               '{"budget_limit": 10, "time_period": "1d"})', name) from None
                # each model with its own time_period starts its first period now
                out["model_budget_reset_at"] = resets
                out["model_reset_at"] = min(resets.values()) if resets else None
        elif name == "blocked":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                value = value.lower() == "true"  # (as LiteLLM's pydantic models read it)
            if value is not None and not isinstance(value, bool):
                raise _Bad(400, f"blocked must be true or false, got {value!r}", name)
            value = bool(value)
        elif name == "expires":
            continue  # with duration, below
        elif name == "members":
            if value is not None and (not isinstance(value, list) or not all(isinstance(m, dict) for m in value)):
                raise _Bad(400, "members must be a list of objects ({'user_id': …, 'role': …})", name)
        elif value is not None and not isinstance(value, str):
            raise _Bad(400, f"{name} must be a string, got {value!r}", name)
        out[name] = value
    if "expires" in allowed and ("duration" in params or "expires" in params):
        out["expires"] = _expiry(params, now)
    return out


def _count(params: dict, name: str, default: int, most: int) -> int:
    """A page number, page size or row limit of a request: a whole number ``"10"`` or 10,
    brought into 1…``most``; ``default`` when not sent; a 400 naming ``name`` otherwise."""
    value = params.get(name)
    if value is None or value == "":
        return default
    return min(most, max(1, _number(name, value, integer=True)))


def _expiry(params: dict, now: float) -> float | None:
    """When a key expires (a Unix time; None: never), from LiteLLM's ``duration`` (``"30d"``,
    counted from ``now``) or our ``expires`` (an ISO-8601 date and time; naive = UTC).

    Both may be sent when one of them is null (a LiteLLM answer sent back has both): the other
    one decides. Both set is a 400 — which of the two was meant cannot be known."""
    duration, expires = params.get("duration"), params.get("expires")
    if duration is not None and expires is not None:
        raise _Bad(400, "send either 'duration' (e.g. \"30d\", counted from now) or 'expires' (an ISO-8601 "
                        "date and time), not both", "expires")
    if expires is not None:
        return _timestamp("expires", expires)
    if duration is None:
        return None  # (null: never expires)
    try:
        return next_reset(duration, now)
    except DurationError as exc:
        raise _Bad(400, f"duration: {exc}", "duration") from None


def _timestamp(name: str, value: Any) -> float:
    """An ISO-8601 date and time (``2030-01-31T12:00:00Z``, ``…+02:00``; without an offset:
    UTC) as a Unix time; a 400 naming ``name`` for anything else."""
    at = None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text[-1] in "zZ":
            text = text[:-1] + "+00:00"
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            at = None
    if at is None:
        raise _Bad(400, f"{name} must be an ISO-8601 date and time (e.g. \"2030-01-31T12:00:00Z\"; without an "
                        f"offset it is UTC) or null (never), got {value!r}", name)
    if at.tzinfo is None or at.tzinfo.utcoffset(at) is None:
        at = at.replace(tzinfo=timezone.utc)
    try:
        return at.timestamp()
    except (OverflowError, ValueError, OSError):
        raise _Bad(400, f"{name} is out of range: {value!r}", name) from None


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def _public(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in _TIMES:
        if name in out:
            out[name] = _iso(out[name])
    if out.get("model_budget_reset_at"):
        out["model_budget_reset_at"] = {m: _iso(t) for m, t in out["model_budget_reset_at"].items()}
    return out


def _key_info(row: dict[str, Any]) -> dict[str, Any]:
    out = _public(row)
    out["token"] = row["token"]
    if "model_spend" in out and out["model_spend"] is None:
        out["model_spend"] = {}  # as LiteLLM shows a key that has spent nothing yet
    return out


# ====================================================================== keys
#: What ``litellm_settings.default_key_generate_params`` fills in when a request leaves it
#: unset (``models`` when empty, ``metadata`` when empty), as LiteLLM's ``/key/generate``.
_DEFAULTED = ("max_budget", "user_id", "team_id", "max_parallel_requests", "tpm_limit", "rpm_limit",
              "budget_duration", "duration", "models", "metadata")
#: What ``litellm_settings.upperbound_key_generate_params`` bounds (and fills in when unset).
_BOUNDED = ("max_budget", "max_parallel_requests", "tpm_limit", "rpm_limit", "budget_duration", "duration")


def _key_params(keys: KeyManager, params: dict, generate: bool) -> dict:
    """``params`` of ``/key/generate`` (``generate``) or ``/key/update`` with the config's
    ``default_key_generate_params`` and ``upperbound_key_generate_params`` applied, as LiteLLM:
    an unset field takes its default, else its upper bound (on generate only); a value over
    its upper bound is a 400 naming the field."""
    settings = keys.key_generate_params
    defaults = settings.get("default_key_generate_params") or {}
    bounds = settings.get("upperbound_key_generate_params") or {}
    if not (defaults or bounds):
        return params
    out = dict(params)
    # (our `expires` sets the expiry as `duration` does: neither is filled in beside it)
    fixed = {"duration"} if params.get("expires") is not None else set()
    if generate:
        for name in _DEFAULTED:
            if name in defaults and name not in fixed and out.get(name) in (None, [], {}):
                out[name] = defaults[name]
    for name in _BOUNDED:
        bound = bounds.get(name)
        if bound is None or name in fixed:
            continue
        if out.get(name) is None:
            if generate:
                out[name] = bound
            continue
        if name.endswith("duration"):
            try:
                over = next_reset(out[name], 0) > next_reset(bound, 0)
            except DurationError as exc:
                raise _Bad(400, f"{name}: {exc}", name) from None
        else:
            over = _number(name, out[name]) > float(bound)
        if over:
            raise _Bad(400, f"{name} is over max limit set in config - user_value={out[name]}; max_value={bound}",
                       name)
    return out


async def _key_generate(keys: KeyManager, store, who, params: dict) -> dict:
    now = time.time()
    params = _key_params(keys, params, True)
    raw = params.get("key") or new_key()
    if not isinstance(raw, str) or not raw.startswith("sk-") or len(raw) < 8:
        raise _Bad(400, "a custom 'key' must start with 'sk-' and be at least 8 characters", "key")
    row = {"token": hash_key(raw), "key_name": key_name(raw), **_fields(params, _KEY_FIELDS, now)}
    await _link_tier(store, row, None)
    await _unique_alias(store, row.get("key_alias"), row["token"])
    try:
        await store.run(store.insert, "key", row)
    except StoreConflict:
        raise _Bad(400, "this key already exists", "key") from None
    keys.invalidate("key", row["token"])
    saved = await store.run(store.get, "key", row["token"])
    return {**await _with_tier(store, _key_info(saved)), "key": raw, "token_id": row["token"]}


async def _unique_alias(store, alias: Any, token: str) -> None:
    """A key alias names one key (LiteLLM refuses a second key with the same alias)."""
    if alias:
        if any(r["token"] != token for r in await store.run(store.find, "key", {"key_alias": alias}, 2)):
            raise _Bad(400, f"Unique key aliases across all keys are required. Key alias '{alias}' is "
                            "already used by another key.", "key_alias")


async def _link_tier(store, fields: dict, current: dict | None) -> None:
    """``fields`` link a key or end user to a budget tier (``budget_id``): the tier must exist
    (400 naming ``budget_id`` otherwise), and a row without a budget period of its own starts
    the tier's period now (``current``: the row before an update, None for a new row)."""
    tier_id = fields.get("budget_id")
    if not tier_id:
        return
    tier = await store.run(store.get, "budget", tier_id)
    if tier is None:
        raise _Bad(400, f"no budget tier {tier_id!r}: create it with /budget/new first", "budget_id")
    current = current or {}
    if "budget_duration" in fields:
        own_period = fields["budget_duration"]
    elif current.get("budget_reset_at") is not None:
        return  # (its period runs already)
    else:
        own_period = current.get("budget_duration")
    if tier.get("budget_duration") and not own_period:
        fields["budget_reset_at"] = next_reset(tier["budget_duration"], time.time())


async def _with_tier(store, out: dict[str, Any]) -> dict[str, Any]:
    """A key or end user as LiteLLM answers it: its budget tier as ``litellm_budget_table``."""
    tier = await store.run(store.get, "budget", out["budget_id"]) if out.get("budget_id") else None
    out["litellm_budget_table"] = _public(tier) if tier is not None else None
    return out


async def _find_key(store, params: dict) -> str:
    if params.get("key") is not None:
        return _token_of(params["key"])
    if params.get("key_alias"):
        found = await store.run(store.find, "key", {"key_alias": params["key_alias"]}, 2)
        if len(found) == 1:
            return found[0]["token"]
    raise _Bad(404, "no such key (send 'key': the key or its token)", "key")


async def _key_update(keys: KeyManager, store, who, params: dict) -> dict:
    params = _key_params(keys, params, False)
    token = await _find_key(store, params)
    fields = _fields(params, _KEY_FIELDS, time.time())
    temp = _temp_budget(params)
    current = await store.run(store.get, "key", token) if temp is not None or fields.get("budget_id") else None
    if temp is not None:  # (kept in the key's metadata, as LiteLLM keeps it)
        metadata = fields["metadata"] if "metadata" in fields else (current or {}).get("metadata")
        fields["metadata"] = {**(metadata or {}), **temp}
    if params.get("key") is not None:  # (found by its alias: the alias is its own)
        await _unique_alias(store, fields.get("key_alias"), token)
    if fields.get("budget_id"):
        await _link_tier(store, fields, current)
    if "spend" in fields:
        await keys.spend.forget("key", token)
    if not await store.run(store.update, "key", token, fields):
        raise _Bad(404, "no such key", "key")
    row = await store.run(store.get, "key", token)
    await _spend_set(keys, "key", token, fields, row)
    keys.invalidate("key", token, spend_set="spend" in fields)
    info = await _with_tier(store, _key_info(row))
    return {"key": params["key"], **info} if params.get("key") else info  # LiteLLM echoes the key sent


def _temp_budget(params: dict) -> dict | None:
    """LiteLLM's temporary budget increase of ``/key/update``: ``temp_budget_increase`` (added to
    the key's ``max_budget``) until ``temp_budget_expiry`` (an ISO-8601 date or time; UTC
    without an offset); one without the other is a 400."""
    increase, expiry = params.get("temp_budget_increase"), params.get("temp_budget_expiry")
    if increase is None and expiry is None:
        return None
    if increase is None or expiry is None:
        missing = "temp_budget_expiry" if expiry is None else "temp_budget_increase"
        raise _Bad(400, "temp_budget_increase and temp_budget_expiry must be set together", missing)
    return {"temp_budget_increase": _number("temp_budget_increase", increase),
            "temp_budget_expiry": _iso(_timestamp("temp_budget_expiry", expiry))}


async def _key_delete(keys: KeyManager, store, who, params: dict) -> dict:
    sent = {_token_of(k): k for k in params.get("keys") or ()}
    tokens = list(sent)
    for alias in params.get("key_aliases") or ():
        tokens += [r["token"] for r in await store.run(store.find, "key", {"key_alias": alias}, 1000)]
    if not tokens:
        raise _Bad(400, "send 'keys': [key or token, …] or 'key_aliases'", "keys")
    gone = await store.run(store.delete, "key", tokens)
    for token in tokens:
        keys.invalidate("key", token)
    if not gone:
        raise _Bad(404, "none of these keys exist", "keys")
    return {"deleted_keys": [sent.get(t, t) for t in gone]}  # as sent (LiteLLM's); by alias: tokens


async def _key_regenerate(keys: KeyManager, store, who, params: dict) -> dict:
    token = await _find_key(store, params)
    raw = params.get("new_key") or new_key()
    fields = {"key_name": key_name(raw), **_fields(params, _KEY_FIELDS, time.time())}
    if fields.get("budget_id"):
        await _link_tier(store, fields, await store.run(store.get, "key", token))
    await keys.spend.rename_key(token, hash_key(raw))  # (the old key's requests still to be charged)
    if not await store.run(store.update, "key", token, fields, hash_key(raw)):
        raise _Bad(404, "no such key", "key")
    keys.invalidate("key", token)
    saved = await store.run(store.get, "key", hash_key(raw))
    return {**await _with_tier(store, _key_info(saved)), "key": raw, "token_id": saved["token"]}


async def _key_info_route(keys: KeyManager, store, who, params: dict) -> dict:
    token = _token_of(params["key"]) if params.get("key") else who.token
    if token is None:
        raise _Bad(400, "send ?key=<key or token>", "key")
    row = await store.run(store.get, "key", token)
    if row is None:
        raise _Bad(404, "no such key", "key")
    row["spend"] = float(row["spend"]) + keys.spend.pending_cost("key", token)
    return {"key": token, "info": await _with_tier(store, _key_info(row))}


async def _page(store, kind: str, params: dict, where_keys: tuple[str, ...],
                newest_first: bool = False) -> tuple[list, int, int, int]:
    page = _count(params, "page", 1, _MAX_WHOLE)
    size = _count(params, "size", 100, 1000)
    where = {k: params[k] for k in where_keys if params.get(k)}
    rows = await store.run(store.find, kind, where, size, (page - 1) * size, newest_first)
    total = await store.run(store.count, kind, where)
    return rows, total, page, max(1, -(-total // size))


async def _key_list(keys: KeyManager, store, who, params: dict) -> dict:
    # newest first, as LiteLLM's (its sort_order=asc gives the oldest first)
    newest = str(params.get("sort_order") or "desc").lower() != "asc"
    rows, total, page, pages = await _page(store, "key", params, ("user_id", "team_id", "key_alias"), newest)
    full = str(params.get("return_full_object", "")).lower() == "true"
    return {"keys": [_key_info(r) if full else r["token"] for r in rows], "total_count": total,
            "current_page": page, "total_pages": pages}


# ====================================================================== teams, users, customers
def _team_params(params: dict) -> dict:
    """LiteLLM's ``members_with_roles`` (``[{"role", "user_id"}]``, what its docs send to
    ``/team/new`` and ``/team/update``) is our ``members``, each member as ``/team/member_add``
    stores it."""
    given = params.get("members_with_roles")
    if given is None:
        return params
    if not isinstance(given, list) or not all(isinstance(m, dict) and (m.get("user_id") or m.get("user_email"))
                                             for m in given):
        raise _Bad(400, "members_with_roles must be a list of {'user_id': …, 'role': 'user' | 'admin'}",
                   "members_with_roles")
    members = [_member(m) for m in given]
    other = params.get("members")
    # (both: a team's answer sent back, where they are the same list — or LiteLLM's, where
    # `members` is its older, empty field)
    if other not in (None, []) and (not isinstance(other, list) or [_member(m) if isinstance(m, dict) else m
                                                                     for m in other] != members):
        raise _Bad(400, "send either 'members_with_roles' (LiteLLM's name) or 'members', not two different lists",
                   "members_with_roles")
    return {**params, "members": members}


def _member(given: dict) -> dict:
    return {"user_id": given.get("user_id"), "user_email": given.get("user_email"), "role": given.get("role") or "user"}


def _members(row: dict[str, Any]) -> list[dict]:
    """A team's members (``{"user_id", "user_email", "role"}`` each)."""
    return [m for m in (row.get("members") or []) if isinstance(m, dict)]


def _team_public(row: dict[str, Any]) -> dict[str, Any]:
    """A team as LiteLLM answers it: its members also as ``members_with_roles``."""
    out = _public(row)
    out["members_with_roles"] = _members(row)
    return out


async def _team_new(keys: KeyManager, store, who, params: dict) -> dict:
    team_id = params.get("team_id") or str(uuid.uuid4())
    row = {"team_id": str(team_id), **_fields(_team_params(params), _TEAM_FIELDS, time.time())}
    try:
        await store.run(store.insert, "team", row)
    except StoreConflict:
        raise _Bad(400, f"team {team_id!r} already exists", "team_id") from None
    keys.invalidate("team", row["team_id"])
    return _team_public(await store.run(store.get, "team", row["team_id"]))


async def _update(keys: KeyManager, store, kind: str, id_name: str, params: dict, allowed: tuple) -> dict:
    ident = params.get(id_name)
    if not isinstance(ident, str) or not ident:
        raise _Bad(400, f"send {id_name!r}", id_name)
    fields = _fields(params, allowed, time.time())
    if fields.get("budget_id"):
        current = await store.run(store.get, kind, ident)
        if current is not None:
            await _link_tier(store, fields, current)
    if "spend" in fields:
        await keys.spend.forget(kind, ident)
    if not await store.run(store.update, kind, ident, fields):
        raise _Bad(404, f"no such {kind.replace('_', ' ')} {ident!r}", id_name)
    row = await store.run(store.get, kind, ident)
    await _spend_set(keys, kind, ident, fields, row)
    keys.invalidate(kind, ident, spend_set="spend" in fields)
    return _public(row)


async def _spend_set(keys: KeyManager, kind: str, ident: str, fields: dict, row: dict | None) -> None:
    """An update that set a spend: in shared mode, the shared counter too (before the change is
    announced to the other instances). The cost this instance had queued for the row was dropped
    before the update (:meth:`SpendQueue.forget`): spend from before a reset is not added to it."""
    if "spend" in fields and row is not None and keys.shared is not None:
        await keys.shared.set_spend(kind, ident, row)


async def _delete(keys: KeyManager, store, kind: str, ids: Any, name: str) -> dict:
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise _Bad(400, f"send {name!r}: a list of ids", name)
    gone = await store.run(store.delete, kind, ids)
    for ident in ids:
        keys.invalidate(kind, ident)
    if not gone:
        raise _Bad(404, f"none of these {name} exist", name)
    return {"deleted": gone}


async def _team_update(keys, store, who, params):
    team = await _update(keys, store, "team", "team_id", _team_params(params), _TEAM_FIELDS)
    team["members_with_roles"] = _members(team)
    return team


async def _team_members(keys: KeyManager, store, who, params: dict, add: bool) -> dict:
    """``/team/member_add`` (``member``: one ``{"user_id", "role"}`` or a list) and
    ``/team/member_delete`` (``user_id``): the team's ``members`` list, as LiteLLM's routes."""
    team_id = params.get("team_id")
    row, _ = await _owner(store, "team", "team_id", team_id)
    members = _members(row)
    budget = _member_budget(params)
    if add:
        given = params.get("member")
        given = given if isinstance(given, list) else [given]
        if not given or not all(isinstance(m, dict) and (m.get("user_id") or m.get("user_email")) for m in given):
            raise _Bad(400, "send 'member': {'user_id': …, 'role': 'user' | 'admin'} (or a list of them)", "member")
        changed = [_member(m) for m in given]
        ids = {m["user_id"] for m in changed}
        members = [m for m in members if m.get("user_id") not in ids] + changed
    else:
        gone = params.get("user_id")
        if not gone:
            raise _Bad(400, "send 'user_id'", "user_id")
        members = [m for m in members if m.get("user_id") != gone]
    await _update(keys, store, "team", "team_id", {"team_id": team_id, "members": members}, ("members",))
    # the members' own `teams`, as LiteLLM keeps both sides (users that exist; no user is created)
    for user_id in ([m["user_id"] for m in changed] if add else [params["user_id"]]):
        if user_id:
            await _membership(keys, store, team_id, user_id, budget, add)
        user = await store.run(store.get, "user", user_id) if user_id else None
        if user is not None:
            teams = set(user.get("teams") or [])
            teams = teams | {team_id} if add else teams - {team_id}
            await _update(keys, store, "user", "user_id", {"user_id": user_id, "teams": sorted(teams)}, ("teams",))
    team = _public(await store.run(store.get, "team", team_id))
    return {**team, "team_id": team_id, "members_with_roles": members}


def _member_budget(params: dict) -> dict | None:
    """LiteLLM's ``max_budget_in_team`` of a member route (and the period we add,
    ``budget_duration_in_team``), as the membership row's fields; None when not sent."""
    if "max_budget_in_team" not in params and "budget_duration_in_team" not in params:
        return None
    fields = {}
    if "max_budget_in_team" in params:
        fields["max_budget"] = _number("max_budget_in_team", params["max_budget_in_team"])
    if "budget_duration_in_team" in params:
        duration = params["budget_duration_in_team"]
        try:
            fields["budget_reset_at"] = next_reset(duration, time.time()) if duration is not None else None
        except DurationError as exc:
            raise _Bad(400, f"budget_duration_in_team: {exc}", "budget_duration_in_team") from None
        fields["budget_duration"] = duration
    return fields


async def _membership(keys: KeyManager, store, team_id: str, user_id: str, budget: dict | None, add: bool) -> None:
    """A user's membership row in a team (its spend and its budget there): made by
    ``/team/member_add``, its budget set by it and ``/team/member_update``, gone with
    ``/team/member_delete``."""
    ident = member_id(team_id, user_id)
    if not add:
        await store.run(store.delete, "team_member", [ident])
    elif await store.run(store.get, "team_member", ident) is None:
        try:
            await store.run(store.insert, "team_member",
                            {"member_id": ident, "team_id": team_id, "user_id": user_id, **(budget or {})})
        except StoreConflict:  # (made meanwhile)
            if budget:
                await store.run(store.update, "team_member", ident, budget)
    elif budget:
        await store.run(store.update, "team_member", ident, budget)
    keys.invalidate("team_member", ident)


async def _memberships(store, team_id: str) -> list[dict]:
    """LiteLLM's ``team_memberships`` of ``/team/info``: each member's spend and budget in the team."""
    rows = await store.run(store.find, "team_member", {"team_id": team_id}, 1000)
    return [{"team_id": r["team_id"], "user_id": r["user_id"], "spend": r["spend"],
             "litellm_budget_table": {"max_budget": r["max_budget"], "budget_duration": r["budget_duration"]}
             if r["max_budget"] is not None or r["budget_duration"] is not None else None} for r in rows]


async def _team_member_add(keys, store, who, params):
    return await _team_members(keys, store, who, params, True)


async def _team_member_delete(keys, store, who, params):
    return await _team_members(keys, store, who, params, False)


async def _team_member_update(keys: KeyManager, store, who, params: dict) -> dict:
    """LiteLLM's ``/team/member_update`` (``team_id``, ``user_id`` or ``user_email``, ``role``):
    a member's role; 404 when the user is not a member."""
    team_id = params.get("team_id")
    row, _ = await _owner(store, "team", "team_id", team_id)
    user_id, email = params.get("user_id"), params.get("user_email")
    if not user_id and not email:
        raise _Bad(400, "send 'user_id' (or 'user_email') of the member", "user_id")
    role = params.get("role")
    if role is not None and role not in ("admin", "user"):
        raise _Bad(400, f"role must be 'admin' or 'user', got {role!r}", "role")
    members = _members(row)
    found = [m for m in members if (user_id and m.get("user_id") == user_id)
             or (not user_id and m.get("user_email") == email)]
    if not found:
        raise _Bad(404, f"{user_id or email!r} is not a member of team {team_id!r}", "user_id")
    budget = _member_budget(params)
    if role is not None:
        found[0]["role"] = role
        await _update(keys, store, "team", "team_id", {"team_id": team_id, "members": members}, ("members",))
    if budget is not None and found[0].get("user_id"):
        await _membership(keys, store, team_id, found[0]["user_id"], budget, True)
    return {"team_id": team_id, "user_id": found[0].get("user_id"), "user_email": found[0].get("user_email"),
            "role": found[0]["role"]}


async def _team_models(keys: KeyManager, store, who, params: dict, add: bool) -> dict:
    """LiteLLM's ``/team/model/add`` and ``/team/model/delete`` (``team_id``, ``models``): the
    team's allow-list with those model names added or taken out."""
    team_id = params.get("team_id")
    row, _ = await _owner(store, "team", "team_id", team_id)
    models = params.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise _Bad(400, "send 'models': a list of model names", "models")
    current = list(row.get("models") or [])
    current = [*current, *(m for m in dict.fromkeys(models) if m not in current)] if add else \
        [m for m in current if m not in models]
    team = await _update(keys, store, "team", "team_id", {"team_id": team_id, "models": current}, ("models",))
    team["members_with_roles"] = _members(team)
    return team


async def _team_model_add(keys, store, who, params):
    return await _team_models(keys, store, who, params, True)


async def _team_model_delete(keys, store, who, params):
    return await _team_models(keys, store, who, params, False)


async def _key_block(keys, store, who, params):
    return await _key_update(keys, store, who, {"key": params.get("key"), "blocked": True})


async def _key_unblock(keys, store, who, params):
    return await _key_update(keys, store, who, {"key": params.get("key"), "blocked": False})


async def _team_block(keys, store, who, params):
    """LiteLLM's ``/team/block`` (``team_id``): the team's keys are refused (401)."""
    return await _update(keys, store, "team", "team_id", {"team_id": params.get("team_id"), "blocked": True},
                         ("blocked",))


async def _team_unblock(keys, store, who, params):
    return await _update(keys, store, "team", "team_id", {"team_id": params.get("team_id"), "blocked": False},
                         ("blocked",))


async def _customer_blocked(keys: KeyManager, store, params: dict, blocked: bool) -> dict:
    """LiteLLM's ``/customer/block`` / ``/customer/unblock`` (``user_ids``); blocking an end user
    that does not exist yet creates it blocked, as LiteLLM's upsert."""
    ids = params.get("user_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise _Bad(400, "send 'user_ids': a list of end-user ids", "user_ids")
    for ident in ids:
        if not await store.run(store.update, "end_user", ident, {"blocked": blocked}) and blocked:
            try:
                await store.run(store.insert, "end_user", {"user_id": ident, "blocked": True})
            except StoreConflict:  # made meanwhile
                await store.run(store.update, "end_user", ident, {"blocked": True})
        keys.invalidate("end_user", ident)
    return {"blocked_users": ids} if blocked else {"unblocked_users": ids}


async def _customer_block(keys, store, who, params):
    return await _customer_blocked(keys, store, params, True)


async def _customer_unblock(keys, store, who, params):
    return await _customer_blocked(keys, store, params, False)


async def _team_delete(keys, store, who, params):
    return await _delete(keys, store, "team", params.get("team_ids"), "team_ids")


async def _owner(store, kind: str, id_name: str, ident: Any) -> tuple[dict, list[dict]]:
    """A team's or user's row and its keys; 404 if there is no such row."""
    row = await store.run(store.get, kind, ident) if isinstance(ident, str) and ident else None
    if row is None:
        raise _Bad(404, f"no such {kind.replace('_', ' ')} {ident!r}", id_name)
    if kind == "end_user":
        return row, []
    owned = await store.run(store.find, "key", {id_name: ident}, 1000)
    return row, [_key_info(k) for k in owned]


async def _team_info(keys: KeyManager, store, who, params: dict) -> dict:
    row, owned = await _owner(store, "team", "team_id", params.get("team_id"))
    return {"team_id": row["team_id"], "team_info": _team_public(row), "keys": owned,
            "team_memberships": await _memberships(store, row["team_id"])}


async def _team_list(keys: KeyManager, store, who, params: dict) -> list:
    rows, _, _, _ = await _page(store, "team", params, ())
    return [_team_public(r) for r in rows]


def _user_params(keys: KeyManager, params: dict) -> dict:
    """``params`` of a new user with the config's defaults, as LiteLLM's ``/user/new``: each
    field of ``default_internal_user_params`` the request leaves unset (or empty), then for a
    user whose ``user_role`` is ``internal_user`` an unset ``max_budget`` / ``budget_duration``
    from ``max_internal_user_budget`` / ``internal_user_budget_duration``."""
    settings = keys.internal_user_settings
    if not settings:
        return params
    out = dict(params)
    for name, value in (settings.get("default_internal_user_params") or {}).items():
        if out.get(name) in (None, [], {}):
            out[name] = value
    if out.get("user_role") == "internal_user":
        for name, setting in (("max_budget", "max_internal_user_budget"),
                              ("budget_duration", "internal_user_budget_duration")):
            if out.get(name) is None and settings.get(setting) is not None:
                out[name] = settings[setting]
    return out


async def _user_new(keys: KeyManager, store, who, params: dict) -> dict:
    now = time.time()
    params = _user_params(keys, params)
    user_id = str(params.get("user_id") or uuid.uuid4())
    fields = _fields(params, _USER_FIELDS, now)
    if params.get("auto_create_key", True):
        _expiry(params, now)  # (the key's: checked before the user is made)
    if params.get("team_id"):
        fields["teams"] = sorted(set(fields.get("teams") or []) | {params["team_id"]})
    try:
        await store.run(store.insert, "user", {"user_id": user_id, **fields})
    except StoreConflict:
        raise _Bad(400, f"user {user_id!r} already exists", "user_id") from None
    keys.invalidate("user", user_id)
    out = _public(await store.run(store.get, "user", user_id))
    if params.get("auto_create_key", True):
        key_params = {k: params[k] for k in ("models", "key_alias", "duration", "expires", "team_id", "metadata")
                      if k in params}
        made = await _key_generate(keys, store, who, {**key_params, "user_id": user_id})
        out["key"] = made["key"]
        out["token"] = made["token"]
        out["expires"] = made["expires"]  # (the key's, as LiteLLM's answer shows it)
    return out


async def _user_update(keys, store, who, params):
    """As LiteLLM's (an upsert): a user that does not exist yet is created with these fields
    (its tests reset "litellm-proxy-budget" this way); no key is made for it."""
    user_id = params.get("user_id")
    if isinstance(user_id, str) and user_id and await store.run(store.get, "user", user_id) is None:
        try:
            await store.run(store.insert, "user", {"user_id": user_id, **_fields(_user_params(keys, params),
                                                                                  _USER_FIELDS, time.time())})
        except StoreConflict:
            pass  # made meanwhile: update it below
        else:
            keys.invalidate("user", user_id)
            return _public(await store.run(store.get, "user", user_id))
    return await _update(keys, store, "user", "user_id", params, _USER_FIELDS)


async def _user_delete(keys, store, who, params):
    return await _delete(keys, store, "user", params.get("user_ids"), "user_ids")


async def _user_info(keys: KeyManager, store, who, params: dict) -> dict:
    row, owned = await _owner(store, "user", "user_id", params.get("user_id"))
    teams = [t for t in [await store.run(store.get, "team", t) for t in row.get("teams") or ()] if t]
    return {"user_id": row["user_id"], "user_info": _public(row), "keys": owned,
            "teams": [_team_public(t) for t in teams]}


async def _user_list(keys: KeyManager, store, who, params: dict) -> dict:
    """LiteLLM's ``GET /user/list?page=&page_size=``: one page of users and the counts."""
    size = _count(params, "size" if params.get("page_size") in (None, "") else "page_size", 25, 1000)
    rows, total, page, pages = await _page(store, "user", {**params, "size": size}, ("user_email", "user_role"))
    return {"users": [_public(r) for r in rows], "total": total, "page": page, "page_size": size,
            "total_pages": pages}


#: An end user's budget fields, which LiteLLM keeps in a budget row of its own and answers as
#: ``litellm_budget_table`` (null when the end user has none).
_CUSTOMER_BUDGET = ("max_budget", "soft_budget", "budget_duration", "budget_reset_at", "rpm_limit", "tpm_limit",
                    "max_parallel_requests")


async def _customer_public(store, row: dict[str, Any]) -> dict[str, Any]:
    return await _as_customer(store, _public(row))


async def _as_customer(store, out: dict[str, Any]) -> dict[str, Any]:
    """An end user (already :func:`_public`) as LiteLLM's ``/customer/info`` answers it: our
    columns (the budget fields at the top level too) and LiteLLM's ``litellm_budget_table`` (its
    budget tier when it has a ``budget_id``), ``allowed_model_region`` and ``default_model``
    (not implemented: always null)."""
    if out.get("budget_id"):
        await _with_tier(store, out)
    else:
        budget = {name: out.get(name) for name in _CUSTOMER_BUDGET}
        out["litellm_budget_table"] = budget if any(v is not None for v in budget.values()) else None
    out.setdefault("allowed_model_region", None)
    out.setdefault("default_model", None)
    return out


async def _customer_list(keys: KeyManager, store, who, params: dict) -> list:
    rows, _, _, _ = await _page(store, "end_user", params, ())
    return [await _customer_public(store, r) for r in rows]


async def _customer_new(keys: KeyManager, store, who, params: dict) -> dict:
    user_id = params.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise _Bad(400, "send 'user_id': the end user's id (the 'user' field of their requests)", "user_id")
    fields = _fields(params, _CUSTOMER_FIELDS, time.time())
    await _link_tier(store, fields, None)
    try:
        await store.run(store.insert, "end_user", {"user_id": user_id, **fields})
    except StoreConflict:
        raise _Bad(400, f"end user {user_id!r} already exists", "user_id") from None
    keys.invalidate("end_user", user_id)
    return await _customer_public(store, await store.run(store.get, "end_user", user_id))


async def _customer_update(keys, store, who, params):
    return await _as_customer(store, await _update(keys, store, "end_user", "user_id", params, _CUSTOMER_FIELDS))


async def _customer_delete(keys, store, who, params):
    return await _delete(keys, store, "end_user", params.get("user_ids"), "user_ids")


async def _customer_info(keys: KeyManager, store, who, params: dict) -> dict:
    row, _ = await _owner(store, "end_user", "end_user_id", params.get("end_user_id") or params.get("user_id"))
    return await _customer_public(store, row)


# ====================================================================== budget tiers
async def _budget_new(keys: KeyManager, store, who, params: dict) -> dict:
    """LiteLLM's ``/budget/new``: a named set of limits (``budget_id``; a new id when not sent)
    that keys and end users take with ``budget_id`` for every limit they leave unset."""
    budget_id = params.get("budget_id") or str(uuid.uuid4())
    if not isinstance(budget_id, str):
        raise _Bad(400, f"budget_id must be a string, got {budget_id!r}", "budget_id")
    try:
        await store.run(store.insert, "budget", {"budget_id": budget_id, **_fields(params, _TIER_FIELDS, time.time())})
    except StoreConflict:
        raise _Bad(400, f"Budget with id '{budget_id}' already exists.", "budget_id") from None
    return _public(await store.run(store.get, "budget", budget_id))


async def _budget_update(keys: KeyManager, store, who, params: dict) -> dict:
    """LiteLLM's ``/budget/update``: every key and end user of the tier takes the change."""
    budget_id = params.get("budget_id")
    if not isinstance(budget_id, str) or not budget_id:
        raise _Bad(400, "budget_id is required", "budget_id")
    if not await store.run(store.update, "budget", budget_id, _fields(params, _TIER_FIELDS, time.time())):
        raise _Bad(404, f"no budget tier {budget_id!r}", "budget_id")
    keys.invalidate("budget", budget_id)
    return _public(await store.run(store.get, "budget", budget_id))


async def _budget_info(keys: KeyManager, store, who, params: dict) -> list:
    """LiteLLM's ``POST /budget/info`` (``budgets``: a list of ids): the tiers that exist."""
    ids = params.get("budgets")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise _Bad(400, f"Specify list of budget id's to query. Passed in={ids!r}", "budgets")
    rows = [await store.run(store.get, "budget", ident) for ident in dict.fromkeys(ids)]
    return [_public(r) for r in rows if r is not None]


async def _budget_list(keys: KeyManager, store, who, params: dict) -> list:
    rows, _, _, _ = await _page(store, "budget", {"size": 1000, **params}, ())
    return [_public(r) for r in rows]


async def _budget_settings(keys: KeyManager, store, who, params: dict) -> list:
    """LiteLLM's ``GET /budget/settings?budget_id=``: each field with its type and value."""
    row = await store.run(store.get, "budget", params["budget_id"]) if params.get("budget_id") else None
    types = {"max_budget": "Float", "soft_budget": "Float", "budget_duration": "String", "rpm_limit": "Integer",
             "tpm_limit": "Integer", "max_parallel_requests": "Integer", "model_max_budget": "Object"}
    return [{"field_name": name, "field_type": types[name], "field_description": "",
             "field_value": (row or {}).get(name), "stored_in_db": True, "field_default_value": None}
            for name in _TIER_FIELDS]


async def _budget_delete(keys: KeyManager, store, who, params: dict) -> dict:
    """LiteLLM's ``/budget/delete`` (``id``). A tier that keys or end users still use is not
    deleted (400): their limits would be lifted without a word."""
    budget_id = params.get("id") if params.get("id") is not None else params.get("budget_id")
    if not isinstance(budget_id, str) or not budget_id:
        raise _Bad(400, "send 'id': the budget tier's id", "id")
    row = await store.run(store.get, "budget", budget_id)
    if row is None:
        raise _Bad(404, f"no budget tier {budget_id!r}", "id")
    users = [await store.run(store.count, kind, {"budget_id": budget_id}) for kind in ("key", "end_user")]
    if any(users):
        raise _Bad(400, f"budget tier {budget_id!r} is used by {users[0]} key(s) and {users[1]} end user(s); "
                        "move them to another tier (or set budget_id to null) first", "id")
    await store.run(store.delete, "budget", [budget_id])
    keys.invalidate("budget", budget_id)
    return _public(row)


# ====================================================================== spend
def _dates(params: dict) -> tuple[float | None, float | None]:
    def day(name: str) -> datetime | None:
        value = params.get(name)
        if not value:
            return None
        try:
            return datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise _Bad(400, f"{name} must be a date YYYY-MM-DD", name) from None

    start, end = day("start_date"), day("end_date")
    return (start.timestamp() if start else None), ((end + timedelta(days=1)).timestamp() if end else None)


#: LiteLLM's names of the spend filters (``/global/spend/report?internal_user_id=&customer_id=``).
_SPEND_FILTER_ALIASES = {"internal_user_id": "user_id", "customer_id": "end_user", "end_user_id": "end_user"}


def _spend_filters(params: dict) -> dict[str, Any]:
    filters = {name: params.get(name) for name in ("request_id", "user_id", "team_id", "end_user", "model_group")}
    for alias, name in _SPEND_FILTER_ALIASES.items():
        if params.get(alias) and not filters[name]:
            filters[name] = params[alias]
    if params.get("api_key"):
        filters["api_key"] = _token_of(params["api_key"])
    if params.get("model"):
        filters["model_group"] = params["model"]
    return filters


#: How many of the newest spend-log rows ``/spend/logs?request_id=<response id>`` looks through.
_RESPONSE_ID_SCAN = 10000


async def _spend_logs(keys: KeyManager, store, who, params: dict) -> list:
    start, end = _dates(params)
    limit = _count(params, "limit", 1000, 10000)
    filters = _spend_filters(params)
    rows = await store.run(store.spend_logs, filters, start, end, limit)
    if not rows and filters.get("request_id"):
        # LiteLLM's request_id is the response's id (chatcmpl-…): look for it among the newest
        # rows' response_id (a bounded scan; the gateway's own request id is the indexed one)
        wanted = filters.pop("request_id")
        recent = await store.run(store.spend_logs, filters, start, end, _RESPONSE_ID_SCAN)
        rows = [r for r in recent if (r.get("metadata") or {}).get("response_id") == wanted][:limit]
    for row in rows:
        messages = row.get("messages")
        if type(messages) is str:  # (stored as JSON text)
            try:
                row["messages"] = orjson.loads(messages)
            except orjson.JSONDecodeError:
                pass
        row["startTime"], row["endTime"] = _iso(row["start_time"]), _iso(row["end_time"])
        row["user"], row["request_tags"] = row.get("user_id"), row.get("tags") or []  # LiteLLM's names
    return rows


async def _spend_report(keys: KeyManager, store, who, params: dict) -> dict:
    from ..storage.base import SPEND_REPORT_GROUPS

    group_by = params.get("group_by") or "team"
    if group_by not in SPEND_REPORT_GROUPS:
        raise _Bad(400, f"group_by must be one of {', '.join(sorted(SPEND_REPORT_GROUPS))}", "group_by")
    start, end = _dates(params)
    rows = await store.run(store.spend_report, group_by, start, end, _spend_filters(params))
    return {"group_by": group_by, "start_date": params.get("start_date"), "end_date": params.get("end_date"),
            "total_spend": sum(r["spend"] for r in rows), "results": rows}


#: What each POST route reads from its body. Anything else a request carries (LiteLLM's fields
#: llmrelay does not implement, a misspelt name) is accepted — LiteLLM's admin scripts send many —
#: but never silently: with a value (not null, "", [], {} or false) it is named in the answer's
#: ``llmrelay_ignored_fields`` and in a log line.
_KEY_BODY = frozenset(_KEY_FIELDS + ("key", "duration"))
_USER_BODY = frozenset(_USER_FIELDS + ("user_id", "auto_create_key", "team_id", "key_alias", "duration", "expires"))
_CUSTOMER_BODY = frozenset(_CUSTOMER_FIELDS + ("user_id",))
_ACCEPTS: dict[str, frozenset[str]] = {
    "/key/generate": _KEY_BODY,
    "/key/update": _KEY_BODY | {"temp_budget_increase", "temp_budget_expiry"},
    "/key/regenerate": _KEY_BODY | {"new_key"},
    "/key/delete": frozenset({"keys", "key_aliases"}),
    "/key/block": frozenset({"key"}),
    "/key/unblock": frozenset({"key"}),
    "/team/new": frozenset(_TEAM_FIELDS + ("team_id", "members_with_roles")),
    "/team/update": frozenset(_TEAM_FIELDS + ("team_id", "members_with_roles")),
    "/team/delete": frozenset({"team_ids"}),
    "/team/block": frozenset({"team_id"}),
    "/team/unblock": frozenset({"team_id"}),
    "/team/member_add": frozenset({"team_id", "member", "max_budget_in_team", "budget_duration_in_team"}),
    "/team/member_delete": frozenset({"team_id", "user_id"}),
    "/team/member_update": frozenset({"team_id", "user_id", "user_email", "role", "max_budget_in_team",
                                      "budget_duration_in_team"}),
    "/team/model/add": frozenset({"team_id", "models"}),
    "/team/model/delete": frozenset({"team_id", "models"}),
    "/user/new": _USER_BODY,
    "/user/update": frozenset(_USER_FIELDS + ("user_id",)),
    "/user/delete": frozenset({"user_ids"}),
    "/customer/new": _CUSTOMER_BODY,
    "/customer/update": _CUSTOMER_BODY,
    "/customer/delete": frozenset({"user_ids"}),
    "/customer/block": frozenset({"user_ids"}),
    "/customer/unblock": frozenset({"user_ids"}),
    "/end_user/new": _CUSTOMER_BODY,
    "/budget/new": frozenset(_TIER_FIELDS + ("budget_id",)),
    "/budget/update": frozenset(_TIER_FIELDS + ("budget_id",)),
    "/budget/info": frozenset({"budgets"}),
    "/budget/delete": frozenset({"id", "budget_id"}),
    **model_management.ACCEPTS,
}


def _ignored(route: str, data: dict) -> list[str]:
    """The fields of a request body this route does not use that carry a value."""
    accepts = _ACCEPTS.get(route)
    if accepts is None:
        return []
    return sorted(k for k, v in data.items() if k not in accepts and v not in (None, "", [], {}, False))


_Handler = Callable[..., Any]
_ROUTES: dict[str, tuple[str, _Handler]] = {
    "/key/generate": ("POST", _key_generate),
    "/key/update": ("POST", _key_update),
    "/key/delete": ("POST", _key_delete),
    "/key/regenerate": ("POST", _key_regenerate),
    "/key/info": ("GET", _key_info_route),
    "/key/block": ("POST", _key_block),
    "/key/unblock": ("POST", _key_unblock),
    "/team/block": ("POST", _team_block),
    "/team/unblock": ("POST", _team_unblock),
    "/team/member_add": ("POST", _team_member_add),
    "/team/member_delete": ("POST", _team_member_delete),
    "/team/member_update": ("POST", _team_member_update),
    "/team/model/add": ("POST", _team_model_add),
    "/team/model/delete": ("POST", _team_model_delete),
    "/key/list": ("GET", _key_list),
    "/team/new": ("POST", _team_new),
    "/team/update": ("POST", _team_update),
    "/team/delete": ("POST", _team_delete),
    "/team/info": ("GET", _team_info),
    "/team/list": ("GET", _team_list),
    "/user/new": ("POST", _user_new),
    "/user/update": ("POST", _user_update),
    "/user/delete": ("POST", _user_delete),
    "/user/info": ("GET", _user_info),
    "/user/list": ("GET", _user_list),
    "/customer/list": ("GET", _customer_list),
    "/customer/new": ("POST", _customer_new),
    "/customer/update": ("POST", _customer_update),
    "/customer/delete": ("POST", _customer_delete),
    "/customer/info": ("GET", _customer_info),
    "/customer/block": ("POST", _customer_block),
    "/customer/unblock": ("POST", _customer_unblock),
    "/end_user/new": ("POST", _customer_new),
    "/end_user/info": ("GET", _customer_info),
    "/budget/new": ("POST", _budget_new),
    "/budget/update": ("POST", _budget_update),
    "/budget/info": ("POST", _budget_info),
    "/budget/list": ("GET", _budget_list),
    "/budget/settings": ("GET", _budget_settings),
    "/budget/delete": ("POST", _budget_delete),
    "/spend/logs": ("GET", _spend_logs),
    "/global/spend/report": ("GET", _spend_report),
    **model_management.ROUTES,
}
