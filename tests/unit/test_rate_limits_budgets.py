"""The local rate-limit backend and budget periods (pure, with a fake clock)."""

from __future__ import annotations

import asyncio
import gc
from datetime import datetime, timezone

import pytest

from llmrelay.proxy.budgets import DurationError, next_reset, parse_duration
from llmrelay.proxy.rate_limits import Limit, LocalLimits, rate_limit_headers


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_rpm_sliding_window_and_retry_after():
    clock = Clock()
    limits = LocalLimits(clock)
    rule = [Limit("key:a", "key", rpm=2)]
    assert limits.acquire_now(rule).remaining_requests == 1
    clock.t += 10
    assert limits.acquire_now(rule).remaining_requests == 0
    denied = limits.acquire_now(rule)
    assert not denied.allowed and denied.retry_after == pytest.approx(50)
    assert denied.reason == "key rpm limit (2/min)"
    clock.t += 50.01
    assert limits.acquire_now(rule).allowed  # the first request left the window
    assert not limits.acquire_now(rule).allowed


def test_all_or_nothing_over_several_counters():
    limits = LocalLimits(Clock())
    key = Limit("key:a", "key", rpm=5)
    team = Limit("team:t", "team", rpm=1)
    assert limits.acquire_now([key, team]).allowed
    denied = limits.acquire_now([key, team])
    assert not denied.allowed and denied.reason.startswith("team")
    # the refused request was not counted on the key
    assert limits.acquire_now([key]).remaining_requests == 3
    # nor did it keep a parallel slot on a counter that passed before the one that refused
    key = Limit("key:b", "key", rpm=5, parallel=2)
    assert limits.acquire_now([key, team]).allowed is False  # (team:t is full)
    assert limits.acquire_now([key]).allowed
    assert limits.acquire_now([key]).allowed
    assert limits.acquire_now([key]).reason == "key max_parallel_requests limit (2)"
    assert limits.acquire_now([Limit("key:b", "key", rpm=5)]).remaining_requests == 2


def test_parallel_and_tokens():
    clock = Clock()
    limits = LocalLimits(clock)
    rule = [Limit("k", "key", tpm=100, parallel=1)]
    first = limits.acquire_now(rule)
    assert first.allowed and first.remaining_tokens == 100
    assert limits.acquire_now(rule).reason == "key max_parallel_requests limit (1)"
    asyncio.run(limits.release(rule, 60))
    assert limits.acquire_now(rule).remaining_tokens == 40
    limits.release_now(rule, 60)
    denied = limits.acquire_now(rule)
    assert not denied.allowed and denied.reason == "key tpm limit (100/min)" and denied.retry_after == pytest.approx(60)
    clock.t += 60.01
    assert limits.acquire_now(rule).allowed
    headers = dict(rate_limit_headers(limits.acquire_now([Limit("z", "key", rpm=3, tpm=7)])))
    assert headers == {b"x-ratelimit-limit-requests": b"3", b"x-ratelimit-remaining-requests": b"2",
                       b"x-ratelimit-limit-tokens": b"7", b"x-ratelimit-remaining-tokens": b"7"}


def test_tokens_that_left_the_window_stay_out_of_the_sum():
    """Admission prunes the token window itself (no prune call): the entries it drops leave the
    counter's sum for good, not only that request's check."""
    clock = Clock()
    limits = LocalLimits(clock)
    rule = [Limit("k", "key", tpm=150)]
    limits.acquire_now(rule)
    limits.release_now(rule, 100)
    clock.t += 60.01
    assert limits.acquire_now(rule).remaining_tokens == 150  # the 100 tokens left the window
    limits.release_now(rule, 100)
    clock.t += 1
    assert limits.acquire_now(rule).remaining_tokens == 50
    assert limits.peek("k")[1] == 100


def test_the_token_window_holds_no_collected_objects_and_frees_in_order():
    """A request's tokens stay in the window for 60 s as a float and an int (nothing the garbage
    collector tracks: a tuple per request there made the young collections come sooner), and a
    refusal's Retry-After is when enough of the oldest entries have left it."""
    clock = Clock()
    limits = LocalLimits(clock)
    rule = [Limit("k", "key", tpm=100)]
    for tokens in (30, 30, 50):
        assert limits.acquire_now(rule).allowed
        limits.release_now(rule, tokens)
        clock.t += 10
    counter = limits._counters["k"]
    assert not any(gc.is_tracked(entry) for entry in (*counter.tokens, *counter.token_times))
    denied = limits.acquire_now(rule)  # 110 used at t=1030: below 100 once the first 30 leave (t=1060)
    assert not denied.allowed and denied.retry_after == pytest.approx(30)
    clock.t += 30.01
    assert limits.acquire_now(rule).remaining_tokens == 20
    assert limits.peek("k") == (0, 80)  # (no rpm: requests not counted)


def test_idle_counters_are_forgotten():
    clock = Clock()
    limits = LocalLimits(clock)
    for i in range(5000):
        limits.acquire_now([Limit(f"key:{i}", "key", rpm=10)])
        clock.t += 0.1
    assert len(limits._counters) < 5000


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("1m", 60), ("1h", 3600), ("1d", 86400), ("30d", 30 * 86400),
                                          ("2w", 14 * 86400), ("1.5h", 5400), ("hourly", 3600),
                                          ("Daily", 86400), ("weekly", 7 * 86400), ("monthly", 30 * 86400)])
def test_durations(text, seconds):
    assert next_reset(text, 1000.0) == 1000.0 + seconds


def test_calendar_months():
    jan31 = datetime(2026, 1, 31, 12, tzinfo=timezone.utc).timestamp()
    assert datetime.fromtimestamp(next_reset("1mo", jan31), timezone.utc) == datetime(2026, 2, 28, 12, tzinfo=timezone.utc)
    assert datetime.fromtimestamp(next_reset("12mo", jan31), timezone.utc).year == 2027


@pytest.mark.parametrize("bad", ["", "10", "1y", "abc", None, 5, "yearly"])
def test_bad_durations(bad):
    with pytest.raises(DurationError):
        parse_duration(bad)


def test_spend_header_text_is_the_float_repr():
    """``x-litellm-key-spend`` is ``repr(float(spend))``; its fast path (orjson) must write the
    same text, including where the two would differ (below 1e-4, from 1e16)."""
    import math
    import random

    from llmrelay.proxy.keys import float_text

    rng = random.Random(13)
    values = [0, 0.0, -0.0, 1, True, 5e-5, 1e-4, 1e-5, 0.1 + 0.2, 1e15, 1e16, 1e22, 5e-324, -3.5,
              math.inf, math.nan, 9.999999999999999e15, math.nextafter(1e-4, 0)]
    values += [rng.random() * 10 ** rng.uniform(-7, 18) for _ in range(20000)]
    for value in values:
        assert float_text(value) == repr(float(value)).encode(), value
