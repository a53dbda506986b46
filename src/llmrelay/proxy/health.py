"""``GET /health``: call each deployment once and say which answered (LiteLLM's model health check).

Every deployment of the config (or of ``?model=<group>``, or the one ``?model_id=`` names) gets
one small real request: a chat completion of one token, or an embedding of ``"test"`` for
``model_info.mode: embedding``. A wildcard deployment (``openai/*``) is checked with its
``model_info.health_check_model`` and skipped without one. ``model_info.health_check_timeout``
bounds a check (default 60 s); checks run concurrently, at most :data:`CONCURRENCY` at once.

The answer has LiteLLM's keys (``healthy_endpoints``, ``unhealthy_endpoints`` and their counts),
each endpoint naming its group, model and deployment id. Unlike LiteLLM, no ``api_base`` or
other ``litellm_params`` are listed and errors are redacted: upstream hosts and keys never reach
a client, the master key's holder included (they are in the config and the log line).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

__all__ = ["check_health", "HealthMonitor", "CONCURRENCY", "DEFAULT_TIMEOUT", "DEFAULT_INTERVAL"]

log = logging.getLogger("llmrelay.proxy")

#: Deployments checked at the same time.
CONCURRENCY = 16
#: Seconds a check may take unless ``model_info.health_check_timeout`` says otherwise.
DEFAULT_TIMEOUT = 60.0
#: Seconds between background checks (``general_settings.health_check_interval``, LiteLLM's default).
DEFAULT_INTERVAL = 300.0

_PROMPT = [{"role": "user", "content": "ping"}]


class UnknownModel(LookupError):
    """``?model=`` / ``?model_id=`` names nothing the gateway serves."""


def _targets(router: Any, model: str | None, model_id: str | None) -> list[Any]:
    deployments = list(router._by_id.values()) if router is not None else []
    if model_id:
        deployments = [d for d in deployments if d.id == model_id]
        if not deployments:
            raise UnknownModel(f"No deployment has model_id {model_id!r}.")
    if model:
        deployments = [d for d in deployments if d.model_name == model]
        if not deployments:
            raise UnknownModel(f"No model group {model!r} is served by this gateway.")
    return deployments


async def _check(dep: Any, redact: Callable[[str], str]) -> tuple[dict[str, Any], bool]:
    from ..embeddings import aembedding
    from ..main import acompletion

    info = dep.model_info
    model = dep.model
    entry: dict[str, Any] = {"model_name": dep.model_name, "model": model, "model_id": dep.id}
    if "*" in model:
        model = info.get("health_check_model")
        if not isinstance(model, str) or not model:
            entry["error"] = "skipped: a wildcard deployment needs model_info.health_check_model"
            return entry, False
        entry["model"] = model
    timeout = info.get("health_check_timeout") or DEFAULT_TIMEOUT
    kwargs = {**dep.kwargs, "timeout": timeout, "num_retries": 0}
    try:
        call = (aembedding(model=model, input=["test"], **kwargs) if info.get("mode") == "embedding"
                else acompletion(model=model, messages=_PROMPT, max_tokens=1, **kwargs))
        await asyncio.wait_for(call, timeout + 5)  # (a bound of our own too, for a check that ignores its timeout)
        return entry, True
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure is the answer
        message = f"timed out after {timeout}s" if isinstance(exc, asyncio.TimeoutError) else str(exc)
        log.warning("health check of %s (%s) failed: %s", dep.model_name, dep.id, exc)
        entry["error"] = f"{type(exc).__name__}: {redact(message)}"[:500]
        return entry, False


async def check_health(router: Any, redact: Callable[[str], str], model: str | None = None,
                       model_id: str | None = None) -> dict[str, Any]:
    """Check the deployments (see the module docstring); raises :class:`UnknownModel`."""
    targets = _targets(router, model, model_id)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(dep: Any) -> tuple[dict[str, Any], bool]:
        async with gate:
            return await _check(dep, redact)

    results = await asyncio.gather(*(one(d) for d in targets))
    healthy = [entry for entry, ok in results if ok]
    unhealthy = [entry for entry, ok in results if not ok]
    return {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}


def _only(report: dict[str, Any], model: str | None, model_id: str | None) -> dict[str, Any]:
    def keep(entry: dict[str, Any]) -> bool:
        return (model is None or entry["model_name"] == model) and (model_id is None or entry["model_id"] == model_id)

    healthy = [e for e in report["healthy_endpoints"] if keep(e)]
    unhealthy = [e for e in report["unhealthy_endpoints"] if keep(e)]
    return {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}


class HealthMonitor:
    """``general_settings.background_health_checks``: every deployment checked every ``interval``
    seconds in the background; ``GET /health`` then answers from the latest round at once."""

    def __init__(self, router: Any, redact: Callable[[str], str], interval: float = DEFAULT_INTERVAL) -> None:
        self.router = router
        self.redact = redact
        self.interval = interval
        self.latest: dict[str, Any] | None = None
        self._task: asyncio.Task | None = None
        self._first: asyncio.Event | None = None

    def start(self) -> None:
        if self._task is None:
            self._first = asyncio.Event()
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                self.latest = await check_health(self.router, self.redact)
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("background health check failed")
            if self._first is not None:
                self._first.set()
            await asyncio.sleep(self.interval)

    async def report(self, model: str | None = None, model_id: str | None = None) -> dict[str, Any]:
        """The latest round (filtered); before the first round has ended, that round's answer."""
        _targets(self.router, model, model_id)  # (UnknownModel for names not served)
        if self.latest is None and self._first is not None and self._task is not None and not self._task.done():
            await self._first.wait()
        if self.latest is None:  # (not started, or the first round failed)
            return await check_health(self.router, self.redact, model, model_id)
        return _only(self.latest, model, model_id)
