"""``--workers N``: N processes share the socket, each with the config's settings applied."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import openai

from proxy.conftest import MASTER_KEY, UPSTREAM_KEY, gateway_config
from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer, repeated_chunk_stream


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        if b"spawn_main" in f.read():  # workers, not multiprocessing's resource tracker
                            out.append(int(entry))
                except OSError:
                    pass
    return out


def test_two_workers(tmp_path):
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as upstream:
        path = tmp_path / "config.yaml"
        path.write_text(gateway_config(upstream.url))
        with Gateway(str(path), ["--workers", "2"], env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
            deadline = time.monotonic() + 20
            while len(_children(gw.proc.pid)) < 2:
                assert time.monotonic() < deadline, "workers did not start"
                time.sleep(0.05)
            with openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20) as client:
                def call(i: int) -> str:
                    stream = client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": f"hi {i}"}], stream=True)
                    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

                with ThreadPoolExecutor(8) as pool:
                    texts = list(pool.map(call, range(24)))
                assert all(texts)
                # litellm_settings reached the workers: the repeat guard (limit 3) cuts this off
                for _ in range(2):
                    upstream.enqueue(repeated_chunk_stream(6))
                    try:
                        for _ in client.chat.completions.create(
                                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True):
                            pass
                    except openai.APIError as exc:
                        assert "REPEATED_STREAMING_CHUNK_LIMIT=3" in str(exc)
                    else:
                        raise AssertionError("the repeat guard did not apply in a worker")
            assert len(_children(gw.proc.pid)) == 2
