"""LiteLLM's per-error-type Router policies: ``retry_policy``, ``model_group_retry_policy`` and
``allowed_fails_policy``.

A :class:`RetryPolicy` says how many times each kind of failure is retried (it replaces
``num_retries`` for the kinds it names); an :class:`AllowedFailsPolicy` how many failures of
each kind a deployment may have within the window before it cools down (it replaces
``allowed_fails`` for those kinds). Both take LiteLLM's field names, as keyword arguments, as
the dict of a config file's ``router_settings`` or as any object with those attributes, so
``from litellm.router import RetryPolicy`` code runs unchanged. Sans-I/O: nothing here waits.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import (
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    ContentPolicyViolationError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)

__all__ = ["RetryPolicy", "AllowedFailsPolicy", "parse_policy", "parse_group_policies"]

#: Error kinds as LiteLLM names them, most specific first (a content-policy violation is also a
#: bad request), with the exception class each stands for.
_KINDS: tuple[tuple[str, type[BaseException]], ...] = (
    ("AuthenticationError", AuthenticationError),
    ("TimeoutError", Timeout),
    ("RateLimitError", RateLimitError),
    ("InternalServerError", InternalServerError),
    ("ServiceUnavailableError", ServiceUnavailableError),
    ("BadGatewayError", BadGatewayError),
    ("NotFoundError", NotFoundError),
    ("ContentPolicyViolationError", ContentPolicyViolationError),
    ("BadRequestError", BadRequestError),
)


class _Policy:
    """A count per error kind (None: the Router's general setting applies)."""

    _suffix = ""
    _kinds: tuple[str, ...] = ()

    def __init__(self, **counts: int | None) -> None:
        fields = {kind + self._suffix for kind in self._kinds}
        unknown = sorted(set(counts) - fields)
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown field(s) {unknown}; known: {sorted(fields)}")
        for kind in self._kinds:
            name = kind + self._suffix
            value = counts.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{type(self).__name__}.{name} must be a non-negative integer, got {value!r}")
            setattr(self, name, value)

    def count_for(self, exc: BaseException) -> int | None:
        """The count this policy sets for ``exc``'s kind, or None when it sets none (a kind left
        unset falls through to a broader one it belongs to, as in LiteLLM: a content-policy
        violation counts as a bad request)."""
        for kind, cls in _KINDS:
            if isinstance(exc, cls):
                value = getattr(self, kind + self._suffix, None)
                if value is not None:
                    return value
        return None

    def model_dump(self, exclude_none: bool = False) -> dict[str, int | None]:
        """The fields as a dict (LiteLLM's policies are pydantic models)."""
        out = {kind + self._suffix: getattr(self, kind + self._suffix) for kind in self._kinds}
        return {k: v for k, v in out.items() if v is not None} if exclude_none else out

    dict = model_dump

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.model_dump() == self.model_dump()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.model_dump(exclude_none=True).items())
        return f"{type(self).__name__}({fields})"


class RetryPolicy(_Policy):
    """Retries per error kind: ``BadRequestErrorRetries``, ``AuthenticationErrorRetries``,
    ``TimeoutErrorRetries``, ``RateLimitErrorRetries``, ``ContentPolicyViolationErrorRetries``,
    ``InternalServerErrorRetries``. A kind it names is retried that many times, even one the
    Router would not retry by itself (a 400 or 401); other kinds follow ``num_retries``."""

    _suffix = "Retries"
    _kinds = ("BadRequestError", "AuthenticationError", "TimeoutError", "RateLimitError",
              "ContentPolicyViolationError", "InternalServerError")


class AllowedFailsPolicy(_Policy):
    """Failures per error kind a deployment may have within the window before it cools down:
    ``BadRequestErrorAllowedFails``, ``AuthenticationErrorAllowedFails``,
    ``TimeoutErrorAllowedFails``, ``RateLimitErrorAllowedFails``,
    ``ContentPolicyViolationErrorAllowedFails``, ``InternalServerErrorAllowedFails``,
    ``ServiceUnavailableErrorAllowedFails``, ``BadGatewayErrorAllowedFails``,
    ``NotFoundErrorAllowedFails``; other kinds follow ``allowed_fails``."""

    _suffix = "AllowedFails"
    _kinds = ("BadRequestError", "AuthenticationError", "TimeoutError", "RateLimitError",
              "ContentPolicyViolationError", "InternalServerError", "ServiceUnavailableError",
              "BadGatewayError", "NotFoundError")


def parse_policy(value: Any, cls: type[_Policy], what: str) -> _Policy | None:
    """``value`` (None, a dict, a policy of ours or any object with LiteLLM's fields) as ``cls``."""
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, dict):
        fields = value
    else:
        dump = getattr(value, "model_dump", None) or getattr(value, "dict", None)
        fields = dump() if callable(dump) else getattr(value, "__dict__", None)
        if not isinstance(fields, dict):
            raise ValueError(f"{what} must be a dict of {cls.__name__} fields, got {type(value).__name__}")
    try:
        return cls(**{str(k): v for k, v in fields.items()})
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def parse_group_policies(value: Any, what: str = "model_group_retry_policy") -> dict[str, RetryPolicy]:
    """``{model group: RetryPolicy}`` from a dict of policies (or None)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict of model group → RetryPolicy, got {type(value).__name__}")
    return {str(group): parse_policy(policy, RetryPolicy, f"{what}[{group!r}]")  # type: ignore[misc]
            for group, policy in value.items() if policy is not None}
