"""LiteLLM's state gauges: budgets, a key's per-model rate limits, deployment state and limits.

These gauges report state the gateway already holds in memory — the cached key, team, user and
end-user rows (``proxy/keys.py``), the per-process rate-limit counters and the router's
deployments — so they are computed from it, never on the request path: by a background task
every :data:`REFRESH` s (in chunks of :data:`CHUNK` rows, the event loop serving requests in
between; less often when a refresh takes more than 2 % of that: a refresh costs ~26k
instructions per cached row, so 10,000 cached keys, ~0.1 s, refresh every ~5 s), and at every
``/metrics`` scrape when that is cheap (the last refresh took at most :data:`SCRAPE_BUDGET`:
then a scrape reports the state at that moment). Only the values that changed are written.

With ``--workers N`` (``PROMETHEUS_MULTIPROC_DIR``) every worker writes its own values and
``prometheus_client`` combines the workers' files by each gauge's multiprocess mode
(:data:`STATE_METRICS`): budgets report the value written last, by whichever worker saw the
latest change (``mostrecent``); a key's remaining requests/tokens the lowest of the workers'
(each worker counts its own windows); a deployment's state the worst any worker sees (``max``).

Budgets (LiteLLM's semantics): ``remaining`` is ``max_budget - spend`` (``+Inf`` without a
``max_budget``), the max-budget gauges appear only for rows that have one, the remaining hours
only for rows with a ``budget_duration``. A period that ended is reported as reset (spend 0, the
next period's hours) even before the row's next request resets it.

Deployment state: ``2`` (complete outage) while the deployment is cooling down, ``1`` (partial
outage) when it failed within ``allowed_fails_window`` and no call of it succeeded since, else
``0`` (healthy). Deployments made on the fly for wildcard groups are included.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from ..tasks import stop_task

__all__ = ["StateGauges", "STATE_METRICS", "REFRESH", "state_gauges"]

log = logging.getLogger("llmrelay.callbacks")

#: Seconds between two background refreshes (at least: see ``StateGauges._run``).
REFRESH = 1.0
#: A scrape refreshes the values itself only if the last refresh took at most this (CPU s).
SCRAPE_BUDGET = 0.005
#: Rows handled between two pauses of a background refresh (the loop serves requests meanwhile).
CHUNK = 256

_DEPLOYMENT = ["litellm_model_name", "model_id", "api_base", "api_provider"]

#: name → (labels, multiprocess mode, help)
STATE_METRICS: dict[str, tuple[list[str], str, str]] = {
    "litellm_remaining_api_key_budget_metric": (["hashed_api_key", "api_key_alias"], "mostrecent",
                                                "Remaining budget for an API key (USD)"),
    "litellm_api_key_max_budget_metric": (["hashed_api_key", "api_key_alias"], "mostrecent",
                                          "Max budget for an API key (USD)"),
    "litellm_api_key_budget_remaining_hours_metric": (["hashed_api_key", "api_key_alias"], "mostrecent",
                                                      "Hours before the API key's budget is reset"),
    "litellm_remaining_team_budget_metric": (["team", "team_alias"], "mostrecent", "Remaining budget for a team (USD)"),
    "litellm_team_max_budget_metric": (["team", "team_alias"], "mostrecent", "Max budget for a team (USD)"),
    "litellm_team_budget_remaining_hours_metric": (["team", "team_alias"], "mostrecent",
                                                   "Hours before the team's budget is reset"),
    "litellm_remaining_user_budget_metric": (["user"], "mostrecent", "Remaining budget for an internal user (USD)"),
    "litellm_user_max_budget_metric": (["user"], "mostrecent", "Max budget for an internal user (USD)"),
    "litellm_user_budget_remaining_hours_metric": (["user"], "mostrecent", "Hours before the user's budget is reset"),
    "litellm_remaining_customer_budget_metric": (["end_user"], "mostrecent", "Remaining budget for a customer (USD)"),
    "litellm_customer_max_budget_metric": (["end_user"], "mostrecent", "Max budget for a customer (USD)"),
    "litellm_customer_budget_remaining_hours_metric": (["end_user"], "mostrecent",
                                                       "Hours before the customer's budget is reset"),
    "litellm_remaining_api_key_requests_for_model": (["hashed_api_key", "api_key_alias", "model"], "min",
                                                     "Requests left this minute under the key's model_rpm_limit"),
    "litellm_remaining_api_key_tokens_for_model": (["hashed_api_key", "api_key_alias", "model"], "min",
                                                   "Tokens left this minute under the key's model_tpm_limit"),
    "litellm_deployment_state": (_DEPLOYMENT, "max",
                                 "Deployment state: 0 = healthy, 1 = partial outage, 2 = complete outage"),
    "litellm_deployment_rpm_limit": (_DEPLOYMENT, "max", "The deployment's configured rpm limit"),
    "litellm_deployment_tpm_limit": (_DEPLOYMENT, "max", "The deployment's configured tpm limit"),
}

#: kind of cached row → (remaining, max, hours) gauge names
_BUDGETS = {
    "key": ("litellm_remaining_api_key_budget_metric", "litellm_api_key_max_budget_metric",
            "litellm_api_key_budget_remaining_hours_metric"),
    "team": ("litellm_remaining_team_budget_metric", "litellm_team_max_budget_metric",
             "litellm_team_budget_remaining_hours_metric"),
    "user": ("litellm_remaining_user_budget_metric", "litellm_user_max_budget_metric",
             "litellm_user_budget_remaining_hours_metric"),
    "end_user": ("litellm_remaining_customer_budget_metric", "litellm_customer_max_budget_metric",
                 "litellm_customer_budget_remaining_hours_metric"),
}


def state_gauges(metrics: Any, keys: Any, router: Any) -> "StateGauges | None":
    """The gateway's state gauges when its Prometheus logger is on (refreshed before each of
    its scrapes), else None."""
    hooks = getattr(metrics, "before_scrape", None)
    if hooks is None or (keys is None and router is None):
        return None
    gauges = StateGauges(metrics.registry, keys, router, multiprocess=metrics.multiprocess)
    hooks.append(gauges.refresh)
    return gauges


class StateGauges:
    """The gauges above, refreshed from a gateway's ``KeyManager`` and ``Router`` (either may be
    None). ``registry``: the Prometheus logger's registry."""

    def __init__(self, registry: Any, keys: Any = None, router: Any = None,
                 multiprocess: bool | None = None) -> None:
        import prometheus_client as prom

        self.keys = keys
        self.router = router
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")) if multiprocess is None else multiprocess
        self.m: dict[str, Any] = {}
        for name, (labels, mode, doc) in STATE_METRICS.items():
            self.m[name] = prom.Gauge(name, doc, labels, registry=registry, multiprocess_mode=mode)
        #: (name, label values) → [the value written last, the gauge's child] (only changes are written)
        self._written: dict[tuple[str, tuple[str, ...]], list] = {}
        #: deployment → (failures, successes) when its failure count last changed
        self._failures: dict[Any, tuple[int, int]] = {}
        self._task: asyncio.Task | None = None
        self._cost = 0.0  # CPU seconds of the last refresh

    # ------------------------------------------------------------------ when
    def start(self) -> None:
        """Refresh in the background every :data:`REFRESH` s (idempotent; in the running loop)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def _run(self) -> None:
        while True:
            started = time.process_time()
            for _ in self._steps():  # (the loop serves requests between two chunks of rows)
                await asyncio.sleep(0)
            self._cost = time.process_time() - started
            # at most ~2 % of a core: a worker caching many keys refreshes less often
            await asyncio.sleep(max(REFRESH, 50 * self._cost))

    def refresh(self) -> None:
        """At a scrape: set every gauge from the current state now, unless that would hold the
        event loop up (a refresh took more than :data:`SCRAPE_BUDGET` s: many cached keys), in
        which case the scrape reports the background task's last values."""
        if self._cost <= SCRAPE_BUDGET:
            started = time.process_time()
            for _ in self._steps():
                pass
            self._cost = time.process_time() - started

    def _steps(self) -> Any:
        """One refresh, pausing (``yield``) after every :data:`CHUNK` rows; only the values that
        changed are written."""
        seen: set[tuple[str, tuple[str, ...]]] = set()
        try:
            if self.keys is not None:
                yield from self._budgets(seen, time.time())
                yield from self._key_limits(seen)
            if self.router is not None:
                self._deployments(seen, time.monotonic())
        except Exception:  # noqa: BLE001 - a scrape never fails for a gauge
            log.warning("refreshing the Prometheus state gauges failed", exc_info=True)
            return
        if not self.multiprocess:  # (a worker's file cannot lose a series: it keeps its last value)
            for gone in [k for k in self._written if k not in seen]:
                del self._written[gone]
                try:
                    self.m[gone[0]].remove(*gone[1])
                except KeyError:
                    pass

    def _set(self, seen: set, name: str, labels: tuple[str, ...], value: float) -> None:
        key = (name, labels)
        seen.add(key)
        written = self._written.get(key)
        if written is None:
            self._written[key] = [value, self.m[name].labels(*labels)]
            self._written[key][1].set(value)
        elif written[0] != value:
            written[0] = value
            written[1].set(value)

    # ------------------------------------------------------------------ budgets
    def _budgets(self, seen: set, now: float) -> Any:
        from ..proxy.budgets import next_reset

        cache = self.keys._cache
        for kind, (remaining, maximum, hours) in _BUDGETS.items():
            for n, (ident, entry) in enumerate(list(cache.get(kind, {}).items()), 1):
                if n % CHUNK == 0:
                    yield
                row = entry.row
                if row is None:
                    continue
                if kind == "key":
                    labels: tuple[str, ...] = (ident, str(row.get("key_alias") or ""))
                elif kind == "team":
                    labels = (ident, str(row.get("team_alias") or ""))
                else:
                    labels = (ident,)
                spend = float(row.get("spend") or 0.0)
                reset_at = row.get("budget_reset_at")
                duration = row.get("budget_duration")
                if reset_at is not None and duration:
                    if reset_at <= now:  # the period ended: reset, as the next request will see it
                        spend = 0.0
                        try:
                            reset_at = next_reset(duration, now)
                        except ValueError:
                            reset_at = None
                    if reset_at is not None:
                        # (to 0.01 h: a row's value changes every 36 s, not at every refresh)
                        self._set(seen, hours, labels, round(max(reset_at - now, 0.0) / 3600.0, 2))
                limit = row.get("max_budget")
                if limit is None:
                    self._set(seen, remaining, labels, float("inf"))
                else:
                    self._set(seen, maximum, labels, float(limit))
                    self._set(seen, remaining, labels, float(limit) - spend)

    def _key_limits(self, seen: set) -> Any:
        peek = getattr(self.keys.limiter, "peek", None)
        if peek is None:  # shared mode: the counters are in Redis (not read at a scrape)
            return
        for n, (token, entry) in enumerate(list(self.keys._cache.get("key", {}).items()), 1):
            if n % CHUNK == 0:
                yield
            row = entry.row
            if row is None:
                continue
            rpms, tpms = row.get("model_rpm_limit") or {}, row.get("model_tpm_limit") or {}
            if not rpms and not tpms:
                continue
            alias = str(row.get("key_alias") or "")
            for model in {*rpms, *tpms}:
                requests, tokens = peek(f"key:{token}:model:{model}")
                if rpms.get(model) is not None:
                    self._set(seen, "litellm_remaining_api_key_requests_for_model", (token, alias, model),
                              float(max(int(rpms[model]) - requests, 0)))
                if tpms.get(model) is not None:
                    self._set(seen, "litellm_remaining_api_key_tokens_for_model", (token, alias, model),
                              float(max(int(tpms[model]) - tokens, 0)))

    # ------------------------------------------------------------------ deployments
    def _deployments(self, seen: set, now: float) -> None:
        router = self.router
        window = float(getattr(router, "allowed_fails_window", 60.0))
        deps = list(router._by_id.values())
        made = getattr(getattr(router, "_wildcards", None), "made", None)
        if made is not None:
            deps += made()
        failures = {}
        for dep in deps:
            model = dep.model or ""
            labels = (model, dep.id, str(dep.api_base or ""), model.split("/", 1)[0] if "/" in model else "")
            before = self._failures.get(dep)
            if before is None or before[0] != dep.failures:
                before = (dep.failures, dep.successes)
            failures[dep] = before
            if dep.cooldown_until > now:
                state = 2
            else:
                last = dep.fails[-1] if dep.fails else None
                state = 1 if last is not None and now - last <= window and dep.successes == before[1] else 0
            self._set(seen, "litellm_deployment_state", labels, float(state))
            if dep.rpm is not None:
                self._set(seen, "litellm_deployment_rpm_limit", labels, float(dep.rpm))
            if dep.tpm is not None:
                self._set(seen, "litellm_deployment_tpm_limit", labels, float(dep.tpm))
        self._failures = failures
