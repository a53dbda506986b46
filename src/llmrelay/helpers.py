"""Small LiteLLM helpers: response text, debug logging, key checks, mock calls, provider names."""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "get_response_string",
    "print_verbose",
    "get_first_chars_messages",
    "check_valid_key",
    "mock_completion",
    "provider_names",
]

log = logging.getLogger("llmrelay")


def get_response_string(response_obj: Any) -> str:
    """The text of a response or a stream chunk: every choice's ``message.content`` (or
    ``delta.content``) joined, ``None`` contents skipped."""
    text = ""
    for choice in getattr(response_obj, "choices", None) or ():
        part = getattr(choice, "message", None) or getattr(choice, "delta", None)
        content = getattr(part, "content", None)
        if isinstance(content, str):
            text += content
    return text


def print_verbose(print_statement: Any, logger_only: bool = False, log_level: str = "DEBUG") -> None:
    """LiteLLM's debug print, as a log record of the ``llmrelay`` logger (at ``log_level``,
    DEBUG by default); nothing is printed (``llmrelay.set_verbose = True`` shows debug logs)."""
    level = logging.getLevelName(str(log_level).upper())
    log.log(level if isinstance(level, int) else logging.DEBUG, "%s", print_statement)


def get_first_chars_messages(kwargs: dict[str, Any]) -> str:
    """The first 100 characters of ``str(kwargs["messages"])`` (for log lines)."""
    try:
        return str(kwargs.get("messages"))[:100]
    except Exception:
        return ""


def check_valid_key(model: str, api_key: str) -> bool:
    """Whether ``api_key`` works for ``model``: makes one short call (``max_tokens=10``, as
    LiteLLM does) and says whether it succeeded. Never raises."""
    from .main import completion

    try:
        completion(model=model, messages=[{"role": "user", "content": "Hey, how's it going?"}],
                   api_key=api_key, max_tokens=10)
        return True
    except Exception as exc:
        log.debug("check_valid_key(%s): %r", model, exc)
        return False


def mock_completion(
    model: str,
    messages: list[dict[str, Any]],
    stream: bool = False,
    mock_response: Any = "This is a mock request",
    **kwargs: Any,
) -> Any:
    """A ``ModelResponse`` (or a stream of chunks when ``stream=True``) answering ``mock_response``
    without calling anyone: ``completion(..., mock_response=...)``. An exception (or a name such
    as ``"litellm.RateLimitError"``) as ``mock_response`` is raised instead. Any model name is
    accepted; one no provider serves is answered as an OpenAI model."""
    from .exceptions import BadRequestError
    from .main import completion
    from .providers.registry import resolve

    if kwargs.get("custom_llm_provider") is None:
        try:
            resolve(model)
        except BadRequestError:
            kwargs["custom_llm_provider"] = "openai"
    return completion(model=model, messages=messages, stream=stream, mock_response=mock_response, **kwargs)


def provider_names() -> list[str]:
    """LiteLLM's ``provider_list``: the provider prefixes llmrelay serves (LiteLLM's spelling)."""
    from .providers.registry import PROVIDERS

    return list(PROVIDERS)


def __getattr__(name: str) -> Any:  # PEP 562: ``provider_list`` is made when first asked for
    if name == "provider_list":
        return provider_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
