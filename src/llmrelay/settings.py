"""Module-level settings.

The settings are attributes of the ``llmrelay`` package itself, so that LiteLLM-style code
(``litellm.REPEATED_STREAMING_CHUNK_LIMIT = 5``) works unchanged. Library code reads them
through :func:`get` at the moment they matter, so changing one at run time takes effect.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

__all__ = ["DEFAULTS", "get", "configure_verbose", "KNOWN_SETTINGS"]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


#: Documented settings and their defaults.
DEFAULTS: dict[str, Any] = {
    # A stream that sends the same non-blank content more than this many times in a row is
    # cut off with InternalServerError (see docs/streaming.md).
    "REPEATED_STREAMING_CHUNK_LIMIT": _env_int("REPEATED_STREAMING_CHUNK_LIMIT", 100),
    # Drop parameters a provider does not support instead of raising UnsupportedParamsError.
    "drop_params": False,
    # Retries for retryable failures before a response (or a stream's first chunk) is returned.
    "num_retries": 0,
    # Seconds to wait to connect and for each read (non-streaming: the whole response).
    "request_timeout": 600.0,
    # Default api_key / api_base for every provider, when neither the call nor the
    # provider's environment variable gives one.
    "api_key": None,
    "api_base": None,
    # TLS verification of upstream connections: True, False, or the path of a CA bundle.
    "ssl_verify": True,
    # model name → the model string to call instead (LiteLLM's model_alias_map).
    "model_alias_map": {},
    # Callbacks get "redacted-by-litellm" instead of the messages and the answer's text.
    "turn_off_message_logging": False,
}

KNOWN_SETTINGS = frozenset(DEFAULTS) | {"set_verbose"}


def get(name: str) -> Any:
    """The current value of a setting (as the user may have changed it on the package)."""
    module = sys.modules.get("llmrelay")
    if module is not None:
        try:
            return module.__dict__[name]
        except KeyError:
            pass
    return DEFAULTS[name]


_verbose_handler: logging.Handler | None = None


def configure_verbose(on: bool) -> None:
    """``set_verbose = True``: debug logging of the ``llmrelay`` logger to stderr."""
    global _verbose_handler
    logger = logging.getLogger("llmrelay")
    if on:
        if _verbose_handler is None:
            _verbose_handler = logging.StreamHandler()  # stderr, never stdout
            _verbose_handler.setFormatter(
                logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
            )
            logger.addHandler(_verbose_handler)
        logger.setLevel(logging.DEBUG)
    else:
        if _verbose_handler is not None:
            logger.removeHandler(_verbose_handler)
            _verbose_handler = None
        logger.setLevel(logging.NOTSET)
