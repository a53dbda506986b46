"""LiteLLM's budget / rate-limit tiers (``/budget/new``, ``budget_id`` on keys and end users,
``litellm_settings.max_end_user_budget_id``), through the real gateway and the openai SDK, on
SQLite and on a real PostgreSQL. Docs: https://docs.litellm.ai/docs/proxy/rate_limit_tiers and
https://docs.litellm.ai/docs/proxy/customers (Default Budget for All Customers)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from dbs import database_for
from proxy.conftest import MASTER_KEY, UPSTREAM_KEY
from proxy.harness import Gateway
from proxy.test_keys import Admin, chat, refused_for_budget, served, start_gateway
from servers.openai_server import FakeOpenAIServer
from timing import wait_for


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    with database_for(request.param, str(tmp_path_factory.mktemp("db")), "llmrelay_budget_tiers") as url:
        yield url


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


_DEFAULT_TIER = "  max_end_user_budget_id: default-tier\n"


@pytest.fixture(scope="module")
def gw(upstream, database, tmp_path_factory) -> Iterator[Gateway]:
    from proxy.test_keys import keys_config

    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    path.write_text(keys_config(upstream.url, database).replace("litellm_settings:\n",
                                                                "litellm_settings:\n" + _DEFAULT_TIER))
    with Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY,
                                 "LLMRELAY_DATA_DIR": str(tmp_path_factory.mktemp("data"))}) as g:
        assert not [line for line in g.lines if "max_end_user_budget_id" in line]  # (no "ignored" warning)
        yield g


@pytest.fixture(scope="module")
def admin(gw) -> Admin:
    return Admin(gw.url)


def _rate_limited(gw: Gateway, key: str, **kw) -> bool:
    try:
        chat(gw, key, **kw)
    except openai.RateLimitError:
        return True
    return False


# https://docs.litellm.ai/docs/proxy/rate_limit_tiers, verbatim
def test_the_documented_tier_example(gw, admin):
    made = admin.post("/budget/new", budget_id="my-test-tier", rpm_limit=0)
    assert made["budget_id"] == "my-test-tier" and made["rpm_limit"] == 0
    key = admin.post("/key/generate", budget_id="my-test-tier")
    assert key["budget_id"] == "my-test-tier" and "llmrelay_ignored_fields" not in key
    assert key["litellm_budget_table"]["budget_id"] == "my-test-tier"
    assert key["litellm_budget_table"]["rpm_limit"] == 0
    with pytest.raises(openai.RateLimitError):
        chat(gw, key["key"])
    assert admin.get("/key/info", key=key["key"])["info"]["litellm_budget_table"]["rpm_limit"] == 0


def test_a_tier_fills_the_limits_a_key_leaves_unset_and_changes_reach_its_keys(gw, admin):
    admin.post("/budget/new", budget_id="two-rpm", rpm_limit=2)
    key = admin.key(budget_id="two-rpm")
    own = admin.key(budget_id="two-rpm", rpm_limit=5)  # the key's own limit wins
    chat(gw, key), chat(gw, key)
    assert _rate_limited(gw, key)
    for _ in range(3):
        chat(gw, own)
    updated = admin.post("/budget/update", budget_id="two-rpm", rpm_limit=100)
    assert updated["rpm_limit"] == 100
    assert not _rate_limited(gw, key)  # (the cached key took the change at once)
    assert admin.post("/budget/info", budgets=["two-rpm", "nope"])[0]["rpm_limit"] == 100
    assert "two-rpm" in [b["budget_id"] for b in admin.get("/budget/list")]
    settings = {s["field_name"]: s["field_value"] for s in admin.get("/budget/settings", budget_id="two-rpm")}
    assert settings["rpm_limit"] == 100 and settings["max_budget"] is None


def test_a_tiers_budget_and_period(gw, admin):
    admin.post("/budget/new", budget_id="tiny", max_budget=0.0000001, budget_duration="2s")
    made = admin.post("/key/generate", budget_id="tiny")
    assert made["budget_reset_at"]  # the tier's period started with the key
    chat(gw, made["key"])
    err = refused_for_budget(gw, made["key"])
    assert err.status_code == 400 and "ExceededTokenBudget" in err.message
    wait_for(lambda: served(gw, made["key"]), 10, what="the tier's budget period to reset")


def test_end_users_of_a_tier(gw, admin):
    admin.post("/budget/new", budget_id="free-tier", max_budget=0.0000001)
    made = admin.post("/customer/new", user_id="tiered-customer", budget_id="free-tier")
    assert made["budget_id"] == "free-tier" and made["litellm_budget_table"]["budget_id"] == "free-tier"
    key = admin.key()
    chat(gw, key, user="tiered-customer")
    err = refused_for_budget(gw, key, user="tiered-customer")
    assert "ExceededBudget: End User=tiered-customer over budget" in err.message
    info = admin.get("/customer/info", end_user_id="tiered-customer")
    assert info["litellm_budget_table"]["max_budget"] == 0.0000001
    # moved to a tier without a budget: served again
    admin.post("/budget/new", budget_id="paid-tier")
    admin.post("/customer/update", user_id="tiered-customer", budget_id="paid-tier")
    assert served(gw, key, user="tiered-customer")


# https://docs.litellm.ai/docs/proxy/customers (Default Budget for All Customers)
def test_the_default_tier_of_end_users(gw, admin):
    key = admin.key()
    assert served(gw, key, user="before-the-tier")  # (the config names a tier that does not exist yet)
    admin.post("/budget/new", budget_id="default-tier", max_budget=10, rpm_limit=2, tpm_limit=1000)
    for user in ("first-seen", "before-the-tier"):
        wait_for(lambda u=user: _rate_limited(gw, key, user=u), 10, what=f"{user}'s default tier")
    assert served(gw, key, user="tiered-customer")  # an end user with its own tier keeps it
    assert served(gw, key)  # requests without an end user are not limited by it


def test_tier_errors(gw, admin):
    err = admin.post("/key/generate", expect=400, budget_id="no-such-tier")["error"]
    assert err["param"] == "budget_id"
    assert admin.post("/customer/new", expect=400, user_id="x", budget_id="no-such-tier")["error"]["param"] == \
        "budget_id"
    admin.post("/budget/new", budget_id="dup")
    assert "already exists" in admin.post("/budget/new", expect=400, budget_id="dup")["error"]["message"]
    assert admin.post("/budget/update", expect=400, rpm_limit=1)["error"]["param"] == "budget_id"
    assert admin.post("/budget/update", expect=404, budget_id="nope", rpm_limit=1)
    assert admin.post("/budget/new", expect=400, budget_id="neg", max_budget=-1)["error"]["param"] == "max_budget"
    assert admin.post("/budget/info", expect=400, budgets=[])
    # a tier in use is not deleted (its keys' limits would be lifted without a word)
    key = admin.post("/key/generate", budget_id="dup")["key"]
    assert "used by 1 key" in admin.post("/budget/delete", expect=400, id="dup")["error"]["message"]
    admin.post("/key/update", key=key, budget_id=None)
    assert admin.post("/budget/delete", id="dup")["budget_id"] == "dup"
    assert admin.post("/budget/delete", expect=404, id="dup")
    other = Admin(gw.url, key)
    assert other.http.post("/budget/new", json={"budget_id": "mine"}).status_code == 401
    assert other.http.get("/budget/list").status_code == 401


def test_a_tier_change_reaches_another_gateway_on_the_same_database(gw, admin, upstream, database, tmp_path_factory):
    admin.post("/budget/new", budget_id="shared-tier", rpm_limit=1)
    key = admin.key(budget_id="shared-tier")
    with start_gateway(upstream.url, database, tmp_path_factory) as other:
        chat(other, key)
        assert _rate_limited(other, key)  # (cached there, with the tier's limit)
        admin.post("/budget/update", budget_id="shared-tier", rpm_limit=1000)
        wait_for(lambda: not _rate_limited(other, key), 10, what="the tier change on the other gateway")


# https://docs.litellm.ai/docs/proxy/users (Set Rate Limits, "For customers": a budget tier with a
# tpm_limit, a customer of it, and the customer's requests with the master key), verbatim
def test_customer_rate_limit_tier_with_the_master_key(gw, admin):
    import httpx

    admin.post("/budget/new", budget_id="free-tier-tpm", tpm_limit=5)
    admin.post("/customer/new", user_id="palantir", budget_id="free-tier-tpm")

    def call() -> int:
        return httpx.post(gw.url + "/chat/completions", headers={"Authorization": "Bearer " + MASTER_KEY},
                          json={"model": "gpt-4o-mini", "user": "palantir",
                                "messages": [{"role": "user", "content": "gm"}]}).status_code

    assert call() == 200
    wait_for(lambda: call() == 429, 10, what="the customer's tpm limit")


def test_master_key_requests_are_held_to_their_end_users_budget(gw, admin):
    admin.post("/customer/new", user_id="master-customer", max_budget=0.0000001)
    chat(gw, MASTER_KEY, user="master-customer")
    err = refused_for_budget(gw, MASTER_KEY, user="master-customer")
    assert "ExceededBudget: End User=master-customer over budget" in err.message
    assert served(gw, MASTER_KEY, user="another-customer") and served(gw, MASTER_KEY)
    admin.post("/customer/block", user_ids=["master-blocked"])
    with pytest.raises(openai.BadRequestError, match="blocked"):
        chat(gw, MASTER_KEY, user="master-blocked")
