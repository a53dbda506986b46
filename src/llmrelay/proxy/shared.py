"""The gateway's shared mode: which Redis the Router shares its state through, and starting it.

``router_settings.redis_url`` or ``redis_host``/``redis_port``/``redis_password`` (LiteLLM's
keys) turn it on; without them, ``REDIS_URL`` or ``REDIS_HOST`` (+ ``REDIS_PORT``,
``REDIS_PASSWORD``) from the environment do. See docs/scaling.md.
"""

from __future__ import annotations

from typing import Any

from ..redis_link import redis_settings_from_env

__all__ = ["router_options", "start_shared", "stop_shared", "redis_state", "key_limiter", "watch_redis"]

_ENV_TO_ROUTER = {"url": "redis_url", "host": "redis_host", "port": "redis_port", "password": "redis_password",
                  "db": "redis_db"}


def router_options(router_settings: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """``router_settings`` with the environment's Redis added when the config names none."""
    if router_settings.get("redis_url") or router_settings.get("redis_host"):
        return router_settings
    env = redis_settings_from_env(environ)
    if env is None:
        return router_settings
    out = dict(router_settings)
    for key, value in env.items():
        if key in _ENV_TO_ROUTER:
            out[_ENV_TO_ROUTER[key]] = value
    return out


def key_limiter(router: Any) -> Any:
    """In shared mode, the virtual keys' rate limits counted on Redis (else None: per instance)."""
    shared = getattr(router, "shared", None)
    if shared is None:
        return None
    from .rate_limits import Decision
    from .shared_limits import RedisLimits

    return RedisLimits(shared.link, Decision, shared.root, shared.broadcaster)


def _links(router: Any, cache: Any) -> list[Any]:
    links = []
    shared = getattr(router, "shared", None)
    if shared is not None:
        links.append(shared.link)
    link = getattr(getattr(cache, "cache", None), "link", None)
    if link is not None and link not in links:
        links.append(link)
    return links


def watch_redis(metrics: Any, router: Any, cache: Any) -> None:
    """Report each Redis the gateway uses to ``metrics`` (the Prometheus logger, if any): up now,
    then every change (``RedisLink.listeners``, the metric hook)."""
    report = getattr(metrics, "redis_state", None)
    if report is None:
        return
    for link in _links(router, cache):
        report(link.where, link.up, False)
        link.listeners.append(lambda up, where=link.where: report(where, up))


def start_shared(router: Any) -> None:
    """Start listening to the other instances (at the gateway's startup, in its event loop)."""
    shared = getattr(router, "shared", None)
    if shared is not None:
        shared.start()


async def stop_shared(router: Any, cache: Any) -> None:
    """At shutdown: stop listening and close this loop's Redis connections (never raises)."""
    shared = getattr(router, "shared", None)
    if shared is not None:
        await shared.stop()
    for link in _links(router, cache):
        await link.aclose()


async def redis_state(router: Any) -> dict[str, Any] | None:
    """``{"up": bool, "where": host:port/db, "failures": n, "transitions": n}`` in shared mode
    (probing Redis first when it was down and a retry is due)."""
    shared = getattr(router, "shared", None)
    if shared is None:
        return None
    await shared.link.probe()
    return shared.link.state
