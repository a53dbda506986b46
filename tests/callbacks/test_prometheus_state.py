"""LiteLLM's state gauges at /metrics (budgets, a key's per-model limits, deployment state and
limits), scraped from the real gateway in one process and under ``--workers 2``, parsed with
prometheus_client's parser."""

from __future__ import annotations

import asyncio
import hashlib
import math

import httpx
import openai
import pytest

from dbs import database_for
from proxy.conftest import UPSTREAM_KEY
from proxy.harness import Gateway
from proxy.test_keys import IN_PRICE, OUT_PRICE, Admin, keys_config
from servers.openai_server import FakeOpenAIServer, error_reply
from timing import eventually, wait_for

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

WORKERS = pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one-process", "two-workers"])
MESSAGES = [{"role": "user", "content": "Hi there"}]


def gauges(url: str) -> dict[str, dict[tuple, float]]:
    """name → {sorted label items: value} of every sample on the page."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(page: dict, name: str, **labels: str) -> float | None:
    """The one sample of ``name`` with these labels (among others), or None."""
    found = [v for k, v in page.get(name, {}).items() if all((n, labels[n]) in k for n in labels)]
    assert len(found) <= 1, (name, labels, page.get(name))
    return found[0] if found else None


@pytest.fixture
def keyed(tmp_path, request):
    """A keyed gateway (SQLite) with Prometheus; ``request.param``: its extra arguments."""
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as up, database_for("sqlite", str(tmp_path)) as db:
        config = keys_config(up.url, db).replace("litellm_settings:\n", "litellm_settings:\n  callbacks: [prometheus]\n")
        # the first deployment gets configured limits (the deployment limit gauges)
        config = config.replace("      output_cost_per_token: %s\n" % OUT_PRICE,
                                "      output_cost_per_token: %s\n      rpm: 1000\n      tpm: 90000\n" % OUT_PRICE, 1)
        path = tmp_path / "config.yaml"
        path.write_text(config)
        env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "LLMRELAY_DATA_DIR": str(tmp_path / "data")}
        with Gateway(str(path), request.param, env=env) as gw:
            yield gw, bool(request.param)


@pytest.mark.parametrize("keyed", [[], ["--workers", "2"]], ids=["one-process", "two-workers"], indirect=True)
def test_budget_and_key_limit_gauges(keyed):
    gw, two = keyed
    admin = Admin(gw.url)
    team = admin.post("/team/new", team_alias="ops", max_budget=5.0, budget_duration="1d")["team_id"]
    key = admin.key(key_alias="budgeted", max_budget=1.0, budget_duration="30d", team_id=team,
                    model_rpm_limit={"gpt-4o-mini": 10}, model_tpm_limit={"gpt-4o-mini": 100000})
    free = admin.key(key_alias="no-budget")
    token = hashlib.sha256(key.encode()).hexdigest()
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    spent = tokens = 0
    for _ in range(3):
        usage = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).usage
        spent += usage.prompt_tokens * IN_PRICE + usage.completion_tokens * OUT_PRICE
        tokens += usage.total_tokens
    openai.OpenAI(base_url=gw.url + "/v1", api_key=free, max_retries=0).chat.completions.create(
        model="gpt-4o", messages=MESSAGES)

    def settled(page: dict) -> bool:
        """Every charge and token count seen (each request is charged when it ends, just after
        its answer went out): exactly, in one process; at least one, in some worker's view."""
        key_left = value(page, "litellm_remaining_api_key_budget_metric", hashed_api_key=token)
        team_left = value(page, "litellm_remaining_team_budget_metric", team=team)
        tokens_left = value(page, "litellm_remaining_api_key_tokens_for_model", hashed_api_key=token)
        if None in (key_left, team_left, tokens_left) or value(
                page, "litellm_remaining_api_key_budget_metric", api_key_alias="no-budget") is None:
            return False
        if two:
            return key_left < 1.0 and team_left < 5.0 and tokens_left < 100000
        return (math.isclose(key_left, 1.0 - spent, abs_tol=1e-9) and math.isclose(team_left, 5.0 - spent, abs_tol=1e-9)
                and tokens_left == 100000 - tokens)

    def ready() -> dict | None:
        page = gauges(gw.url)
        return page if settled(page) else None

    page = wait_for(ready, what="the key's budget gauges")
    assert value(page, "litellm_api_key_max_budget_metric", hashed_api_key=token, api_key_alias="budgeted") == 1.0
    assert value(page, "litellm_team_max_budget_metric", team=team, team_alias="ops") == 5.0
    key_left = value(page, "litellm_remaining_api_key_budget_metric", hashed_api_key=token, api_key_alias="budgeted")
    team_left = value(page, "litellm_remaining_team_budget_metric", team=team, team_alias="ops")
    if not two:  # one process: exactly what the key and its team spent
        assert math.isclose(key_left, 1.0 - spent, abs_tol=1e-9)
        assert math.isclose(team_left, 5.0 - spent, abs_tol=1e-9)
    else:  # each worker reports its own view: what it charged, and what it read from the database
        assert 1.0 - spent - 1e-9 <= key_left < 1.0
        assert 5.0 - spent - 1e-9 <= team_left < 5.0
    assert value(page, "litellm_remaining_api_key_budget_metric", api_key_alias="no-budget") == math.inf
    assert value(page, "litellm_api_key_max_budget_metric", api_key_alias="no-budget") is None
    assert 29 * 24 < value(page, "litellm_api_key_budget_remaining_hours_metric", hashed_api_key=token) <= 30 * 24
    assert 23 < value(page, "litellm_team_budget_remaining_hours_metric", team=team) <= 24
    assert value(page, "litellm_api_key_budget_remaining_hours_metric", api_key_alias="no-budget") is None
    requests_left = value(page, "litellm_remaining_api_key_requests_for_model", hashed_api_key=token,
                          api_key_alias="budgeted", model="gpt-4o-mini")
    tokens_left = value(page, "litellm_remaining_api_key_tokens_for_model", hashed_api_key=token, model="gpt-4o-mini")
    if not two:
        assert requests_left == 7
        assert tokens_left == 100000 - tokens
    else:  # per-worker windows: the lowest of the workers that served the key
        assert 7 <= requests_left < 10
        assert 100000 - tokens <= tokens_left < 100000
    # one series, also with --workers (a generated model_id is the same in every process)
    assert list(page["litellm_deployment_rpm_limit"].values()) == [1000]
    [labels] = page["litellm_deployment_tpm_limit"]
    assert page["litellm_deployment_tpm_limit"][labels] == 90000
    assert ("litellm_model_name", "openai/gpt-4o-mini") in labels and ("api_provider", "openai") in labels
    # every deployment is healthy
    assert set(page["litellm_deployment_state"].values()) == {0}


