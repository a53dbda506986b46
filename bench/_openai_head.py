"""Response heads as OpenAI sends them, for the benchmarks' fake upstreams (issue 18).

OpenAI answers a chat request with ~24 headers (its own ``openai-*`` and ``x-ratelimit-*``,
Cloudflare's ``cf-ray``, two ``set-cookie``…), and a gateway parses every one of them on every
request. A fake upstream sending 3 headers flatters the per-request cost by ~17 %, so the
benchmarks' upstreams send this set, its varying values changing as OpenAI's do: the request id,
processing time, the remaining and reset rate-limit figures, both cookies and the ray id per
response (10 of the 24 lines), the date per second.

``BENCH_UPSTREAM_HEADERS=minimal`` in the environment gives the old minimal heads (content
type and framing only), to compare with earlier figures.
"""

from __future__ import annotations

import email.utils
import itertools
import os
import time

__all__ = ["MINIMAL", "head_maker"]

#: Whether the minimal heads are asked for (``BENCH_UPSTREAM_HEADERS=minimal``).
MINIMAL = os.environ.get("BENCH_UPSTREAM_HEADERS", "").lower() == "minimal"

_BEFORE = (
    "HTTP/1.1 200 OK\r\n"
    "Date: %(date)s\r\n"
    "Content-Type: {content_type}\r\n"
    "{framing}"
    "Connection: keep-alive\r\n"
    "access-control-expose-headers: X-Request-ID\r\n"
    "openai-organization: user-4kq2x7c9m1bz8wd0r5tn3jpe\r\n"
    "openai-processing-ms: "
)
_MIDDLE = (
    "\r\nopenai-project: proj_Xw3v9KpQm2LrT8sYc4NdB7Hf\r\n"
    "openai-version: 2020-10-01\r\n"
    "x-ratelimit-limit-requests: 10000\r\n"
    "x-ratelimit-limit-tokens: 30000000\r\n"
    "x-ratelimit-remaining-requests: %(left_requests)d\r\n"
    "x-ratelimit-remaining-tokens: %(left_tokens)d\r\n"
    "x-ratelimit-reset-requests: %(reset_requests)dms\r\n"
    "x-ratelimit-reset-tokens: %(reset_tokens)dms\r\n"
    "x-request-id: req_"
)
_AFTER = (
    "\r\nstrict-transport-security: max-age=31536000; includeSubDomains; preload\r\n"
    "cf-cache-status: DYNAMIC\r\n"
    "set-cookie: __cf_bm=%(cookie)s.1764633405-1.0.1.1-Tq8Zr0mWcVx3bN7kLp2Hs9Fd4Jy6Ag5Qe1Ru8It3Ow7Ei0Pa2Sz4Xc6"
    "Vb8Nm1Kl3Jh5Gf7Dd9Ss0Aa2; path=/; expires=Wed, 02-Dec-26 00:26:45 GMT; domain=.api.openai.com; HttpOnly; "
    "Secure; SameSite=None\r\n"
    "set-cookie: _cfuvid=%(cookie)s-1764633405123-0.0.1.1-604800000; path=/; domain=.api.openai.com; HttpOnly; "
    "Secure; SameSite=None\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Server: cloudflare\r\n"
    "CF-RAY: %(ray)s-SJC\r\n"
    "alt-svc: h3=\":443\"; ma=86400\r\n"
    "\r\n"
)


def head_maker(content_type: str, framing: str, minimal: bool = MINIMAL):
    """A function of no arguments returning a response head (bytes): ``framing`` is the framing
    header line(s) (``"Transfer-Encoding: chunked\\r\\n"`` or ``"Content-Length: N\\r\\n"``).
    Each call's head has its own request id, processing time, cookies and ray id (a ``%``
    format of one template: cheap enough for a fake upstream)."""
    if minimal:
        head = (f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n{framing}"
                "connection: keep-alive\r\n\r\n").encode()
        return lambda: head
    template = (_BEFORE.replace("{content_type}", content_type).replace("{framing}", framing) + "%(ms)d"
                + _MIDDLE + "%(rid)s" + _AFTER).encode()
    counter = itertools.count(0x5f3a91c2)
    date = [0, b""]

    def make() -> bytes:
        n = next(counter)
        now = int(time.time())
        if now != date[0]:
            date[:] = now, email.utils.formatdate(now, usegmt=True).encode()
        return template % {b"date": date[1], b"ms": 180 + n % 120,
                           b"left_requests": 9999 - n % 7, b"left_tokens": 29999982 - n % 4093,
                           b"reset_requests": 6 + n % 11, b"reset_tokens": n % 17,
                           b"rid": b"%032x" % (n * 0x9E3779B97F4A7C15F39CC0605CEDC835 % (1 << 128)),
                           b"cookie": b"%024x" % (n * 40503), b"ray": b"%016x" % (n * 11400714819323198485 % (1 << 64))}

    return make
