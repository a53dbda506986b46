"""OpenAI's ``/embeddings`` wire format: OpenAI, Azure, Mistral, Voyage and OpenAI-compatible hosts."""

from __future__ import annotations

from typing import Any

from ..providers.base import HttpRequest
from ..providers.common import load_object, post_json
from .base import Codec, EmbedCall, parsed

__all__ = ["OpenAICodec", "AzureCodec", "VoyageCodec", "MistralCodec"]


class OpenAICodec(Codec):
    """``POST {api_base}/embeddings`` with ``input``, ``dimensions``, ``user``; floats back."""

    accepts_tokens = True
    #: Our name → the host's name for the output size.
    dimensions_key = "dimensions"
    #: Extra request keys the host documents (sent when the caller gives them).
    extras: tuple[str, ...] = ("user",)

    def url_and_auth(self, call: EmbedCall) -> tuple[str, dict[str, str]]:
        from ..providers import registry

        provider = registry.get_provider(call.provider)
        base = provider.resolve_api_base(call.chat)
        key = provider.resolve_api_key(call.chat, base)
        return base + "/embeddings", ({"Authorization": f"Bearer {key}"} if key else {})

    def body(self, call: EmbedCall, batch: list[Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": call.model, "input": batch, "encoding_format": "float"}
        if call.dimensions is not None:
            body[self.dimensions_key] = call.dimensions
        for key in self.extras:
            if call.extra.get(key) is not None:
                body[key] = call.extra[key]
        return body

    def build(self, call: EmbedCall, batch: list[Any]) -> HttpRequest:
        url, auth = self.url_and_auth(call)
        return post_json(call.chat, url, auth, self.body(call, batch))

    def parse(self, call: EmbedCall, body: bytes, batch: list[Any]) -> tuple[list[list[float]], int | None]:
        data = load_object(body, call.provider, call.model)
        items = sorted(parsed(data.get("data"), "data", call, body), key=lambda d: d.get("index", 0))
        usage = data.get("usage") or {}
        tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
        return [parsed(item.get("embedding"), "embedding", call, body) for item in items], tokens


class AzureCodec(OpenAICodec):
    """Azure OpenAI: the deployment's ``/embeddings`` (same body), ``api-key`` auth."""

    def url_and_auth(self, call: EmbedCall) -> tuple[str, dict[str, str]]:
        from ..providers import registry

        provider = registry.get_provider("azure")
        url = provider.url(call.chat).replace("/chat/completions", "/embeddings", 1)
        return url, provider.auth_headers(call.chat)


class MistralCodec(OpenAICodec):
    """Mistral (docs.mistral.ai, Embeddings): OpenAI's shape; the size is ``output_dimension``."""

    accepts_tokens = False
    dimensions_key = "output_dimension"
    extras = ("output_dtype",)


class VoyageCodec(OpenAICodec):
    """Voyage AI (docs.voyageai.com, Embeddings API): ``input``, ``input_type``,
    ``output_dimension``; answers in OpenAI's list shape with ``usage.total_tokens``."""

    accepts_tokens = False
    max_batch = 1000
    dimensions_key = "output_dimension"
    extras = ("input_type", "truncation", "output_dtype")
    default_base = "https://api.voyageai.com/v1"
    key_env = ("VOYAGE_API_KEY",)

    def url_and_auth(self, call: EmbedCall) -> tuple[str, dict[str, str]]:
        from ..providers.common import first_env, require_key

        chat = call.chat
        base = (chat.api_base or first_env(("VOYAGE_API_BASE",)) or self.default_base).rstrip("/")
        key = require_key(chat.api_key or first_env(self.key_env), "voyage", call.model, self.key_env)
        return base + "/embeddings", {"Authorization": f"Bearer {key}"}

    def body(self, call: EmbedCall, batch: list[Any]) -> dict[str, Any]:
        body = super().body(call, batch)
        del body["encoding_format"]  # Voyage's default (null) is a list of floats
        return body

    def error(self, call: EmbedCall, status: int, headers: Any, body: bytes) -> Exception:
        from ..providers.base import error_from_openai_body

        return error_from_openai_body(status, headers, body, "voyage", call.model)