def _state_config(ok: str, flaky: str, dead: str) -> str:
    def group(name: str, url: str) -> str:
        return f"""
  - model_name: {name}
    litellm_params: {{model: openai/{name}-model, api_base: {url}/v1, api_key: sk-up}}"""

    return f"""
model_list:{group("ok", ok)}{group("flaky", flaky)}{group("dead", dead)}
router_settings:
  num_retries: 0
  allowed_fails: 1
  cooldown_time: 600
litellm_settings:
  callbacks: [prometheus]
"""


@WORKERS
def test_deployment_state_after_failing_upstreams(tmp_path, workers):
    with FakeOpenAIServer() as ok, FakeOpenAIServer() as flaky, FakeOpenAIServer() as dead:
        path = tmp_path / "config.yaml"
        path.write_text(_state_config(ok.url, flaky.url, dead.url))
        with Gateway(str(path), workers) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0)
            client.chat.completions.create(model="ok", messages=MESSAGES)
            flaky.enqueue(error_reply(500))  # one failure: within allowed_fails, a partial outage
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="flaky", messages=MESSAGES)
            dead.enqueue(error_reply(429, retry_after=300))  # cooled down at once: a complete outage
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="dead", messages=MESSAGES)

            def states() -> dict[str, float] | None:
                page = gauges(gw.url).get("litellm_deployment_state", {})
                found = {dict(k)["litellm_model_name"].split("/")[1]: v for k, v in page.items()}
                assert len(found) == len(page)  # one series per deployment (the workers' combined)
                want = {"ok-model": 0, "flaky-model": 1, "dead-model": 2}
                return found if found == want else None

            got = wait_for(states, what="the deployments' states")
            assert got == {"ok-model": 0, "flaky-model": 1, "dead-model": 2}
            # the cooldown counted once, with its cause; a failure within allowed_fails is none
            page = gauges(gw.url)
            assert value(page, "litellm_deployment_cooled_down_total", litellm_model_name="openai/dead-model",
                         exception_status="429") == 1
            assert not value(page, "litellm_deployment_cooled_down_total", litellm_model_name="openai/flaky-model")
            for labels in gauges(gw.url)["litellm_deployment_state"]:
                assert {n for n, _ in labels} == {"litellm_model_name", "model_id", "api_base", "api_provider"}
                assert ("api_provider", "openai") in labels
            if not workers:  # one process: a success after the failure makes it healthy again
                client.chat.completions.create(model="flaky", messages=MESSAGES)
                wait_for(lambda: value(gauges(gw.url), "litellm_deployment_state",
                                       litellm_model_name="openai/flaky-model") == 0, what="the flaky one healthy")


