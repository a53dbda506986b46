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
    keys = _KEYS
    try:  # every name seen before (an upstream sends the same names on every response)
        out = {keys[name]: value for name, value in headers.items()}
    except KeyError:
        if len(keys) + len(headers) > 4096:  # (an upstream sending ever new names: start over)
            keys.clear()
            _LIMIT_NAMES.clear()
        for name, _ in headers.items():
            if name not in keys:
                _learn(name)
        out = {keys[name]: value for name, value in headers.items()}
    if not _LIMIT_NAMES.keys().isdisjoint(headers.keys()):
        # (the rate-limit names among the headers, in their order, picked in C: OpenAI sends ~24
        # headers, 4 of them these; each standard name placed where it first comes, last value)
        limits = _LIMIT_NAMES
        if type(headers) is dict:  # (one value a name)
            for name in list(filter(limits.__contains__, headers)):
                out[limits[name]] = headers[name]
        else:
            found: dict[str, str] = {}
            for name, value in headers.items():
                standard = limits.get(name)
                if standard is not None:
                    found[standard] = value
            out.update(found)
    return out


#: A response header's name as it came → its key in ``additional_headers``; and the names
#: that are rate-limit headers → their OpenAI name (both filled as names are first seen).
_KEYS: dict[str, str] = {}
_LIMIT_NAMES: dict[str, str] = {}


def _learn(name: str) -> None:
    lower = name.lower()
    _KEYS[name] = lower if "llm_provider" in lower else _PREFIX + lower
    standard = _RATE_LIMITS.get(lower)
    if standard is not None:
        _LIMIT_NAMES[name] = standard
