"""Ollama ``POST /api/embed`` (github.com/ollama/ollama docs/api.md): ``{"model", "input": [...],
"dimensions"}`` → ``{"embeddings": [[...]], "prompt_eval_count"}``."""

from __future__ import annotations

from typing import Any

import orjson

from ..providers.base import HttpRequest
from ..providers.common import first_env, load_object
from .base import Codec, EmbedCall, parsed

__all__ = ["OllamaCodec"]


class OllamaCodec(Codec):
    max_batch = 512

    def build(self, call: EmbedCall, batch: list[Any]) -> HttpRequest:
        from ..providers.ollama import DEFAULT_API_BASE

        chat = call.chat
        base = (chat.api_base or first_env(("OLLAMA_API_BASE", "OLLAMA_HOST")) or DEFAULT_API_BASE).rstrip("/")
        if not base.startswith(("http://", "https://")):
            base = "http://" + base
        base = base.removesuffix("/api/chat")
        headers = {"Content-Type": "application/json"}
        key = chat.api_key or first_env(("OLLAMA_API_KEY",))
        if key:
            headers["Authorization"] = f"Bearer {key}"
        headers.update(chat.extra_headers)
        body: dict[str, Any] = {"model": call.model, "input": batch}
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        for key_name in ("truncate", "keep_alive"):
            if call.extra.get(key_name) is not None:
                body[key_name] = call.extra[key_name]
        return HttpRequest("POST", base + "/api/embed", headers, orjson.dumps(body))

    def parse(self, call: EmbedCall, body: bytes, batch: list[Any]) -> tuple[list[list[float]], int | None]:
        data = load_object(body, call.provider, call.model)
        return parsed(data.get("embeddings"), "embeddings", call, body), data.get("prompt_eval_count")