# ---------------------------------------------------------------------- the refresh itself
class _Entry:
    def __init__(self, row):
        self.row = row


class _Keys:
    """What StateGauges reads of a KeyManager: its cached rows and its limiter."""

    def __init__(self, n: int) -> None:
        from llmrelay.proxy.rate_limits import LocalLimits

        self._cache = {"key": {f"{i:064x}": _Entry({"key_alias": f"k{i}", "spend": 0.5, "max_budget": 2.0})
                               for i in range(n)}, "team": {}, "user": {}, "end_user": {}}
        self.limiter = LocalLimits()


def _state(keys) -> tuple:
    from prometheus_client import CollectorRegistry

    from llmrelay.integrations.prometheus_state import StateGauges

    registry = CollectorRegistry()
    return StateGauges(registry, keys, None, multiprocess=False), registry


def test_a_deleted_key_leaves_the_page():
    keys = _Keys(2)
    gauges_, registry = _state(keys)
    gauges_.refresh()
    first, second = keys._cache["key"]
    assert registry.get_sample_value("litellm_remaining_api_key_budget_metric",
                                     {"hashed_api_key": second, "api_key_alias": "k1"}) == 1.5
    del keys._cache["key"][second]
    keys._cache["key"][first].row["spend"] = 1.0
    gauges_.refresh()
    assert registry.get_sample_value("litellm_remaining_api_key_budget_metric",
                                     {"hashed_api_key": second, "api_key_alias": "k1"}) is None
    assert registry.get_sample_value("litellm_remaining_api_key_budget_metric",
                                     {"hashed_api_key": first, "api_key_alias": "k0"}) == 1.0


async def test_many_keys_are_refreshed_in_chunks_in_the_background_not_at_the_scrape():
    from llmrelay.integrations import prometheus_state

    keys = _Keys(3 * prometheus_state.CHUNK)
    gauges_, registry = _state(keys)
    gauges_._cost = 1.0  # the last refresh was costly: a scrape does not refresh
    gauges_.refresh()
    token = next(iter(keys._cache["key"]))
    labels = {"hashed_api_key": token, "api_key_alias": "k0"}
    assert registry.get_sample_value("litellm_api_key_max_budget_metric", labels) is None
    pauses = 0
    for _ in gauges_._steps():  # what the background task runs, pausing between chunks
        pauses += 1
    assert pauses >= 3
    assert registry.get_sample_value("litellm_api_key_max_budget_metric", labels) == 2.0
    gauges_.start()
    try:
        keys._cache["key"][token].row["spend"] = 1.25
        await eventually(lambda: asyncio.sleep(0, registry.get_sample_value(
            "litellm_remaining_api_key_budget_metric", labels)), lambda v: v == 0.75, what="the background refresh")
    finally:
        await gauges_.stop()
