"""``llmrelay proxy [--config config.yaml] [--host 127.0.0.1] [--port 4000] [--workers N] [--strict]``.

Also ``llmrelay check-config FILE`` (:func:`check_config_main`): every finding, no server.

Validates the config (one clear message and exit status 2 on any problem, never a
traceback), binds the socket, says where it listens and which models it serves, and runs the
ASGI app on uvicorn (uvloop + httptools when installed). With ``--workers N`` the socket is
shared by N worker processes, each loading the same config.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import Any

from .limits import LIMITS_ENV, ServerLimits, add_arguments

__all__ = ["main", "build_parser", "check_config_main"]

log = logging.getLogger("llmrelay.proxy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmrelay proxy",
        description="Run the OpenAI-compatible llmrelay gateway.",
    )
    parser.add_argument("--config", "-c", help="path of the config.yaml (LiteLLM proxy format); "
                        "without it the local model is served as 'smollm2'")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4000, help="port (default 4000; 0 picks a free one)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--allow-unauthenticated", action="store_true",
                        help="allow binding a non-loopback address without general_settings.master_key")
    parser.add_argument("--strict", action="store_true",
                        help="refuse to start on any config warning (unknown or ignored keys, skipped models)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log level (info logs one line per request)")
    add_arguments(parser)
    return parser


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def log_config(level: str, json_logs: bool = False) -> dict[str, Any]:
    """logging dictConfig for uvicorn and the gateway (applied in every worker process).

    ``json_logs`` (LiteLLM's ``litellm_settings.json_logs`` / ``JSON_LOGS``): every line other than
    the access log's (already JSON) is one JSON object (:class:`~.logjson.JsonFormatter`)."""
    upper = level.upper()
    default: dict[str, Any] = {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}
    if json_logs:
        default = {"()": "llmrelay.proxy.logjson.JsonFormatter"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(message)s"},
            "default": default,
        },
        "handlers": {
            # one write per event-loop turn for the per-request JSON lines (see proxy/accesslog.py)
            "access": {"class": "llmrelay.proxy.accesslog.TurnBatchedHandler", "formatter": "plain",
                       "stream": "ext://sys.stderr"},
            "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "WARNING", "propagate": False},
            "uvicorn.error": {"level": "WARNING"},
            "llmrelay": {"handlers": ["default"], "level": "WARNING" if upper == "INFO" else upper, "propagate": False},
            "llmrelay.proxy": {"handlers": ["default"], "level": upper, "propagate": False},
            "llmrelay.proxy.access": {"handlers": ["access"], "level": upper, "propagate": False},
        },
    }


