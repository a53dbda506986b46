"""``response_format`` given as a pydantic model class, as LiteLLM accepts it.

A class is turned into OpenAI's ``{"type": "json_schema", "json_schema": {...}}`` with a
strict schema (every object closed with ``additionalProperties: false`` and every property
required, OpenAI's rules for ``strict: true``). Providers that have no strict mode ignore the
flag in their translators. Anything else is returned unchanged (validation happens later).
No I/O; pydantic is never imported here (the class brings its own ``model_json_schema``).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["response_format_param"]


def response_format_param(value: Any) -> Any:
    """The wire form of ``response_format``: a pydantic model class becomes a strict
    ``json_schema`` response format; dicts and other values are returned as they are."""
    if not isinstance(value, type) or not callable(getattr(value, "model_json_schema", None)):
        return value
    schema = _strict(copy.deepcopy(value.model_json_schema()))
    return {
        "type": "json_schema",
        "json_schema": {"name": value.__name__, "schema": schema, "strict": True},
    }


def _strict(node: Any, root: dict[str, Any] | None = None) -> Any:
    """Close every object and require every property, recursively (also in ``$defs``)."""
    if isinstance(node, dict):
        root = node if root is None else root
        if node.get("type") == "object":
            node.setdefault("additionalProperties", False)
            properties = node.get("properties")
            if isinstance(properties, dict):
                node["required"] = list(properties)
        ref = node.get("$ref")
        if isinstance(ref, str) and len(node) > 1 and ref.startswith("#/$defs/"):
            # OpenAI refuses siblings beside a $ref (pydantic puts a description there):
            # inline the definition instead.
            target = root.get("$defs", {}).get(ref[len("#/$defs/"):])
            if isinstance(target, dict):
                del node["$ref"]
                for key, value in target.items():
                    node.setdefault(key, copy.deepcopy(value))
        for child in list(node.values()):
            _strict(child, root)
    elif isinstance(node, list):
        for child in node:
            _strict(child, root)
    return node
