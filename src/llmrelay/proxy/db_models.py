"""Models kept in the database (LiteLLM's ``general_settings.store_model_in_db``).

``/model/new``, ``/model/update`` and ``/model/delete`` (proxy/model_management.py) write
``llmrelay_models`` rows; every gateway process on the database serves them: each loads them at
start and follows the change feed (the key manager's poll, and in shared mode the Redis
broadcast) to add, replace or drop a deployment in its running Router and in everything the
gateway built from the config's deployments (``/v1/models``, the client-param policy, key
access groups, ``/v1/model/info``, the redaction of upstream hosts).

A row keeps its entry as given (``os.environ/NAME`` values unresolved); each process resolves and
validates it as a config ``model_list`` entry when it loads it. Config models are never touched.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .client_params import ClientParamPolicy
from .config import Deployment, validate_model_entry

__all__ = ["DbModels", "entry_of"]

log = logging.getLogger("llmrelay.proxy.models")

#: How long to wait before trying again to load the models when the database is unavailable.
RETRY_LOAD = 1.0


def entry_of(row: dict[str, Any]) -> dict[str, Any]:
    """The ``model_list`` entry a stored row holds (its ``model_info.id`` the row's id)."""
    info = dict(row.get("model_info") or {})
    info["id"] = row["model_id"]
    return {"model_name": row["model_name"], "litellm_params": dict(row.get("litellm_params") or {}),
            "model_info": info}


class DbModels:
    """The database's models in one gateway process (``app``: the :class:`~.app.ProxyApp`)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.enabled = bool(app.config.general_settings.get("store_model_in_db"))
        #: the config's deployments come first in ``config.deployments``, ours after them
        self.config_count = len(app.config.deployments)
        router = getattr(app.models, "router", None)
        #: ``model_info.id`` of the config's deployments (generated or given): never ours to change
        self.config_ids = frozenset(router.get_model_ids()) if router is not None else frozenset()
        self.rows: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, Deployment] = {}
        self.secrets: dict[str, list[str]] = {}
        self.loaded = False
        self._pending: set[str] = set()
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ validation
    def check(self, row: dict[str, Any]) -> tuple[Deployment, list[str]]:
        """(the deployment, its secret values) of a row, validated as a config entry and
        against the gateway's other deployments; :class:`ValueError` naming the problem."""
        ident = row["model_id"]
        if ident in self.config_ids:
            raise ValueError(f"model_info.id {ident!r} is a model of the config file; config models cannot be "
                             "added, changed or deleted through the API (edit the config file instead)")
        dep, warnings, secrets = validate_model_entry(entry_of(row), f"model {ident}")
        for warning in warnings:  # (key names only, never values)
            log.warning("%s", warning)
        others = [d for i, d in self.deployments.items() if i != ident]
        ClientParamPolicy([*self.app.config.deployments[:self.config_count], *others, dep])
        return dep, secrets

    # ------------------------------------------------------------------ changes
    def put(self, row: dict[str, Any], rebuild: bool = True) -> None:
        """Serve a row (added, or replacing the deployment with its id); :class:`ValueError`
        (nothing changed) when it cannot be served."""
        ident = row["model_id"]
        dep, secrets = self.check(row)
        router = self._router()
        entry = {"model_name": dep.model_name, "litellm_params": dict(dep.litellm_params),
                 "model_info": dict(dep.model_info)}
        default_parallel = self.app.config.general_settings.get("max_parallel_requests")
        if default_parallel is not None:  # (as ModelTable does for the config's)
            entry["litellm_params"].setdefault("max_parallel_requests", default_parallel)
        if ident in self.deployments:
            router.delete_deployment(ident)
            del self.deployments[ident]
        router.add_deployment(entry)
        self.deployments[ident] = dep
        self.rows[ident] = row
        self.secrets[ident] = secrets
        if rebuild:
            self.app.models_changed()

    def remove(self, ident: str) -> bool:
        """Stop serving a deployment of ours; False if there is none."""
        if ident not in self.deployments:
            return False
        router = self.app.models.router
        if router is not None:
            router.delete_deployment(ident)
        del self.deployments[ident]
        self.rows.pop(ident, None)
        self.secrets.pop(ident, None)
        self.app.models_changed()
        return True

    def all_secrets(self) -> list[str]:
        return [s for values in self.secrets.values() for s in values]

    def _router(self) -> Any:
        models = self.app.models
        if models.router is None:  # (a config without models: the first one added makes the router)
            from ..router import Router
            from .shared import router_options

            models.router = Router(model_list=[], **router_options(self.app.config.router_settings))
            if self.app.keys is not None:
                self.app.keys.deployment_lookup = models.router.get_deployment
        return models.router

    # ------------------------------------------------------------------ loading and following
    async def start(self) -> None:
        """Load the stored models (before serving), or keep trying in the background."""
        if not self.enabled or self.app.keys is None:
            return
        keys = self.app.keys
        keys.model_listener = self.changed
        if not await self._load():
            self._task = asyncio.ensure_future(self._load_later())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _load(self) -> bool:
        from ..storage import StoreError

        keys = self.app.keys
        try:
            store = await keys.ensure_store()
            rows = await store.run(store.find, "model", None, 1_000_000)
        except StoreError as exc:
            log.error("the models stored in the database could not be loaded (retrying): %s", exc)
            return False
        for row in rows:
            try:
                self.put(row, rebuild=False)
            except ValueError as exc:
                log.error("stored model %s is not served: %s", row.get("model_id"), self.app.redact(str(exc)))
        self.loaded = True
        self.app.models_changed()
        if rows:
            log.info("%d model(s) from the database", len(self.deployments))
        return True

    async def _load_later(self) -> None:
        while not await self._load():
            await asyncio.sleep(RETRY_LOAD)
        self._task = None
        for ident in list(self._pending):  # (changes seen while it was loading)
            self.changed(ident)

    def changed(self, ident: str) -> None:
        """A model row changed (here or in another process): read it again, in the background."""
        self._pending.add(ident)
        if self.loaded and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        from ..storage import StoreError

        keys = self.app.keys
        while self._pending:
            ident = self._pending.pop()
            try:
                store = await keys.ensure_store()
                row = await store.run(store.get, "model", ident)
            except StoreError as exc:
                self._pending.add(ident)
                log.error("model %s changed but could not be read (retrying): %s", ident, exc)
                await asyncio.sleep(RETRY_LOAD)
                continue
            self.apply(ident, row)

    def apply(self, ident: str, row: dict[str, Any] | None) -> None:
        """Serve a row as read from the database (None: deleted)."""
        if row is None:
            if self.remove(ident):
                log.info("model %s deleted", ident)
            return
        if self.rows.get(ident) == row:
            return  # (this process's own change, already served)
        try:
            self.put(row)
        except ValueError as exc:
            log.error("stored model %s is not served: %s", ident, self.app.redact(str(exc)))
            self.remove(ident)
            return
        log.info("model %s (%s) loaded from the database", ident, row.get("model_name"))
