"""Gemini API ``batchEmbedContents`` (ai.google.dev, Embeddings): one request per batch of 100.

``{"requests": [{"model": "models/<m>", "content": {"parts": [{"text"}]}, "taskType",
"outputDimensionality"}]}`` → ``{"embeddings": [{"values": [...]}]}``; no token counts
(usage is counted offline).
"""

from __future__ import annotations

from typing import Any

from ..providers.base import HttpRequest
from ..providers.common import first_env, load_object, post_json
from .base import Codec, EmbedCall, parsed

__all__ = ["GeminiCodec", "VertexCodec"]


class GeminiCodec(Codec):
    max_batch = 100

    def build(self, call: EmbedCall, batch: list[Any]) -> HttpRequest:
        from ..providers import registry
        from ..providers.gemini import GEMINI_BASE

        provider = registry.get_provider("gemini")
        base = (call.chat.api_base or first_env(("GEMINI_API_BASE",)) or GEMINI_BASE).rstrip("/")
        if not base.rsplit("/", 1)[-1].startswith("v1"):
            base += "/v1beta"
        url = f"{base}/models/{call.model}:batchEmbedContents"
        requests = []
        for text in batch:
            item: dict[str, Any] = {"model": f"models/{call.model}", "content": {"parts": [{"text": text}]}}
            if call.dimensions is not None:
                item["outputDimensionality"] = call.dimensions
            task = call.extra.get("task_type")
            if task:
                item["taskType"] = task
            requests.append(item)
        return post_json(call.chat, url, provider.auth_headers(call.chat), {"requests": requests})

    def parse(self, call: EmbedCall, body: bytes, batch: list[Any]) -> tuple[list[list[float]], int | None]:
        data = load_object(body, call.provider, call.model)
        embeddings = parsed(data.get("embeddings"), "embeddings", call, body)
        return [parsed(e.get("values"), "values", call, body) for e in embeddings], None


class VertexCodec(Codec):
    """Vertex AI ``:predict`` (cloud.google.com/vertex-ai, Text embeddings API):
    ``{"instances": [{"content", "task_type"}], "parameters": {"outputDimensionality"}}`` →
    ``{"predictions": [{"embeddings": {"values", "statistics": {"token_count"}}}]}``.
    ``gemini-embedding-*`` models take one instance per request, the others up to 250."""

    max_batch = 250

    def batch_size(self, call: EmbedCall) -> int:
        return 1 if "gemini-embedding" in call.model else self.max_batch

    def build(self, call: EmbedCall, batch: list[Any]) -> HttpRequest:
        from ..providers import registry

        provider = registry.get_provider("vertex_ai")
        token, adc_project = provider._token(call.chat)
        url = provider.url(call.chat, adc_project).replace(":generateContent", ":predict")
        task = call.extra.get("task_type")
        body: dict[str, Any] = {"instances": [{"content": t, **({"task_type": task} if task else {})} for t in batch]}
        if call.dimensions is not None:
            body["parameters"] = {"outputDimensionality": call.dimensions}
        return post_json(call.chat, url, {"Authorization": f"Bearer {token}"}, body)

    def parse(self, call: EmbedCall, body: bytes, batch: list[Any]) -> tuple[list[list[float]], int | None]:
        data = load_object(body, call.provider, call.model)
        vectors, tokens = [], 0
        for prediction in parsed(data.get("predictions"), "predictions", call, body):
            embeddings = parsed(prediction.get("embeddings"), "embeddings", call, body)
            vectors.append(parsed(embeddings.get("values"), "values", call, body))
            tokens += (embeddings.get("statistics") or {}).get("token_count") or 0
        return vectors, tokens or None
