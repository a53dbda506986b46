"""The gateway's limits and timeouts: one place for their defaults, the CLI flags that set
them, and how ``--workers`` processes receive them.

Upstream timeouts here are defaults: a ``timeout``/``stream_timeout`` in ``router_settings`` or
in a deployment's ``litellm_params`` (and ``litellm_settings.request_timeout`` for ``timeout``)
takes precedence.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["ServerLimits", "LIMITS_ENV", "add_arguments"]

#: Environment variable through which ``--workers`` processes receive the limits.
LIMITS_ENV = "LLMRELAY_PROXY_LIMITS"


@dataclass(frozen=True)
class ServerLimits:
    """Defaults are what ``llmrelay proxy`` uses without flags (documented in docs/proxy.md)."""

    #: A whole non-streaming upstream call, and the gap between a stream's chunks (LiteLLM's 600 s).
    timeout: float = 600.0
    #: A stream's time to its first chunk.
    stream_timeout: float = 120.0
    #: After SIGTERM: how long in-flight requests may take before they are cut.
    graceful_timeout: float = 30.0
    #: Reading a request's headers, from the first byte (or the end of the previous response).
    header_timeout: float = 10.0
    #: Reading a request's body, once its headers are in.
    body_timeout: float = 30.0
    #: The request line plus all headers.
    max_header_bytes: int = 64 * 1024
    #: How long a write to a client that does not read may wait before the request is cut.
    write_timeout: float = 30.0
    #: Bytes buffered for one client before the gateway stops reading its upstream.
    write_buffer_bytes: int = 64 * 1024

    def router_defaults(self, router_settings: dict[str, Any], request_timeout: Any = None) -> dict[str, Any]:
        """``router_settings`` with the default upstream timeouts filled in where unset."""
        out = dict(router_settings)
        if out.get("timeout") is None:
            out["timeout"] = request_timeout if request_timeout is not None else self.timeout
        if out.get("stream_timeout") is None:
            out["stream_timeout"] = self.stream_timeout
        return out

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "ServerLimits":
        raw = os.environ.get(LIMITS_ENV)
        if not raw:
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(raw).items() if k in known})

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ServerLimits":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None})


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


_FLAGS = {
    "timeout": "default upstream timeout in seconds for a whole non-streaming call and between stream chunks",
    "stream_timeout": "default upstream time to a stream's first chunk, in seconds",
    "graceful_timeout": "seconds in-flight requests may take to finish after SIGTERM",
    "header_timeout": "seconds a client has to send its request headers",
    "body_timeout": "seconds a client has to send its request body",
    "max_header_bytes": "largest request line plus headers, in bytes",
    "write_timeout": "seconds a write to a client that is not reading may wait before the request is cut",
    "write_buffer_bytes": "bytes buffered per client before the gateway stops reading its upstream",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per limit (default shown in ``--help``)."""
    defaults = ServerLimits()
    group = parser.add_argument_group("limits and timeouts")
    for f in fields(ServerLimits):
        default = getattr(defaults, f.name)
        group.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, default=None,
            type=_positive(int if isinstance(default, int) else float),
            help=f"{_FLAGS[f.name]} (default {default:g})",
        )
