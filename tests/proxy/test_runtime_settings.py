"""Issue 18: the gateway's process freezes its start-up objects, makes full GCs rare and
shortens the GIL switch interval.

A full garbage collection stops the event loop for tens of milliseconds with a few hundred open
streams, and a background thread running Python kept it waiting for the GIL up to 5 ms
(proxy/runtime.py), so ``llmrelay proxy`` (and each of its ``--workers``) freezes what its
start-up left alive, collects generation 2 less often and lets the loop wait less. The library and an app embedding
``ProxyApp`` keep Python's defaults. A custom callback in the real gateway process reports what
it sees there.
"""

from __future__ import annotations

import gc
import json
import sys
import time

import openai
import pytest

from llmrelay.proxy.app import ProxyApp
from llmrelay.proxy.config import parse_config
from llmrelay.proxy.runtime import FULL_EVERY, MIDDLE_EVERY, SWITCH_INTERVAL
from servers.openai_server import FakeOpenAIServer
from timing import DEADLINE

from .harness import Gateway
from .test_tokenizer_warmup import _lifespan

REPORTER = '''
import gc, json, os, sys
from llmrelay.integrations.custom_logger import CustomLogger


class Reporter(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        with open(os.environ["GC_REPORT"], "a") as f:
            f.write(json.dumps({"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold(),
                                "enabled": gc.isenabled(), "switch": sys.getswitchinterval()}) + "\\n")


reporter = Reporter()
'''


@pytest.fixture(scope="module")
def upstream():
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.mark.parametrize("args", [[], ["--workers", "2"]], ids=["one-process", "workers"])
def test_the_gateway_process_tunes_its_interpreter_after_start_up(upstream, tmp_path, args):
    (tmp_path / "reporting.py").write_text(REPORTER)
    report = tmp_path / "gc.jsonl"
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstream.url}/v1\n      api_key: sk-upstream\n"
        "litellm_settings:\n  callbacks: [reporting.reporter]\n")
    with Gateway(str(config), args=args, env={"GC_REPORT": str(report)}) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
        deadline = time.monotonic() + DEADLINE
        while not (report.exists() and report.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
    seen = json.loads(report.read_text().splitlines()[0])
    assert seen["enabled"]
    assert seen["frozen"] > 10_000  # modules, classes, config, router: never walked again
    young, middle, full = seen["threshold"]
    assert young == gc.get_threshold()[0] and (middle, full) == (MIDDLE_EVERY, FULL_EVERY)
    assert seen["switch"] == pytest.approx(SWITCH_INTERVAL) and SWITCH_INTERVAL < 0.005


async def test_an_embedded_app_leaves_the_collector_alone(upstream):
    """``ProxyApp`` used as a library (mounted in someone's server): Python's defaults stay."""
    before = gc.get_freeze_count(), gc.get_threshold(), sys.getswitchinterval()
    app = ProxyApp(parse_config(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstream.url}/v1\n      api_key: sk-upstream\n"))
    await _lifespan(app, "startup")
    assert (gc.get_freeze_count(), gc.get_threshold(), sys.getswitchinterval()) == before
