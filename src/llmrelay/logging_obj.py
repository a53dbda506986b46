"""``Logging``: the per-call record LiteLLM code passes to ``CustomStreamWrapper``.

llmrelay keeps it as a plain record of the call (model, messages, timings, ids); nothing runs
per chunk.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

__all__ = ["Logging"]


class Logging:
    """What is known about one call, for callbacks and for counting usage."""

    def __init__(
        self,
        model: str | None = None,
        messages: list | None = None,
        stream: bool = False,
        call_type: str = "completion",
        start_time: float | None = None,
        litellm_call_id: str | None = None,
        function_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.messages = messages
        self.stream = stream
        self.call_type = call_type
        self.start_time = start_time if start_time is not None else time.time()
        self.litellm_call_id = litellm_call_id or str(uuid.uuid4())
        self.function_id = function_id
        self.model_call_details: dict[str, Any] = dict(kwargs)

    def __repr__(self) -> str:
        return f"Logging(model={self.model!r}, call_type={self.call_type!r}, id={self.litellm_call_id!r})"
