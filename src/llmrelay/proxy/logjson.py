"""JSON log lines for the gateway (LiteLLM's ``json_logs``): one object per record."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import orjson

__all__ = ["JsonFormatter"]


class JsonFormatter(logging.Formatter):
    """``{"timestamp", "level", "name", "message"}`` (and ``"stacktrace"`` with an exception),
    the keys LiteLLM's JSON logs carry plus the logger's name."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "name": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["stacktrace"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["stacktrace"] = record.exc_text
        return orjson.dumps(line, default=str).decode()
