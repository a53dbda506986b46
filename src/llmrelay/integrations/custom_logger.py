"""``CustomLogger``: LiteLLM's base class for callbacks, with the same hook names.

Subclass it and override the hooks you need; register an instance in ``llmrelay.callbacks``
(library) or name it in the gateway config (``litellm_settings.callbacks: [module.instance]``).

Library hooks (every call, sync or async):

* ``log_pre_api_call(model, messages, kwargs)`` before the upstream call;
* ``log_post_api_call(kwargs, response_obj, start_time, end_time)`` once the upstream answered
  (for a stream: when it opened);
* ``log_success_event`` / ``log_failure_event`` ``(kwargs, response_obj, start_time, end_time)``
  for ``completion()`` calls, ``async_log_success_event`` / ``async_log_failure_event`` for
  ``acompletion()`` calls and in the gateway. Each call gives exactly one of them, a stream at
  its end (``kwargs["complete_streaming_response"]``), never per chunk.

Gateway hooks (``async_pre_call_hook`` may return a modified request body, or raise an exception
with a ``status_code`` to reject the request; ``async_post_call_streaming_hook`` runs once per
chunk and costs accordingly: prefer ``async_post_call_streaming_iterator_hook``).
"""

from __future__ import annotations

from typing import Any, AsyncIterator

__all__ = ["CustomLogger"]


class CustomLogger:
    """Base class of callback objects; every hook does nothing by default."""

    def __init__(self, turn_off_message_logging: bool = False, message_logging: bool = True, **kwargs: Any) -> None:
        self.turn_off_message_logging = turn_off_message_logging
        self.message_logging = message_logging

    # ------------------------------------------------------------------ library hooks
    def log_pre_api_call(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        pass

    def log_post_api_call(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    def log_stream_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        """Not called: llmrelay never reports per chunk (a stream's end is its success event)."""

    async def async_log_stream_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                     end_time: Any) -> None:
        """Not called (see :meth:`log_stream_event`)."""

    async def async_log_pre_api_call(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        """Not called, as in LiteLLM (``log_pre_api_call`` runs for async calls too)."""

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        pass

    async def async_log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        pass

    # ------------------------------------------------------------------ router hooks
    async def log_success_fallback_event(self, original_model_group: str, kwargs: dict[str, Any],
                                         original_exception: BaseException) -> None:
        """The router: a fallback group answered after ``original_model_group`` failed with
        ``original_exception`` (``kwargs``: the call's, ``model`` the fallback group)."""

    async def log_failure_fallback_event(self, original_model_group: str, kwargs: dict[str, Any],
                                         original_exception: BaseException) -> None:
        """The router: a fallback group failed too (once per failed fallback group)."""

    async def async_filter_deployments(self, model: str, healthy_deployments: list, messages: Any,
                                       request_kwargs: dict[str, Any] | None = None,
                                       parent_otel_span: Any = None) -> list:
        return healthy_deployments

    async def async_pre_call_check(self, deployment: dict[str, Any], parent_otel_span: Any = None) -> Any:
        return None

    def pre_call_check(self, deployment: dict[str, Any]) -> Any:
        return None

    # ------------------------------------------------------------------ masking hooks
    def logging_hook(self, kwargs: dict[str, Any], result: Any, call_type: str) -> tuple[dict[str, Any], Any]:
        """Not called by llmrelay; returns its arguments unchanged, as LiteLLM's default."""
        return kwargs, result

    async def async_logging_hook(self, kwargs: dict[str, Any], result: Any,
                                 call_type: str) -> tuple[dict[str, Any], Any]:
        return kwargs, result

    # ------------------------------------------------------------------ gateway hooks
    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict[str, Any],
                                  call_type: str) -> Any:
        """Return a modified ``data`` (or None to keep it); raise to reject the request."""
        return None

    async def async_post_call_success_hook(self, data: dict[str, Any], user_api_key_dict: Any, response: Any) -> Any:
        """After a non-streaming response; return a replacement response or None."""
        return None

    async def async_post_call_failure_hook(self, request_data: dict[str, Any], original_exception: BaseException,
                                           user_api_key_dict: Any, traceback_str: str | None = None) -> None:
        pass

    async def async_moderation_hook(self, data: dict[str, Any], user_api_key_dict: Any, call_type: str) -> Any:
        """Gateway: raise to reject the request (run before the upstream call, after the
        ``async_pre_call_hook`` hooks; LiteLLM runs it beside the call, with the same outcome)."""
        return None

    async def async_post_call_streaming_hook(self, user_api_key_dict: Any, response: Any) -> Any:
        """Per chunk (costly): return a replacement chunk or None."""
        return None

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict: Any, response: Any,
                                                      request_data: dict[str, Any]) -> AsyncIterator[Any]:
        """Wrap the whole stream of chunks (an async generator over ``response``)."""
        async for chunk in response:
            yield chunk


def overrides(obj: Any, hook: str) -> bool:
    """Whether ``obj`` implements ``hook`` itself (not CustomLogger's no-op)."""
    method = getattr(type(obj), hook, None)
    if method is None:
        return callable(getattr(obj, hook, None))
    return method is not getattr(CustomLogger, hook, None)
