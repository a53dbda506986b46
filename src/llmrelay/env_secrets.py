"""LiteLLM's ``get_secret`` family, reading the environment only (no secret managers)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["get_secret", "get_secret_str", "get_secret_bool"]

_PREFIX = "os.environ/"


def get_secret(secret_name: str, default_value: Any = None) -> Any:
    """The environment variable ``secret_name`` (``"os.environ/NAME"`` accepted), else the default."""
    if secret_name.startswith(_PREFIX):
        secret_name = secret_name[len(_PREFIX):]
    return os.environ.get(secret_name, default_value)


def get_secret_str(secret_name: str, default_value: str | None = None) -> str | None:
    value = get_secret(secret_name, default_value)
    return value if isinstance(value, str) or value is None else str(value)


def get_secret_bool(secret_name: str, default_value: bool | None = None) -> bool | None:
    """``True``/``False`` for an environment variable spelled true/false (any case)."""
    value = get_secret(secret_name)
    if value is None:
        return default_value
    lowered = str(value).strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return default_value