def json_logs_wanted(config: Any) -> bool:
    """``litellm_settings.json_logs``, else the ``JSON_LOGS`` environment variable (LiteLLM's)."""
    value = config.litellm_settings.get("json_logs")
    if value is None:
        value = os.environ.get("JSON_LOGS", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    # Listening before "listening on" is printed: a client that connects at once waits in the
    # backlog until the server starts accepting (after its startup), instead of being refused.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    """Run the gateway; returns the process exit status (2 for a config or usage error)."""
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        _say("llmrelay proxy: --workers must be 1 or more")
        return 2

    from .auth import is_loopback
    from .config import ConfigError, default_config, load_config

    try:
        config = load_config(args.config, strict=args.strict) if args.config else default_config()
        from .app import CONFIG_ENV, create_app
        from .observe import prepare_workers

        metrics_dir = prepare_workers(config, args.workers)  # noqa: F841 - removed at exit
        limits = ServerLimits.from_args(args)
        app = create_app(config, limits)  # also builds the router: its errors are config errors
        app.tune_runtime = True  # this process is the gateway: see proxy/runtime.py
    except ConfigError as exc:
        for warning in exc.warnings:
            _say(f"llmrelay proxy: warning: {warning}")
        _say(f"llmrelay proxy: config error: {exc}")
        return 2
    except ImportError as exc:
        _say(f"llmrelay proxy: the gateway needs its extra dependencies "
             f"(pip install 'llmrelay[proxy]'): {exc}")
        return 2

    for warning in config.warnings:
        _say(f"llmrelay proxy: warning: {warning}")
    if not config.deployments:
        _say("llmrelay proxy: no model to serve. " + ("; ".join(config.warnings) or "Add entries to model_list."))
        return 2
    if config.master_key is None:
        if not is_loopback(args.host) and not (args.allow_unauthenticated or config.allow_unauthenticated):
            _say(
                f"llmrelay proxy: refusing to listen on {args.host} without authentication: set "
                "general_settings.master_key in the config (clients then send 'Authorization: Bearer <key>'), "
                "or pass --allow-unauthenticated if the network in front of it is trusted."
            )
            return 2
        _say("llmrelay proxy: warning: no general_settings.master_key: every client that can reach "
             "the gateway can use it without a key")

    try:
        import uvicorn
    except ImportError as exc:
        _say(f"llmrelay proxy: uvicorn is not installed (pip install 'llmrelay[proxy]'): {exc}")
        return 2

    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        _say(f"llmrelay proxy: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    source = f"config {config.path}" if config.path else "no --config: default models"
    _say(f"llmrelay proxy: listening on http://{shown}:{port} ({args.workers} worker"
         f"{'s' if args.workers > 1 else ''}; {source})")
    _say(f"llmrelay proxy: models: {', '.join(config.model_names)}")

    options: dict[str, Any] = {
        "log_config": log_config(args.log_level, json_logs_wanted(config)),
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,
        "http": _http_protocol(),
        "loop": _pick("uvloop", "auto"),
        "lifespan": "on",
        # the app ends what is left at graceful_timeout; this is the hard stop after it
        "timeout_graceful_shutdown": limits.graceful_timeout + 5,
        "h11_max_incomplete_event_size": limits.max_header_bytes,  # when httptools is missing
    }
    try:
        if args.workers == 1:
            try:
                from .server import GatewayServer as server_class
            except ImportError:  # no httptools: uvicorn's own server and h11 protocol
                server_class = uvicorn.Server
            server = server_class(_uvicorn_config(uvicorn.Config(app, **options), limits))
            server.run(sockets=[sock])
        else:
            os.environ[LIMITS_ENV] = limits.to_env()
            if config.path:
                os.environ[CONFIG_ENV] = os.path.abspath(config.path)
            else:
                os.environ.pop(CONFIG_ENV, None)
            from uvicorn.supervisors import Multiprocess

            uv_config = _uvicorn_config(uvicorn.Config("llmrelay.proxy.app:create_app_from_env", factory=True,
                                                       workers=args.workers, **options), limits)
            Multiprocess(uv_config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


def check_config_main(argv: list[str] | None = None) -> int:
    """``llmrelay check-config FILE``: print every finding; 0 clean, 1 warnings, 2 errors."""
    parser = argparse.ArgumentParser(
        prog="llmrelay check-config",
        description="Check a gateway config.yaml without starting anything: print every warning and "
                    "error. Exit status 0: clean; 1: warnings (llmrelay proxy --strict would refuse it); "
                    "2: errors (the gateway would not start).",
    )
    parser.add_argument("config", help="path of the config.yaml")
    args = parser.parse_args(argv)
    from .config import ConfigError, load_config

    try:
        config = load_config(args.config)
        from .models import ModelTable

        ModelTable(config)  # the router's own checks
    except ConfigError as exc:
        for warning in exc.warnings:
            print(f"warning: {warning}")
        print(f"error: {exc}")
        return 2
    for warning in config.warnings:
        print(f"warning: {warning}")
    served = len(config.deployments)
    print(f"{args.config}: {served} deployment{'s' if served != 1 else ''} served "
          f"({', '.join(config.model_names)}); {len(config.warnings)} warning{'s' if len(config.warnings) != 1 else ''}")
    return 1 if config.warnings else 0


def _http_protocol() -> Any:
    """The gateway's HTTP protocol (uvicorn's httptools one with its limits), else uvicorn's h11."""
    if _pick("httptools", "h11") == "h11":
        return "h11"
    from .server import GatewayProtocol

    return GatewayProtocol


def _uvicorn_config(config: Any, limits: ServerLimits) -> Any:
    config.llmrelay_limits = limits  # read by GatewayProtocol (pickled along into --workers processes)
    return config


def _pick(module: str, fallback: str) -> str:
    import importlib.util

    return module if importlib.util.find_spec(module) is not None else fallback


if __name__ == "__main__":  # python -m llmrelay.proxy.cli
    sys.exit(main())
