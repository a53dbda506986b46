"""What the sync and async stream sources share: one read in, chunk dicts out.

A source turns a streamed HTTP response and the provider's decoder into batches of chunk
dicts for :class:`~llmrelay.streaming.CustomStreamWrapper`. The two transports differ only in
how they wait for the next read; everything done with the bytes is here.
"""

from __future__ import annotations

from typing import Any

from ..codecs.errors import CodecError
from ..exceptions import APIError
from ..providers.base import StreamDecoder

__all__ = ["StreamSourceBase"]


class StreamSourceBase:
    __slots__ = ("_response", "_decoder", "_eof", "_provider", "_model")

    def __init__(self, response: Any, decoder: StreamDecoder, provider: str | None, model: str | None) -> None:
        self._response = response
        self._decoder = decoder
        self._eof = False
        self._provider = provider
        self._model = model

    @property
    def complete(self) -> bool:
        """Whether the provider's end-of-stream marker was seen."""
        return self._decoder.done

    def _ready(self) -> bool:
        """Before a read: raise an error parked behind delivered chunks; False at the end."""
        error = self._decoder.error
        if error is not None:
            self._decoder.error = None
            raise error
        return not self._eof

    def _took(self, data: bytes) -> list:
        """One read's bytes (``b""`` at the end of the body) → the chunks they completed."""
        try:
            if data:
                return self._decoder.feed(data)
            self._eof = True
            self._response.release()
            return self._decoder.close()
        except CodecError as exc:
            raise APIError(
                f"The upstream sent bytes that could not be decoded: {exc}",
                llm_provider=self._provider,
                model=self._model,
            ) from exc

    def close(self) -> None:
        self._response.close()

    async def aclose(self) -> None:
        self._response.close()
