"""The keyed gateway's own steps per request, in-process (no HTTP): authenticate, admit,
headers, finish and the spend row with its queue (``--steps``), and the spend writer's batch
(``--write``: rows written through ``SpendQueue.flush``, with its thread hand-off), for a key
as ``bench_keys.py`` makes it, on a real SQLite file. Meant for callgrind, where the difference
of two runs is the per-request (or per-batch) cost::

    valgrind --tool=callgrind python bench/steps_keys.py --steps 1500   # minus --steps 500
    valgrind --tool=callgrind python bench/steps_keys.py --write 260 --rows 1   # minus --write 20
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from llmrelay.proxy.keys import KeyManager  # noqa: E402

MODEL = "gpt-4o-mini"


class _Result:
    """A non-streamed answer as the gateway holds it: its hidden params and id."""

    __slots__ = ("_hp", "id", "usage")

    def __init__(self, n: int) -> None:
        self._hp = {"model_id": "dep-1", "response_cost": 0.00005}
        self.id = f"chatcmpl-{n}"
        self.usage = {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}


class _Ctx:
    __slots__ = ("start", "request_id", "usage", "result", "cost", "error", "disconnected", "stream", "status",
                 "messages", "auth")

    def __init__(self, n: int) -> None:
        self.start = time.perf_counter()
        self.request_id = b"req-%012d" % n
        self.result = _Result(n)
        self.usage = self.result.usage
        self.cost = None
        self.error = None
        self.disconnected = False
        self.stream = False
        self.status = 200
        self.messages = None
        self.auth = None


async def _keys(tmp: str) -> tuple[KeyManager, bytes]:
    keys = KeyManager("sk-master", url=f"sqlite:///{tmp}/keys.db",
                      deployment_models={MODEL: {"openai/gpt-4o-mini"}},
                      deployment_lookup=lambda _id: {"litellm_params": {"model": "openai/gpt-4o-mini",
                                                                        "input_cost_per_token": 1e-6,
                                                                        "output_cost_per_token": 2e-6}})
    store = await keys._try_open(create=True)
    await keys._warm
    presented = b"sk-bench-key-0123456789"
    from llmrelay.proxy.keys import _sha256
    token = _sha256(presented).hexdigest()
    now = time.time()
    store.insert("key", {"token": token, "models": [MODEL], "max_budget": 1e9, "budget_duration": "1d",
                         "budget_reset_at": now + 86400, "rpm_limit": 10**9, "tpm_limit": 10**12,
                         "max_parallel_requests": 10**6, "metadata": {"bench": True}})
    return keys, presented


async def steps(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        keys, presented = await _keys(tmp)
        keys.spend.interval = 3600.0  # (written below, not by the task)
        for i in range(n):
            ctx = _Ctx(i)
            who = await keys.authenticate(presented)
            ctx.auth = who
            refused = await keys.admit(who, MODEL, None, None)
            assert refused is None, refused.message
            keys.headers(who)
            await keys.finish(who, ctx)
            keys.on_request_end(ctx)
            if keys.spend.queued >= 500:
                await keys.spend.flush()
        await keys.spend.flush()
        keys.store.close()


async def write(batches: int, rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        keys, presented = await _keys(tmp)
        who = await keys.authenticate(presented)
        await keys.admit(who, MODEL, None, None)
        counter = itertools.count()

        def fill() -> None:
            for _ in range(rows):
                ctx = _Ctx(next(counter))
                ctx.auth = who
                who.charged = True
                ctx.cost = 0.00005
                keys.on_request_end(ctx)

        for _ in range(5):  # (statement shapes compiled, caches warm)
            fill()
            await keys.spend.flush()
        for _ in range(batches):
            fill()
            await keys.spend.flush()
        keys.store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=0, help="requests through the keyed steps")
    parser.add_argument("--write", type=int, default=0, help="spend batches written")
    parser.add_argument("--rows", type=int, default=1, help="rows a batch (--write)")
    args = parser.parse_args()
    if args.steps:
        asyncio.run(steps(args.steps))
    if args.write:
        asyncio.run(write(args.write, args.rows))


if __name__ == "__main__":
    main()
