"""``llmrelay.logging_callback_manager``: LiteLLM's helper for the module-level callback lists.

Code written for LiteLLM adds callbacks through it (``add_litellm_callback``…) so that a logger
is not registered twice, and tests reset every list with ``_reset_all_callbacks()``. The lists
themselves stay the ``llmrelay`` module's (``callbacks``, ``success_callback``…): this only
edits them.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from .custom_logger import CustomLogger
from .dispatch import LIST_NAMES

__all__ = ["LoggingCallbackManager", "logging_callback_manager"]

def _package() -> Any:
    return sys.modules["llmrelay"]


def _list(name: str) -> list:
    package = _package()
    current = getattr(package, name, None)
    if not isinstance(current, list):
        current = []
        setattr(package, name, current)
    return current


def _logger_key(logger: CustomLogger) -> tuple:
    """Two loggers of one class with the same plain settings count as the same logger."""
    plain = tuple(sorted((k, v) for k, v in vars(logger).items()
                         if not k.startswith("_") and isinstance(v, (str, bool, int, float))))
    return type(logger), plain


class LoggingCallbackManager:
    """Adds callbacks to the ``llmrelay`` lists without duplicates; resets them."""

    def _add(self, name: str, callback: Any) -> None:
        target = _list(name)
        if isinstance(callback, CustomLogger):
            key = _logger_key(callback)
            if any(isinstance(x, CustomLogger) and _logger_key(x) == key for x in target):
                return
        elif callback in target:
            return
        target.append(callback)

    def add_litellm_callback(self, callback: Any) -> None:
        """Add to ``llmrelay.callbacks``."""
        self._add("callbacks", callback)

    def add_litellm_input_callback(self, callback: Any) -> None:
        self._add("input_callback", callback)

    def add_litellm_success_callback(self, callback: Any) -> None:
        """Add to ``success_callback`` (a coroutine function to ``_async_success_callback``)."""
        self._add("_async_success_callback" if _is_async(callback) else "success_callback", callback)

    def add_litellm_failure_callback(self, callback: Any) -> None:
        self._add("_async_failure_callback" if _is_async(callback) else "failure_callback", callback)

    def add_litellm_async_success_callback(self, callback: Any) -> None:
        self._add("_async_success_callback", callback)

    def add_litellm_async_failure_callback(self, callback: Any) -> None:
        self._add("_async_failure_callback", callback)

    def remove_callback_from_list_by_object(self, callback_list: Any, obj: Any, require_self: bool = True) -> None:
        """Remove ``obj``'s bound methods (or ``obj`` itself) from ``callback_list``."""
        if not isinstance(callback_list, list):
            return
        for item in [c for c in callback_list
                     if (getattr(c, "__self__", None) is obj if require_self else c == obj)]:
            callback_list.remove(item)

    def _reset_all_callbacks(self) -> None:
        """Empty every callback list (as LiteLLM's tests do between cases)."""
        package = _package()
        for name in LIST_NAMES:
            setattr(package, name, [])

    def _get_all_callbacks(self) -> list:
        # (input_callback's are functions called before a call, not loggers)
        return [c for name in LIST_NAMES if name != "input_callback" for c in _list(name)]

    def get_custom_loggers_for_type(self, callback_type: type) -> list:
        """The registered loggers that are instances of ``callback_type`` (each once)."""
        found: list = []
        for callback in self._get_all_callbacks():
            if isinstance(callback, callback_type) and callback not in found:
                found.append(callback)
        return found

    def callback_is_active(self, callback_type: type) -> bool:
        return bool(self.get_custom_loggers_for_type(callback_type))


def _is_async(callback: Any) -> bool:
    return not isinstance(callback, str) and (
        inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(getattr(callback, "__call__", None)))


logging_callback_manager = LoggingCallbackManager()
