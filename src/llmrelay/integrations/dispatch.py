"""Run the registered callbacks: once per call, never raising, never blocking a loop.

The registered callbacks are the lists on the ``llmrelay`` module, as in LiteLLM:
``callbacks`` (``CustomLogger`` instances, functions, or the names ``"prometheus"``, ``"otel"``,
``"langfuse_otel"``), ``success_callback``, ``failure_callback``, ``_async_success_callback``,
``_async_failure_callback``, ``input_callback`` (before the call only: functions ``fn(kwargs)``
and loggers' ``log_pre_api_call``). :func:`registered` reads them at the start of a call; with
all of them empty it returns None and the call does no callback work at all.

How a callback runs:

* from ``completion()`` (sync code): inline, in the calling thread;
* from ``acompletion()`` and the gateway: ``async`` hooks and coroutine functions as tasks on
  the caller's loop (the stream is not held up), plain functions in llmrelay's callback
  threads (:mod:`.offloop`, off the loop). :func:`wait_pending` awaits whatever is still running.

An exception raised by a callback is logged (logger ``llmrelay.callbacks``) and swallowed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from typing import Any, Callable, Iterable

from . import offloop
from .custom_logger import overrides

__all__ = ["Callbacks", "registered", "resolve", "wait_pending", "fallback_loggers", "fallback_event", "LIST_NAMES"]

log = logging.getLogger("llmrelay.callbacks")

#: The module-level lists read by :func:`registered`.
LIST_NAMES = ("callbacks", "success_callback", "failure_callback", "_async_success_callback",
              "_async_failure_callback", "input_callback")

#: Built-in loggers by LiteLLM's names: "module:factory", built once per process.
BUILTIN = {
    "prometheus": "llmrelay.integrations.prometheus:PrometheusLogger",
    "otel": "llmrelay.integrations.opentelemetry:OpenTelemetryLogger",
    "opentelemetry": "llmrelay.integrations.opentelemetry:OpenTelemetryLogger",
    "langfuse_otel": "llmrelay.integrations.opentelemetry:langfuse_logger",
    # LiteLLM's own Langfuse logger: the same data through Langfuse's OpenTelemetry endpoint
    "langfuse": "llmrelay.integrations.opentelemetry:langfuse_callback_logger",
}
_builtins: dict[str, Any] = {}
_warned: set[str] = set()
_pending: set[Any] = set()
_snapshot: tuple[Any, Any] = (None, None)  # (identity of the registered lists, their Callbacks)


class Callbacks:
    """Who to tell about one call: logger objects, and plain success / failure functions."""

    __slots__ = ("loggers", "success", "failure", "pre", "post", "inputs", "reports", "_plans")

    def __init__(self, loggers: Iterable[Any] = (), success: Iterable[Callable] = (),
                 failure: Iterable[Callable] = (), inputs: Iterable[Any] = ()) -> None:
        self.loggers = list(dict.fromkeys(loggers))  # an object listed twice logs once
        self.success = list(dict.fromkeys(success))
        self.failure = list(dict.fromkeys(failure))
        input_loggers = [x for x in dict.fromkeys(inputs) if _is_logger(x) and x not in self.loggers]
        #: input_callback functions: fn(kwargs) before the call (LiteLLM's log_input_event)
        self.inputs = [x for x in dict.fromkeys(inputs) if not _is_logger(x) and callable(x)]
        self.pre = [x for x in (*self.loggers, *input_loggers) if overrides(x, "log_pre_api_call")]
        self.post = [x for x in self.loggers if overrides(x, "log_post_api_call")]
        #: whether anyone hears of the call's end (else a call reports nothing at its end)
        self.reports = bool(self.loggers or self.success or self.failure)
        #: (event, from a loop) → [(object, hook name or None for a function, is a coroutine function)]
        self._plans: dict[tuple[str, bool], list[tuple[Any, str | None, bool]]] = {}

    def __bool__(self) -> bool:
        return bool(self.reports or self.pre or self.inputs)

    @classmethod
    def from_lists(cls, callbacks: Iterable[Any] = (), success: Iterable[Any] = (),
                   failure: Iterable[Any] = (), inputs: Iterable[Any] = ()) -> "Callbacks":
        """Sort LiteLLM-style lists: objects with hooks are loggers; a function in
        ``callbacks`` is told of successes and failures; names are resolved; ``inputs``
        (``input_callback``) hear of the call's start only."""
        inputs = [x for x in inputs or () if not isinstance(x, str)]
        loggers: list[Any] = []
        on_success: list[Callable] = []
        on_failure: list[Callable] = []
        for kind, items in (("both", callbacks), ("success", success), ("failure", failure)):
            for item in items or ():
                item = resolve(item) if isinstance(item, str) else item
                if item is None:
                    continue
                if _is_logger(item):
                    loggers.append(item)
                elif callable(item):
                    if kind != "failure":
                        on_success.append(item)
                    if kind != "success":
                        on_failure.append(item)
                else:
                    _warn_once(repr(item), f"callback {item!r} is neither a CustomLogger nor a function; ignored")
        return cls(loggers, on_success, on_failure, inputs)

    # ------------------------------------------------------------------ the events
    def pre_call(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        for logger in self.pre:
            _safe(logger.log_pre_api_call, model, messages, kwargs)
        if self.inputs:
            details = {**kwargs, "model": model, "messages": messages, "log_event_type": "pre_api_call"}
            for fn in self.inputs:
                _safe(fn, details)

    def post_call(self, kwargs: dict[str, Any], response: Any, start: Any, end: Any) -> None:
        for logger in self.post:
            _safe(logger.log_post_api_call, kwargs, response, start, end)

    def emit(self, event: str, is_async: bool, kwargs: dict[str, Any], response: Any, start: Any, end: Any) -> None:
        """Tell every callback of a ``"success"`` or ``"failure"``."""
        loop = None
        if is_async:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # e.g. a stream collected after its loop ended
                loop = None
        plan = self._plans.get((event, loop is not None))
        if plan is None:
            plan = self._plans[(event, loop is not None)] = self._plan(event, loop is not None)
        args = (kwargs, response, start, end)
        for target, hook, coro in plan:
            fn = getattr(target, hook, None) if hook is not None else target
            if fn is None:
                continue
            if loop is None:
                _safe_call(fn, args)
            elif coro:
                result = _safe(fn, *args)
                if inspect.iscoroutine(result):
                    task = loop.create_task(result)
                    _pending.add(task)
                    task.add_done_callback(_finished)
                elif inspect.isawaitable(result):
                    _track(asyncio.ensure_future(_guarded(fn, result)))
            else:
                offloop.submit(_safe_call, (fn, args))

    def _plan(self, event: str, on_loop: bool) -> list[tuple[Any, str | None, bool]]:
        """Who hears ``event``, and how (worked out once per registered set, not per call).
        Hooks a ``CustomLogger`` does not override are skipped (they do nothing)."""
        hook = f"async_log_{event}_event" if on_loop else f"log_{event}_event"
        plan: list[tuple[Any, str | None, bool]] = []
        for logger in self.loggers:
            if overrides(logger, hook):
                plan.append((logger, hook, _is_coroutine(getattr(logger, hook, None))))
        for fn in self.success if event == "success" else self.failure:
            coro = _is_coroutine(fn)
            if coro and not on_loop:
                continue  # an async function runs for async calls only (as in LiteLLM)
            plan.append((fn, None, coro))
        return plan


def registered() -> Callbacks | None:
    """The callbacks registered on the ``llmrelay`` module now, or None when there are none."""
    module = sys.modules.get("llmrelay")
    if module is None:
        return None
    global _snapshot
    lists = tuple(map(module.__dict__.get, LIST_NAMES))  # (not a generator: asked twice a request)
    if not any(lists):
        return None
    cbs, ok, bad, aok, abad, inp = lists
    # the same lists holding the same objects as last time: the same Callbacks (list equality
    # compares identity first; the saved copies keep the objects alive, so ids are not reused)
    if _snapshot[0] == lists:
        return _snapshot[1]
    found = Callbacks.from_lists(cbs or (), [*(ok or ()), *(aok or ())], [*(bad or ()), *(abad or ())],
                                 inp or ()) or None
    _snapshot = (tuple(list(x or ()) for x in lists), found)
    return found


def fallback_loggers(outcome: str) -> list[Any]:
    """The registered loggers overriding ``log_<outcome>_fallback_event`` (``"success"`` or
    ``"failure"``); asked only when a router falls back, so calls without fallbacks pay nothing."""
    callbacks = registered()
    if callbacks is None:
        return []
    hook = f"log_{outcome}_fallback_event"
    return [x for x in callbacks.loggers if overrides(x, hook)]


def fallback_event(loggers: list[Any], outcome: str, original_model_group: str, kwargs: dict[str, Any],
                   original_exception: BaseException) -> None:
    """Call each logger's ``log_<outcome>_fallback_event`` with LiteLLM's keyword arguments.

    The hooks are coroutines in LiteLLM: on a running loop they run as tasks (awaited by
    :func:`wait_pending`); from sync code, to their end before the call returns."""
    hook = f"log_{outcome}_fallback_event"
    for logger in loggers:
        fn = getattr(logger, hook)
        try:
            result = fn(original_model_group=original_model_group, kwargs=kwargs,
                        original_exception=original_exception)
        except Exception:  # noqa: BLE001 - a callback never breaks a call
            log.warning("callback %s raised; ignored", _name(fn), exc_info=True)
            continue
        if result is None or not inspect.isawaitable(result):
            continue
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(_guarded(fn, result))
        else:
            _track(asyncio.ensure_future(_guarded(fn, result)))


def resolve(name: str, strict: bool = False) -> Any:
    """A callback named in a list: a built-in logger (one per process), else None (warned).

    A built-in logger that cannot start (missing credentials, its optional dependencies not
    installed) is warned about and skipped, so a call never fails for it; ``strict`` raises
    instead (the gateway refuses such a config at start)."""
    key = name.strip().lower()
    if key in _builtins:
        return _builtins[key]
    target = BUILTIN.get(key)
    if target is None:
        _warn_once(name, f"callback {name!r} is not supported by llmrelay; ignored "
                         f"(built in: {', '.join(sorted(BUILTIN))}; or pass a CustomLogger instance)")
        return None
    import importlib

    module, attr = target.split(":")
    try:
        logger = getattr(importlib.import_module(module), attr)()
    except Exception as exc:
        if strict:
            raise
        _warn_once(name, f"callback {name!r} cannot start: {exc}; ignored")
        return None
    _builtins[key] = logger
    return logger


async def wait_pending() -> None:
    """Wait until the async callbacks and the sync ones run off the loop have finished."""
    while _pending or offloop.busy():
        if _pending:
            await asyncio.gather(*list(_pending), return_exceptions=True)
        await offloop.flush()


# ---------------------------------------------------------------------- internals
def _is_logger(obj: Any) -> bool:
    from .custom_logger import CustomLogger

    if isinstance(obj, CustomLogger):
        return True
    return not inspect.isroutine(obj) and any(
        callable(getattr(obj, h, None)) for h in ("log_success_event", "async_log_success_event",
                                                  "log_failure_event", "async_log_failure_event"))


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def _safe(fn: Callable, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - a callback never breaks a call
        log.warning("callback %s raised; ignored", _name(fn), exc_info=True)
        return None


def _is_coroutine(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _safe_call(fn: Callable, args: tuple) -> None:
    result = _safe(fn, *args)
    if result is not None and inspect.isawaitable(result):
        getattr(result, "close", lambda: None)()


async def _guarded(fn: Callable, awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:  # noqa: BLE001
        log.warning("callback %s raised; ignored", _name(fn), exc_info=True)


def _finished(task: Any) -> None:
    """A callback task ended: forget it; log what it raised (never re-raised)."""
    _pending.discard(task)
    if not task.cancelled():
        exc = task.exception()
        if exc is not None:
            log.warning("callback %s raised; ignored", task.get_coro().__qualname__, exc_info=exc)


def _track(future: Any) -> None:
    _pending.add(future)
    future.add_done_callback(_pending.discard)


def _name(fn: Any) -> str:
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        return f"{type(owner).__name__}.{getattr(fn, '__name__', '?')}"
    return getattr(fn, "__qualname__", None) or repr(fn)
