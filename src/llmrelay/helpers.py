"""Small LiteLLM helpers: response text, debug logging, key checks, mock calls, provider names,
the models the environment's keys reach, a function's tool schema, base64 checks."""

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
    "get_valid_models",
    "function_to_dict",
    "is_base64_encoded",
    "get_token_count",
    "turn_on_debug",
    "get_modified_max_tokens",
    "exception_type",
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
    if name == "openai_error_class":
        return _openai_error_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def turn_on_debug() -> None:
    """LiteLLM's ``_turn_on_debug()``: debug logging of the ``llmrelay`` logger to stderr
    (as ``llmrelay.set_verbose = True``)."""
    import llmrelay

    llmrelay.set_verbose = True


def get_token_count(messages: list[dict[str, Any]], model: str) -> int:
    """LiteLLM's ``get_token_count(messages, model)``: ``token_counter(model=, messages=)``."""
    from .tokens import token_counter

    return token_counter(model=model, messages=messages)


def get_valid_models(check_provider_endpoint: bool = False, custom_llm_provider: str | None = None,
                     **_: Any) -> list[str]:
    """LiteLLM's ``get_valid_models()``: the models of the providers whose ``<PROVIDER>_API_KEY``
    is set in the environment (read from the price table; OpenAI's chat models then its text
    completion models, as LiteLLM lists them). ``custom_llm_provider`` limits it to one
    provider. No endpoint is asked (``check_provider_endpoint`` is accepted and ignored)."""
    import os

    from . import cost

    known = provider_names()
    if custom_llm_provider:
        providers = [custom_llm_provider]
    else:
        providers = []
        for key in os.environ:
            if key.endswith("_API_KEY"):
                name = key[: -len("_API_KEY")].lower()
                if name in known and name not in providers:
                    providers.append(name)
    table = cost.model_cost
    out: list[str] = []
    for provider in providers:
        if provider == "openai":
            out.extend(sorted(cost.open_ai_chat_completion_models))
            out.extend(sorted(cost.open_ai_text_completion_models))
        else:
            out.extend(sorted(m for m, e in table.items() if e.get("litellm_provider") == provider))
    return out


_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array",
               "dict": "object", "tuple": "array", "None": "null", "NoneType": "null"}


