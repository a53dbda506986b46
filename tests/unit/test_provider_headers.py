"""additional_headers (llmrelay/provider_headers.py): the names it has seen are remembered, and
the result is what the plain per-header rule gives, whatever the mapping and the names."""

from __future__ import annotations

from multidict import CIMultiDict

from llmrelay import provider_headers
from llmrelay.provider_headers import additional_headers


def _rule(headers) -> dict:
    out, limits = {}, {}
    for name, value in headers.items():
        name = name.lower()
        out[name if "llm_provider" in name else "llm_provider-" + name] = value
        if name in provider_headers._RATE_LIMITS:
            limits[provider_headers._RATE_LIMITS[name]] = value
    out.update(limits)
    return out


def test_same_as_the_per_header_rule():
    cases = [{}, {"Content-Type": "a", "X-Request-Id": "r"},
             {"X-RateLimit-Limit-Requests": "10", "anthropic-ratelimit-tokens-remaining": "5", "llm_provider-x": "y"},
             {"content-type": "a", "Content-Type": "b"},
             CIMultiDict([("X-RateLimit-Remaining-Tokens", "1"), ("a", "1"), ("A", "2")])]
    for headers in cases * 2:  # (names unseen, then remembered)
        got = additional_headers(headers)
        assert got == _rule(headers) and list(got) == list(_rule(headers))


def test_ever_new_names_do_not_grow_the_memory():
    for i in range(5000):
        headers = {f"x-name-{i}": "v", "x-ratelimit-limit-tokens": "3"}
        assert additional_headers(headers) == _rule(headers)
    assert len(provider_headers._KEYS) <= 4096


def test_rate_limit_names_in_any_case_and_order():
    headers = {"x-ratelimit-remaining-tokens": "5", "Server": "s", "X-RateLimit-Remaining-Tokens": "6",
               "anthropic-ratelimit-requests-limit": "7", "x-ratelimit-limit-requests": "8"}
    for mapping in (headers, CIMultiDict(headers)):
        for _ in range(2):
            got = additional_headers(mapping)
            assert got == _rule(mapping) and list(got) == list(_rule(mapping))
    assert additional_headers(headers)["x-ratelimit-remaining-tokens"] == "6"
