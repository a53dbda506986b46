"""Soft budgets (an alert once per budget period) and per-model budgets with their own
``time_period``, through the real gateway with the openai SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from proxy.harness import Gateway
from proxy.test_keys import Admin, chat, database, keys_config, refused_for_budget, served, upstream  # noqa: F401
from proxy.conftest import UPSTREAM_KEY
from timing import in_one_period, wait_for


@pytest.fixture(scope="module")
def gw(upstream, database, tmp_path_factory) -> Iterator[Gateway]:  # noqa: F811
    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    # with Prometheus, whose counter the soft-budget alert increments
    path.write_text(keys_config(upstream.url, database).replace(
        "litellm_settings:\n", "litellm_settings:\n  callbacks: [prometheus]\n"))
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "LLMRELAY_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    with Gateway(str(path), [], env=env) as g:
        yield g


@pytest.fixture(scope="module")
def admin(gw) -> Admin:
    return Admin(gw.url)


def alerts(gw: Gateway, name: str) -> list[str]:
    return [line for line in gw.lines if "SOFT BUDGET CROSSED" in line and name in line]


def crossed_metric(gw: Gateway, budget_type: str, alias: str) -> float:
    body = httpx.get(gw.url + "/metrics").text
    total = 0.0
    for line in body.splitlines():
        if line.startswith("llmrelay_soft_budget_crossed_total{") and f'budget_type="{budget_type}"' in line \
                and f'api_key_alias="{alias}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def settled(gw: Gateway, **served: int) -> None:
    """Wait until the keys (by alias) had this many requests charged (a request's access-log
    line is written after its charge), then a little more: an alert a charge set off would be
    logged by then (what the tests below look for is a second one, which is never due)."""
    def done() -> bool:
        records = gw.log_records()
        return all(sum(r.get("key_alias") == alias for r in records) >= n for alias, n in served.items())

    wait_for(done, what=f"the charges of {served}")
    time.sleep(0.3)


def test_soft_budget_alerts_once_per_period(gw, admin):
    def cross(period: float) -> tuple[str, str]:  # within the budget's period
        alias = f"soft-key-{period:g}s"
        key = admin.key(key_alias=alias, soft_budget=0.00001, budget_duration=f"{period:g}s")
        assert admin.get("/key/info", key=key)["info"]["soft_budget_cooldown"] is False
        chat(gw, key)  # crosses the soft budget: served (it is not a limit), alerted once
        wait_for(lambda: alerts(gw, alias), what="the soft-budget warning")
        chat(gw, key)
        chat(gw, key)
        settled(gw, **{alias: 3})
        [line] = alerts(gw, alias)
        assert "WARNING" in line and "soft_budget 1e-05 USD" in line
        for secret in (key, hashlib.sha256(key.encode()).hexdigest()):
            assert secret not in line
        assert crossed_metric(gw, "key", alias) == 1
        assert admin.get("/key/info", key=key)["info"]["soft_budget_cooldown"] is True
        return key, alias

    key, alias = in_one_period(cross)
    # the next period: spend back to 0, the alert re-armed, and crossed again
    wait_for(lambda: admin.get("/key/info", key=key)["info"]["soft_budget_cooldown"] is False, timeout=60,
             what="the reset in the database")
    chat(gw, key)
    wait_for(lambda: len(alerts(gw, alias)) == 2, what="the second period's warning")
    assert crossed_metric(gw, "key", alias) == 2


def test_team_soft_budget_alerts_once(gw, admin):
    team = admin.post("/team/new", team_alias="soft-team", soft_budget=0.00001)["team_id"]
    a = admin.key(team_id=team, key_alias="team-member-a")
    b = admin.key(team_id=team, key_alias="team-member-b")
    chat(gw, a)
    wait_for(lambda: alerts(gw, "team soft-team"), what="the team's warning")
    chat(gw, b)
    chat(gw, a)
    settled(gw, **{"team-member-a": 2, "team-member-b": 1})
    assert len(alerts(gw, "team soft-team")) == 1
    assert crossed_metric(gw, "team", "team-member-a") == 1
    assert admin.get("/team/info", team_id=team)["team_info"]["soft_budget_cooldown"] is True
    # a new soft budget is a new alert
    admin.post("/team/update", team_id=team, soft_budget=1000)
    assert admin.get("/team/info", team_id=team)["team_info"]["soft_budget_cooldown"] is False


def test_end_user_soft_budget_alerts_once(gw, admin):
    admin.post("/customer/new", user_id="soft-customer", soft_budget=0.00001)
    key = admin.key(key_alias="customer-app")
    chat(gw, key, user="soft-customer")
    wait_for(lambda: alerts(gw, "end user soft-customer"), what="the end user's warning")
    chat(gw, key, user="soft-customer")
    settled(gw, **{"customer-app": 2})
    assert len(alerts(gw, "end user soft-customer")) == 1
    assert crossed_metric(gw, "end_user", "customer-app") == 1
    assert admin.get("/customer/info", end_user_id="soft-customer")["soft_budget_cooldown"] is True


def test_user_soft_budget_alerts_once(gw, admin):
    admin.post("/user/new", user_id="soft-user", soft_budget=0.00001, auto_create_key=False)
    a = admin.key(user_id="soft-user", key_alias="user-key-a")
    b = admin.key(user_id="soft-user", key_alias="user-key-b")
    chat(gw, a)
    wait_for(lambda: alerts(gw, "user soft-user"), what="the user's warning")
    chat(gw, b)
    settled(gw, **{"user-key-a": 1, "user-key-b": 1})
    assert len(alerts(gw, "user soft-user")) == 1
    assert crossed_metric(gw, "user", "user-key-a") == 1
    assert admin.get("/user/info", user_id="soft-user")["user_info"]["soft_budget_cooldown"] is True


def test_no_alert_under_the_soft_budget(gw, admin):
    key = admin.key(key_alias="soft-far", soft_budget=100.0)
    chat(gw, key)
    settled(gw, **{"soft-far": 1})
    assert not alerts(gw, "soft-far")
    assert admin.get("/key/info", key=key)["info"]["soft_budget_cooldown"] is False


def test_model_max_budget_resets_on_its_own_time_period(gw, admin):
    def spend_both(period: float) -> tuple[str, dict]:  # within gpt-4o's period
        key = admin.key(budget_duration="30d", model_max_budget={
            "gpt-4o": {"budget_limit": 0.00001, "time_period": f"{period:g}s"},
            "gpt-4o-mini": {"budget_limit": 0.00001},  # no period of its own: the key's (30 days)
        })
        info = admin.get("/key/info", key=key)["info"]
        assert set(info["model_budget_reset_at"]) == {"gpt-4o"}
        assert chat(gw, key, model="gpt-4o").choices
        assert chat(gw, key, model="gpt-4o-mini").choices
        for model in ("gpt-4o", "gpt-4o-mini"):
            assert f"model={model}" in refused_for_budget(gw, key, timeout=period, model=model).message
        wait_for(lambda: admin.get("/key/info", key=key)["info"]["model_spend"].get("gpt-4o"), timeout=period,
                 what="model spend written")
        return key, info

    key, info = in_one_period(spend_both)
    # gpt-4o's period ends; gpt-4o-mini's budget runs with the key's 30 days
    wait_for(lambda: served(gw, key, model="gpt-4o"), timeout=60, what="gpt-4o's new period")
    with pytest.raises(openai.BadRequestError, match="model=gpt-4o-mini"):
        chat(gw, key, model="gpt-4o-mini")
    # the database was reset too (the sweep), and the next period is stored
    info = wait_for(lambda: (i := admin.get("/key/info", key=key)["info"])
                    and i["model_budget_reset_at"]["gpt-4o"] > info["model_budget_reset_at"]["gpt-4o"] and i,
                    what="the database's per-model reset")
    assert info["model_spend"]["gpt-4o-mini"] > 0


def test_model_max_budget_rejects_a_bad_time_period(gw, admin):
    admin.post("/key/generate", expect=400, model_max_budget={"gpt-4o": {"budget_limit": 1, "time_period": "1year"}})


def test_key_info_model_spend_is_an_empty_dict_before_any_spend(gw, admin):
    key = admin.key(model_max_budget={"gpt-4o": {"budget_limit": 1.0, "time_period": "1d"}})
    assert admin.get("/key/info", key=key)["info"]["model_spend"] == {}
