"""LiteLLM-compatible extras of the Router that sit before a call.

* :class:`DeploymentView` — what ``Router.get_deployment(model_id=…)`` returns: the ``model_list``
  entry, read as a dict (``dep["litellm_params"]["model"]``) or by attribute
  (``dep.litellm_params.api_key``), with ``model_dump()`` like LiteLLM's pydantic ``Deployment``.
* :func:`context_window` / :func:`fitting` — ``enable_pre_call_checks``: drop the deployments
  whose context window is too small for the request's prompt.
* :func:`mock_fallback_error` — ``mock_testing_fallbacks=True``: the error the first group's
  deployments answer with, so the fallback serves the call.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from ..exceptions import (
    APIError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    RateLimitError,
)

__all__ = ["DeploymentView", "context_window", "prompt_tokens", "fitting", "no_fit_error", "mock_fallback_error",
           "mock_fallback_kind", "MOCK_FALLBACK_FLAGS"]


class DeploymentView(dict):
    """A ``model_list`` entry as a dict that also reads by attribute, recursively.

    Absent fields read as ``None`` (LiteLLM's ``Deployment`` has optional fields with ``None``
    defaults): ``dep.litellm_params.api_base`` is ``None`` when no api_base was configured.
    The view is a deep copy: changing it does not change the router.
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = self.get(name)
        if type(value) is dict:
            value = DeploymentView(value)
            self[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def model_dump(self, *, exclude_none: bool = False, **_: Any) -> dict[str, Any]:
        """A plain ``dict`` (recursively), like pydantic's ``model_dump``."""
        return _plain(self, exclude_none)

    def dict(self, **kwargs: Any) -> dict[str, Any]:  # pydantic v1 name
        return self.model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        import orjson

        return orjson.dumps(self.model_dump(**kwargs), default=str).decode()

    @classmethod
    def of(cls, entry: dict[str, Any]) -> "DeploymentView":
        return cls(copy.deepcopy(entry))


def _plain(value: Any, exclude_none: bool) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v, exclude_none) for k, v in value.items() if not (exclude_none and v is None)}
    if isinstance(value, list):
        return [_plain(v, exclude_none) for v in value]
    return value


# ================================================================ enable_pre_call_checks
def context_window(dep: Any) -> int | None:
    """The deployment's input token limit: ``model_info.max_input_tokens``, else
    ``model_info.max_tokens`` (also read from ``litellm_params``), else the model table's
    (:func:`llmrelay.cost.get_model_info` of ``model_info.base_model`` or the model); None
    when unknown."""
    for source in (dep.model_info, dep.litellm_params):
        window = _window(source)
        if window is not None:
            return window
    from ..cost import get_model_info

    try:
        return _window(get_model_info(dep.model_info.get("base_model") or dep.model))
    except (ValueError, TypeError):  # not in the table (ModelNotMappedError is a ValueError)
        return None


def _window(source: Any) -> int | None:
    for key in ("max_input_tokens", "max_tokens"):
        value = source.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


def prompt_tokens(model: str, messages: Any, kwargs: dict[str, Any]) -> int:
    """The prompt's tokens as the deployment would count them (messages and tools)."""
    from ..tokens import token_counter

    if not isinstance(messages, list):
        return 0
    return token_counter(model=model, messages=messages, tools=kwargs.get("tools"))


def fitting(deps: Iterable[Any], messages: Any, kwargs: dict[str, Any]) -> list[Any]:
    """The deployments whose context window holds the prompt (unknown windows always fit).

    Token counts are made once per tokenizer-relevant model name.
    """
    counts: dict[str, int] = {}
    out = []
    for dep in deps:
        window = context_window(dep)
        if window is None:
            out.append(dep)
            continue
        count = counts.get(dep.model)
        if count is None:
            count = counts[dep.model] = prompt_tokens(dep.model, messages, kwargs)
        if count <= window:
            out.append(dep)
    return out


def no_fit_error(group: str, deps: list[Any], messages: Any, kwargs: dict[str, Any]) -> ContextWindowExceededError:
    """The error when no deployment of ``group`` has a context window large enough."""
    windows = sorted({w for w in (context_window(d) for d in deps) if w is not None})
    tokens = prompt_tokens(deps[0].model, messages, kwargs) if deps else 0
    return ContextWindowExceededError(
        f"enable_pre_call_checks: no deployment of {group!r} has a context window large enough for this "
        f"call ({tokens} prompt tokens; windows: {windows})",
        model=group,
        code="context_length_exceeded",
    )


# ================================================================ mock_testing_fallbacks
#: LiteLLM's request flags that make the called group fail, to test each kind of fallback.
MOCK_FALLBACK_FLAGS = {
    "mock_testing_fallbacks": "generic",
    "mock_testing_content_policy_fallbacks": "content_policy",
    "mock_testing_context_window_fallbacks": "context_window",
    "mock_testing_rate_limit_error": "rate_limit",  # (the first attempt only: a retry is real)
}


def mock_fallback_kind(kwargs: dict[str, Any]) -> str | None:
    """Pop LiteLLM's ``mock_testing_*fallbacks`` flags out of a call's ``kwargs``: which kind of
    failure the called group should mock (None: none)."""
    kind = None
    if kwargs:
        for flag, name in MOCK_FALLBACK_FLAGS.items():
            if kwargs.pop(flag, False) and kind is None:
                kind = name
    return kind


def mock_fallback_error(group: str, model: str, kind: str | None = "generic") -> APIError:
    """What each deployment of the first group answers with under ``mock_testing_fallbacks``
    (``kind``: ``content_policy`` and ``context_window`` mock those errors, for their fallbacks)."""
    if kind == "rate_limit":
        return RateLimitError(f"mock_testing_rate_limit_error: a mock rate limit of {model} (group {group!r})",
                              model=model)
    flag = "mock_testing_fallbacks" if kind == "generic" else f"mock_testing_{kind}_fallbacks"
    message = f"{flag}: a mock failure of {model} (group {group!r}) to trigger the fallbacks"
    if kind == "content_policy":
        return ContentPolicyViolationError(message, model=model)
    if kind == "context_window":
        return ContextWindowExceededError(message, model=model, code="context_length_exceeded")
    return InternalServerError(message, model=model)
