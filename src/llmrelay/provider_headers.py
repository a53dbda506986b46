"""``_hidden_params["additional_headers"]``: the provider's response headers, as LiteLLM reports them.

Every header of the upstream's response, its name lower-cased and prefixed ``llm_provider-``
(``llm_provider-x-request-id``…), plus the OpenAI rate-limit headers under their own names
(``x-ratelimit-remaining-requests``…), also when the provider spells them its own way
(Anthropic's ``anthropic-ratelimit-requests-remaining``…). No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["additional_headers"]

_PREFIX = "llm_provider-"

#: A provider's rate-limit header → the OpenAI name it is also reported under.
_RATE_LIMITS = {
    **{name: name for name in ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                               "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens")},
    "anthropic-ratelimit-requests-limit": "x-ratelimit-limit-requests",
    "anthropic-ratelimit-requests-remaining": "x-ratelimit-remaining-requests",
    "anthropic-ratelimit-tokens-limit": "x-ratelimit-limit-tokens",
    "anthropic-ratelimit-tokens-remaining": "x-ratelimit-remaining-tokens",
}


def additional_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``additional_headers`` of a response that came with ``headers``."""
    out: dict[str, str] = {}
    limits: dict[str, str] | None = None
    for name, value in headers.items():
        name = name.lower()
        out[name if "llm_provider" in name else _PREFIX + name] = value
        standard = _RATE_LIMITS.get(name)
        if standard is not None:
            if limits is None:
                limits = {}
            limits[standard] = value
    if limits:
        out.update(limits)
    return out
