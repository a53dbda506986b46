"""What every embeddings wire format shares: the call, the codec interface, the response type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..providers.base import Call, HttpRequest
from ..types import OpenAIObject, Usage

__all__ = ["EmbedCall", "Codec", "Embedding", "EmbeddingResponse", "parsed"]


@dataclass(slots=True)
class EmbedCall:
    """One embeddings call, validated: ``chat`` is the same call in the chat providers' terms
    (so a codec can reuse their base URL, key and signing logic)."""

    provider: str
    model: str
    dimensions: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # input_type, task_type, user…
    chat: Call | None = None


class Codec:
    """One wire format (pure): a batch of inputs → request; response body → vectors."""

    #: At most this many inputs go in one upstream request.
    max_batch = 2048
    #: Whether token-id inputs (lists of ints) are accepted.
    accepts_tokens = False

    def batch_size(self, call: EmbedCall) -> int:
        """How many inputs go in one request for this call's model."""
        return self.max_batch

    def build(self, call: EmbedCall, batch: list[Any]) -> HttpRequest:  # pragma: no cover - abstract
        raise NotImplementedError

    def parse(self, call: EmbedCall, body: bytes, batch: list[Any]) -> tuple[list[list[float]], int | None]:
        """(one vector per input, prompt tokens if the upstream said)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def error(self, call: EmbedCall, status: int, headers: Mapping[str, str], body: bytes) -> Exception:
        """The typed error for a failed response (the chat provider's mapping by default)."""
        from ..providers import registry

        return registry.get_provider(call.provider).error(call.chat, status, headers, body)


class Embedding(OpenAIObject):
    """One item of ``data``: ``{"object": "embedding", "index", "embedding"}``."""

    __slots__ = ()
    object: str = "embedding"
    index: int = 0
    embedding: Any = None


class EmbeddingResponse(OpenAIObject):
    """``{"object": "list", "data": [...], "model", "usage"}``, like OpenAI's."""

    __slots__ = ()
    _nested = {"usage": Usage}
    _nested_lists = {"data": Embedding}
    object: str = "list"
    data: list = []
    model: str | None = None
    usage: Usage | None = None


def parsed(value: Any, what: str, call: EmbedCall, body: bytes) -> Any:
    """``value`` when it is there, else the typed error for a malformed body."""
    if value is None:
        from ..providers.common import malformed

        raise malformed(body, call.provider, call.model, "the embeddings response", f"no {what}")
    return value
