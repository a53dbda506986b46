"""The one error type raised by the wire codecs."""

from __future__ import annotations

__all__ = ["CodecError"]


class CodecError(ValueError):
    """The byte stream violates its wire format (corrupt, malformed or truncated).

    ``offset`` is the byte offset, counted from the start of the stream fed to
    the decoder, where the problem was found (for a frame- or line-level problem:
    where that frame or line starts). The library maps this to its own
    ``APIError`` at a higher level; codecs know nothing about HTTP or providers.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset

    def __reduce__(self):  # keep pickling working despite the extra argument
        return (type(self), (self.message, self.offset))
