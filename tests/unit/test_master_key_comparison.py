"""The master key is compared in constant time: every check, right, wrong, or missing key, goes
through ``hmac.compare_digest`` (checked by mechanism: no timing is measured)."""

from __future__ import annotations

import asyncio
import hmac

from llmrelay.proxy import auth
from llmrelay.proxy.keys import KeyManager, Principal

MASTER = "sk-master-constant-time-0001"


def test_every_master_key_check_goes_through_compare_digest(monkeypatch, tmp_path):
    calls = []
    compare = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    keys = KeyManager(MASTER, url=f"sqlite:///{tmp_path}/keys.db")

    async def check(presented):
        return await keys.authenticate(presented)

    assert isinstance(asyncio.run(check(MASTER.encode())), Principal)
    assert len(calls) == 1
    for presented in (b"sk-master-constant-time-0002", b"sk-x", None):
        who = asyncio.run(check(presented))
        assert not (isinstance(who, Principal) and who.master)
    assert len(calls) == 4  # the wrong ones and the missing one were compared too
    assert all(b == MASTER.encode() for _, b in calls)