def function_to_dict(function: Any) -> dict[str, Any]:
    """LiteLLM's ``function_to_dict``: the OpenAI function schema (``name``, ``description``,
    ``parameters``) of a Python function, from its signature and its numpydoc docstring
    (``Parameters`` section: ``name : type`` lines, each followed by its indented description).

    A docstring type ``{'a', 'b'}`` gives ``"type": "string"`` with ``"enum": ["a", "b"]`` (a
    list; LiteLLM puts the list's repr, a string, there). Parameters without a default are
    ``required``.
    """
    import inspect
    import re

    doc = inspect.getdoc(function) or ""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip():
            if summary:
                break
            continue
        summary.append(line.strip())
    documented: dict[str, dict[str, Any]] = {}
    in_params = False
    current: dict[str, Any] | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped == "Parameters" and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
            in_params = True
            continue
        if not in_params or set(stripped) == {"-"}:
            continue
        if stripped and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and ":" not in stripped:
            break  # the next section (Returns, …)
        match = re.match(r"^(\w+)\s*:\s*(.*)$", line) if line[:1] not in (" ", "\t") else None
        if match:
            current = documented[match.group(1)] = {"doc_type": match.group(2).strip(), "description": []}
        elif current is not None and stripped:
            current["description"].append(stripped)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, param in inspect.signature(function).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        info = documented.get(name, {})
        schema: dict[str, Any] = {}
        doc_type = info.get("doc_type", "")
        if doc_type.startswith("{") and doc_type.endswith("}"):
            schema["type"] = "string"
            schema["enum"] = [v.strip().strip("'\"") for v in doc_type[1:-1].split(",") if v.strip()]
        else:
            annotation = param.annotation
            type_name = getattr(annotation, "__name__", None) if annotation is not param.empty else None
            if isinstance(annotation, str):
                type_name = annotation
            type_name = type_name or doc_type.split(",")[0].strip()
            if not type_name and param.default is not param.empty and param.default is not None:
                type_name = type(param.default).__name__  # untyped: the default's type
            if type_name in _JSON_TYPES:
                schema["type"] = _JSON_TYPES[type_name]
        if info.get("description"):
            schema["description"] = " ".join(info["description"])
        properties[name] = schema
        if param.default is param.empty:
            required.append(name)
    return {
        "name": function.__name__,
        "description": " ".join(summary),
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


def is_base64_encoded(s: str) -> bool:
    """LiteLLM's ``is_base64_encoded``: whether ``s`` (a ``data:…;base64,`` URL or bare text) is
    valid base64."""
    import base64
    import binascii

    if not isinstance(s, str) or not s:
        return False
    if s.startswith("data:"):
        head, sep, s = s.partition(",")
        if not sep:
            return False
    try:
        base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def get_modified_max_tokens(model: str, base_model: str, messages: list[dict[str, Any]] | None,
                            user_max_tokens: int | None, buffer_perc: float | None = None,
                            buffer_num: float | None = None) -> int | None:
    """LiteLLM's ``get_modified_max_tokens``: the ``max_tokens`` to send so that a call fits.

    None when the user gave none; the user's value when the model's output limit is unknown;
    for a model whose input and output share one window (``max_input_tokens`` equal to its
    output limit), the room left after the prompt (counted with ``token_counter``, plus a
    buffer of ``max(buffer_perc × prompt, buffer_num)``, 10% / 10 by default) when the user's
    value would not fit, and the user's value unchanged when even the prompt does not fit (the
    call then fails as it would); else at most the model's output limit.
    """
    import llmrelay  # (read at call time: tests replace llmrelay.token_counter)

    if user_max_tokens is None:
        return None
    try:
        info = llmrelay.get_model_info(model=model)
        max_output = llmrelay.get_max_tokens(base_model)
    except Exception:  # noqa: BLE001 - an unknown model: the user's value, as LiteLLM
        return user_max_tokens
    if max_output is None:
        return user_max_tokens
    input_tokens = llmrelay.token_counter(model=base_model, messages=messages)
    buffer = max((0.1 if buffer_perc is None else buffer_perc) * input_tokens,
                 10 if buffer_num is None else buffer_num)
    input_tokens += int(buffer)
    if info.get("max_input_tokens") == max_output:  # one window shared by prompt and answer
        if input_tokens > max_output:
            return user_max_tokens
        if user_max_tokens + input_tokens > max_output:
            return max_output - input_tokens
        return user_max_tokens
    return min(user_max_tokens, max_output)


def _openai_error_class() -> type[BaseException]:
    """LiteLLM's ``litellm.OpenAIError``: the ``openai`` package's base error (importing
    ``openai`` links llmrelay's errors to its classes, so ``except litellm.OpenAIError`` catches
    them); llmrelay's base error when ``openai`` is not installed."""
    try:
        from openai import OpenAIError
    except ImportError:
        from .exceptions import LLMRelayError

        return LLMRelayError
    from .exceptions import _link_openai

    _link_openai()
    return OpenAIError


def exception_type(model: str | None = None, original_exception: BaseException | None = None,
                   custom_llm_provider: str | None = None, **_: Any) -> Any:
    """LiteLLM's ``exception_type``: raise ``original_exception`` as llmrelay's exception for
    it (an llmrelay exception as it is; another one by its ``status_code`` and wording, as a
    ``mock_response`` exception is mapped)."""
    from .exceptions import LLMRelayError
    from .mock import mocked_error

    if isinstance(original_exception, LLMRelayError):
        raise original_exception
    error = mocked_error(original_exception, custom_llm_provider, model) if original_exception is not None else None
    if error is None:
        from .exceptions import APIConnectionError

        error = APIConnectionError(str(original_exception), llm_provider=custom_llm_provider, model=model)
    raise error
