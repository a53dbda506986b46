"""LiteLLM's documented virtual-key, budget, rate-limit, team, customer and spend examples,
sent to the real gateway (SQLite) as the docs show them; the answers carry the fields the docs'
sample responses show, and the documented behaviour happens. Each test names its doc page."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from proxy.conftest import UPSTREAM_KEY
from proxy.harness import Gateway
from proxy.test_keys import MESSAGES, Admin, chat, client, refused_for_budget, served, start_gateway
from servers.openai_server import FakeOpenAIServer
from timing import wait_for


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory) -> Iterator[Gateway]:
    db = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "keys.db")
    with start_gateway(upstream.url, db, tmp_path_factory) as g:
        yield g


@pytest.fixture(scope="module")
def admin(gw) -> Admin:
    return Admin(gw.url)


def configured(upstream: FakeOpenAIServer, tmp_path_factory, **sections: str) -> Gateway:
    """A gateway with the keys config (a SQLite database of its own) and ``sections``' text
    (section name → YAML lines) added at the top of those sections."""
    from proxy.test_keys import keys_config

    config = keys_config(upstream.url, "sqlite:///" + str(tmp_path_factory.mktemp("db") / "keys.db"))
    for section, text in sections.items():
        config = config.replace(f"{section}:\n", f"{section}:\n{text}")
    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    path.write_text(config)
    return Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY,
                                   "LLMRELAY_DATA_DIR": str(tmp_path_factory.mktemp("data"))})


# ====================================================================== virtual keys
# https://docs.litellm.ai/docs/proxy/virtual_keys
def test_generate_with_models_metadata_duration_answers_the_documented_fields(admin):
    made = admin.post("/key/generate", models=["gpt-4o-mini", "gpt-4o"], metadata={"user": "ishaan@berri.ai"},
                      duration="20m", team_id=None, max_budget=10, soft_budget=5)
    for name in ("key", "key_name", "expires", "token", "models", "max_budget", "metadata", "spend"):
        assert name in made, name
    assert made["key"].startswith("sk-") and made["expires"] and made["models"] == ["gpt-4o-mini", "gpt-4o"]
    assert "llmrelay_ignored_fields" not in made


# https://docs.litellm.ai/docs/proxy/virtual_keys (/key/info: the key and its settings under "info")
def test_key_info_shape(gw, admin):
    key = admin.key(key_alias="docs-info", models=["gpt-4o-mini"], max_budget=1)
    chat(gw, key)
    info = admin.get("/key/info", key=key)
    assert set(info) >= {"key", "info"}
    for name in ("spend", "expires", "models", "user_id", "team_id", "max_parallel_requests", "metadata",
                 "key_alias", "key_name", "max_budget", "tpm_limit", "rpm_limit", "budget_duration", "token"):
        assert name in info["info"], name
    own = Admin(gw.url, key).get("/key/info")  # a key reads its own info without ?key=
    assert own["info"]["key_alias"] == "docs-info"


# https://docs.litellm.ai/docs/proxy/virtual_keys (/key/update, /key/delete)
def test_update_and_delete_as_documented(gw, admin):
    key = admin.key(models=["gpt-4o-mini"])
    upd = admin.post("/key/update", key=key, models=["gpt-4o"], metadata={"user": "x@y.z"}, team_id="core-infra")
    assert upd["key"] == key and upd["models"] == ["gpt-4o"] and upd["team_id"] == "core-infra"
    assert admin.post("/key/delete", keys=[key]) == {"deleted_keys": [key]}


# https://docs.litellm.ai/docs/proxy/virtual_keys (Regenerate keys: POST /key/{key}/regenerate)
def test_regenerate_in_the_path_with_new_limits(gw, admin):
    key = admin.key(key_alias="docs-regen")
    made = admin.post(f"/key/{key}/regenerate", max_budget=100, metadata={"use": "prod"}, tpm_limit=100000,
                      rpm_limit=100000)
    assert made["key"] != key and made["key"].startswith("sk-") and made["max_budget"] == 100
    assert made["key_alias"] == "docs-regen" and made["tpm_limit"] == 100000 and made["key_name"]
    assert chat(gw, made["key"]).choices
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key)


# https://docs.litellm.ai/docs/proxy/virtual_keys (/key/list?page=1&size=10)
def test_key_list_page(admin):
    for _ in range(3):
        admin.key(user_id="docs-list-user")
    page = admin.get("/key/list", page=1, size=2, user_id="docs-list-user")
    assert len(page["keys"]) == 2 and page["total_count"] == 3
    assert page["current_page"] == 1 and page["total_pages"] == 2
    full = admin.get("/key/list", return_full_object="true", user_id="docs-list-user")
    assert all("token" in k and "spend" in k for k in full["keys"])


# ====================================================================== budgets and rate limits
# https://docs.litellm.ai/docs/proxy/users (For Key: max_budget; the refusal's message)
def test_key_max_budget_refusal(gw, admin):
    key = admin.key(max_budget=0.0000001)
    chat(gw, key)
    err = refused_for_budget(gw, key)
    assert err.status_code == 400 and "ExceededTokenBudget" in err.message


# https://docs.litellm.ai/docs/proxy/users (budget_duration on a key)
def test_key_budget_duration(gw, admin):
    made = admin.post("/key/generate", max_budget=10, budget_duration="30s")
    assert made["budget_duration"] == "30s" and made["budget_reset_at"]


# https://docs.litellm.ai/docs/proxy/users (For Key, model specific: model_max_budget with a
# budget_limit written as a string)
def test_model_max_budget_as_documented(gw, admin):
    made = admin.post("/key/generate", model_max_budget={"gpt-4o-mini": {"budget_limit": "0.0000001",
                                                                          "time_period": "1d"}})
    key = made["key"]
    chat(gw, key)
    refused_for_budget(gw, key)
    assert chat(gw, key, model="gpt-4o").choices  # another model: not limited


# https://docs.litellm.ai/docs/proxy/users (Set Rate Limits: per key; per model per key)
def test_rate_limits_as_documented(gw, admin):
    key = admin.key(max_parallel_requests=10, tpm_limit=2000, rpm_limit=2)
    chat(gw, key), chat(gw, key)
    with pytest.raises(openai.RateLimitError):
        chat(gw, key)
    per_model = admin.key(model_rpm_limit={"gpt-4o-mini": 1}, model_tpm_limit={"gpt-4o-mini": 1000})
    chat(gw, per_model)
    with pytest.raises(openai.RateLimitError):
        chat(gw, per_model)
    assert chat(gw, per_model, model="gpt-4o").choices


# https://docs.litellm.ai/docs/proxy/users (Set Rate Limits, "Per Team Per Model": shared by the
# team's keys; a key's own per-model limit wins; the metadata form)
def test_team_per_model_rate_limits(gw, admin):
    team = admin.post("/team/new", team_id="my-prod-team", model_rpm_limit={"gpt-4o": 1, "gpt-4o-mini": 5},
                      model_tpm_limit={"gpt-4o": 10000})
    assert team["model_rpm_limit"] == {"gpt-4o": 1, "gpt-4o-mini": 5}
    first, second = admin.key(team_id="my-prod-team"), admin.key(team_id="my-prod-team")
    own = admin.key(team_id="my-prod-team", model_rpm_limit={"gpt-4o": 3})
    chat(gw, first, model="gpt-4o")
    with pytest.raises(openai.RateLimitError):
        chat(gw, second, model="gpt-4o")  # (the team's one request a minute is spent)
    for _ in range(3):
        chat(gw, own, model="gpt-4o")
    assert chat(gw, second).choices  # gpt-4o-mini: the team allows 5
    admin.post("/team/new", team_id="meta-team", metadata={"model_rpm_limit": {"gpt-4o": 1}})
    meta = admin.key(team_id="meta-team")
    chat(gw, meta, model="gpt-4o")
    with pytest.raises(openai.RateLimitError):
        chat(gw, meta, model="gpt-4o")


# https://docs.litellm.ai/docs/proxy/users ("If a key belongs to a team, the team budget is
# applied, not the user's personal budget")
def test_a_team_key_is_not_held_to_its_owners_personal_budget(gw, admin):
    admin.post("/user/new", user_id="personal-budget", max_budget=0.0000001, auto_create_key=False)
    admin.post("/team/new", team_id="owner-team")
    personal = admin.key(user_id="personal-budget")
    in_team = admin.key(user_id="personal-budget", team_id="owner-team")
    chat(gw, personal)
    refused_for_budget(gw, personal)
    for _ in range(3):
        assert chat(gw, in_team).choices


# ====================================================================== teams
# https://docs.litellm.ai/docs/proxy/users (Add budgets to teams: members_with_roles)
def test_team_new_with_members_with_roles(gw, admin):
    member = {"role": "admin", "user_id": "5c4a0aa3-a1e1-43dc-bd87-3c2da8382a3a"}
    team = admin.post("/team/new", team_alias="my-new-team_4", members_with_roles=[member], rpm_limit=99)
    assert "llmrelay_ignored_fields" not in team
    for name in ("team_alias", "team_id", "members_with_roles", "metadata", "tpm_limit", "rpm_limit", "max_budget",
                 "models", "spend", "max_parallel_requests", "budget_duration", "budget_reset_at"):
        assert name in team, name
    assert [member.items() <= m.items() for m in team["members_with_roles"]] == [True]
    assert team["rpm_limit"] == 99
    info = admin.get("/team/info", team_id=team["team_id"])
    assert info["team_info"]["members_with_roles"] == team["members_with_roles"]
    # the answer sent back (both lists, the same) is taken; two different lists are not
    admin.post("/team/update", team_id=team["team_id"], members=team["members"],
               members_with_roles=team["members_with_roles"])
    admin.post("/team/update", team_id=team["team_id"], members=[], members_with_roles=[member])  # LiteLLM's
    bad = admin.post("/team/update", expect=400, team_id=team["team_id"], members=[{"user_id": "other"}],
                     members_with_roles=[member])
    assert bad["error"]["param"] == "members_with_roles"
    upd = admin.post("/team/update", team_id=team["team_id"], members_with_roles=[{"role": "user", "user_id": "u2"}])
    assert [m["user_id"] for m in upd["members_with_roles"]] == ["u2"]


# https://docs.litellm.ai/docs/proxy/team_budgets (a team's max_budget and budget_duration;
# a key of the team is refused once the team's budget is spent)
def test_team_budget(gw, admin):
    team = admin.post("/team/new", team_alias="QA Prod Bot", max_budget=0.000000001, budget_duration="1d")
    assert team["budget_duration"] == "1d" and team["budget_reset_at"] and team["max_budget"] == 0.000000001
    key = admin.key(team_id=team["team_id"])
    chat(gw, key)
    err = refused_for_budget(gw, key)
    assert "Budget has been exceeded" in err.message
    upd = admin.post("/team/update", team_id=team["team_id"], max_budget=100)
    assert upd["max_budget"] == 100


# https://docs.litellm.ai/docs/proxy/users (/team/member_add)
# https://docs.litellm.ai/docs/proxy/team_model_add (/team/model/add, /team/model/delete) and
# /team/member_update (a member's role)
def test_team_models_and_member_role(gw, admin):
    team = admin.post("/team/new", team_alias="model-add", models=["gpt-4o-mini"])
    key = admin.key(team_id=team["team_id"])
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key, model="gpt-4o")
    added = admin.post("/team/model/add", team_id=team["team_id"], models=["gpt-4o", "gpt-4o-mini"])
    assert added["models"] == ["gpt-4o-mini", "gpt-4o"]
    assert chat(gw, key, model="gpt-4o").choices
    removed = admin.post("/team/model/delete", team_id=team["team_id"], models=["gpt-4o"])
    assert removed["models"] == ["gpt-4o-mini"]
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key, model="gpt-4o")
    admin.post("/team/member_add", team_id=team["team_id"], member={"role": "user", "user_id": "promoted"})
    upd = admin.post("/team/member_update", team_id=team["team_id"], user_id="promoted", role="admin")
    assert upd["role"] == "admin"
    info = admin.get("/team/info", team_id=team["team_id"])["team_info"]
    assert {"user_id": "promoted", "user_email": None, "role": "admin"} in info["members_with_roles"]
    assert admin.post("/team/member_update", expect=404, team_id=team["team_id"], user_id="stranger", role="admin")
    assert admin.post("/team/member_update", expect=400, team_id=team["team_id"], user_id="promoted", role="owner")


# https://docs.litellm.ai/docs/proxy/users (Team Members: max_budget_in_team on /team/member_add,
# a key of the member in the team, "ExceededBudget: Crossed spend within team"; /team/member_update)
def test_team_member_budget(gw, admin):
    admin.post("/user/new", user_id="ishaan-member", auto_create_key=False)
    team = admin.post("/team/new", team_alias="member-budget")
    added = admin.post("/team/member_add", team_id=team["team_id"], max_budget_in_team=0.000000000001,
                       member={"role": "user", "user_id": "ishaan-member"})
    assert "llmrelay_ignored_fields" not in added
    key = admin.post("/key/generate", user_id="ishaan-member", team_id=team["team_id"])["key"]
    other = admin.key(team_id=team["team_id"])  # (the team's other keys are not held to it)
    chat(gw, key)
    err = refused_for_budget(gw, key)
    assert "ExceededBudget: Crossed spend within team" in err.message
    assert chat(gw, other).choices
    info = admin.get("/team/info", team_id=team["team_id"])
    member = [m for m in info["team_memberships"] if m["user_id"] == "ishaan-member"][0]
    assert member["litellm_budget_table"]["max_budget"] == 0.000000000001
    wait_for(lambda: admin.get("/team/info", team_id=team["team_id"])["team_memberships"][0]["spend"] > 0 or None,
             10, what="the member's spend written")
    admin.post("/team/member_update", team_id=team["team_id"], user_id="ishaan-member", max_budget_in_team=10)
    assert served(gw, key)
    admin.post("/team/member_delete", team_id=team["team_id"], user_id="ishaan-member")
    assert admin.get("/team/info", team_id=team["team_id"])["team_memberships"] == []


def test_team_member_add(admin):
    team = admin.post("/team/new", team_alias="docs-members")
    out = admin.post("/team/member_add", team_id=team["team_id"], member={"role": "user", "user_id": "krrish@b.ai"})
    assert out["team_id"] == team["team_id"]
    assert {"role": "user", "user_id": "krrish@b.ai"}.items() <= out["members_with_roles"][0].items()


# https://docs.litellm.ai/docs/proxy/users (For Internal User: /user/new with max_budget)
def test_user_new_answers_a_key(gw, admin):
    out = admin.post("/user/new", user_id="krrish3@berri.ai", models=["gpt-4o-mini"], max_budget=0)
    assert out["key"].startswith("sk-") and out["user_id"] == "krrish3@berri.ai" and "expires" in out
    err = refused_for_budget(gw, out["key"])
    assert err.status_code == 400


# ====================================================================== customers
# https://docs.litellm.ai/docs/proxy/customers (a request's `user` is upserted with its spend;
# /customer/info?end_user_id= answers it)
def test_customer_spend_is_tracked_from_the_user_param(gw, admin):
    key = admin.key()
    chat(gw, key, user="ishaan3")
    info = wait_for(lambda: (lambda i: i if i.get("spend") else None)(
        admin.http.get("/customer/info", params={"end_user_id": "ishaan3"}).json()), 10, what="customer spend")
    for name in ("user_id", "blocked", "alias", "spend", "allowed_model_region", "default_model",
                 "litellm_budget_table"):
        assert name in info, name
    assert info["user_id"] == "ishaan3" and info["blocked"] is False and info["spend"] > 0


# https://docs.litellm.ai/docs/proxy/customers (Setting customer budgets: /customer/new with a
# max_budget; the customer's request is refused once it is spent)
def test_customer_budget(gw, admin):
    made = admin.post("/customer/new", user_id="ishaan-docs", max_budget=0.0000001)
    assert made["user_id"] == "ishaan-docs" and "llmrelay_ignored_fields" not in made
    key = admin.key()
    chat(gw, key, user="ishaan-docs")
    err = refused_for_budget(gw, key, user="ishaan-docs")
    assert "ExceededBudget: End User=ishaan-docs over budget" in err.message  # (LiteLLM's own text)
    info = admin.get("/customer/info", end_user_id="ishaan-docs")
    assert info["litellm_budget_table"]["max_budget"] == 0.0000001


# https://docs.litellm.ai/docs/proxy/temporary_budget_increase, as written
def test_temporary_budget_increase(gw, admin):
    import httpx

    key = admin.post("/key/generate", max_budget=0.0000001)["key"]
    chat(gw, key)
    refused_for_budget(gw, key)
    upd = admin.post("/key/update", key=key, temp_budget_increase=100, temp_budget_expiry="2999-01-15")
    assert "llmrelay_ignored_fields" not in upd
    assert upd["metadata"]["temp_budget_increase"] == 100 and upd["metadata"]["temp_budget_expiry"].startswith("2999-01-15")
    r = httpx.post(gw.url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello, world!"}]})
    assert r.status_code == 200 and r.headers["x-litellm-key-max-budget"] == "100.0000001"
    # an increase that has expired gives nothing; one without its expiry is refused
    admin.post("/key/update", key=key, temp_budget_increase=100, temp_budget_expiry="2001-01-15T00:00:00Z")
    refused_for_budget(gw, key)
    err = admin.post("/key/update", expect=400, key=key, temp_budget_increase=100)["error"]
    assert err["param"] == "temp_budget_expiry"
    assert admin.post("/key/update", expect=400, key=key, temp_budget_increase=1,
                      temp_budget_expiry="soon")["error"]["param"] == "temp_budget_expiry"


# ====================================================================== spend
# https://docs.litellm.ai/docs/proxy/cost_tracking (spend logs of a key, the global report by
# customer, the spend headers)
def test_spend_tracking(gw, admin):
    key = admin.key()
    raw = client(gw, key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                     user="palantir",
                                                                     extra_body={"metadata": {"tags": ["jobID:1"]}})
    assert "x-litellm-key-spend" in raw.headers
    rows = wait_for(lambda: admin.get("/spend/logs", api_key=key) or None, 10, what="spend rows")
    row = rows[0]
    for name in ("request_id", "api_key", "spend", "startTime", "endTime", "model", "user", "request_tags",
                 "prompt_tokens", "completion_tokens", "total_tokens"):
        assert name in row, name
    assert row["request_tags"] == ["jobID:1"]
    day = time.strftime("%Y-%m-%d", time.gmtime())
    report = admin.get("/global/spend/report", start_date=day, end_date=day, group_by="customer")
    assert report["results"]


# https://docs.litellm.ai/docs/proxy/request_tags (Option 2: the x-litellm-tags header, after the
# body's metadata.tags)
def test_tags_from_the_header(gw, admin):
    key = admin.key()
    client(gw, key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                            extra_headers={"x-litellm-tags": "team-api, production,,us-east-1"},
                                            extra_body={"metadata": {"tags": ["jobID:2", "production"]}})
    rows = wait_for(lambda: admin.get("/spend/logs", api_key=key) or None, 10, what="spend rows")
    assert rows[0]["request_tags"] == ["jobID:2", "production", "team-api", "us-east-1"]


# https://docs.litellm.ai/docs/proxy/cost_tracking (the spend report per api_key, and for one
# internal_user_id / customer_id / team_id / api_key)
def test_spend_report_groups_and_filters_by_litellm_names(gw, admin):
    key = admin.key(user_id="docs-report-user")
    chat(gw, key, user="docs-report-customer")
    other = admin.key(user_id="docs-report-other")
    chat(gw, other)
    wait_for(lambda: len(admin.get("/spend/logs", user_id="docs-report-other")) or None, 10, what="spend rows")
    wait_for(lambda: len(admin.get("/spend/logs", api_key=key)) or None, 10, what="spend rows")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    by_key = admin.get("/global/spend/report", start_date=day, end_date=day, group_by="api_key")
    assert by_key["results"] and by_key["group_by"] == "api_key"
    for name, value in (("internal_user_id", "docs-report-user"), ("customer_id", "docs-report-customer"),
                        ("api_key", key)):
        report = admin.get("/global/spend/report", start_date=day, end_date=day, group_by="api_key", **{name: value})
        assert len(report["results"]) == 1, (name, report)
    mine = admin.get("/global/spend/report", group_by="customer", internal_user_id="docs-report-other")
    assert mine["total_spend"] > 0 and len(mine["results"]) == 1


# https://docs.litellm.ai/docs/proxy/customers (Setting customer budgets: max_budget written "0")
def test_customer_budget_zero_as_text(gw, admin):
    admin.post("/customer/new", user_id="my-customer-id", max_budget="0")
    assert admin.get("/customer/info", end_user_id="my-customer-id")["max_budget"] == 0
    err = refused_for_budget(gw, admin.key(), user="my-customer-id")
    assert err.status_code == 400


# https://docs.litellm.ai/docs/proxy/customers (the customer id from the x-litellm-customer-id
# header, else x-litellm-end-user-id, before the body's `user`)
def test_customer_id_headers(gw, admin):
    admin.post("/customer/new", user_id="hdr-customer", max_budget=0)
    key = admin.key()
    err = refused_for_budget(gw, key, user="someone-else", extra_headers={"x-litellm-customer-id": "hdr-customer"})
    assert "End User=hdr-customer" in err.message
    err = refused_for_budget(gw, key, extra_headers={"x-litellm-end-user-id": "hdr-customer"})
    assert "End User=hdr-customer" in err.message
    assert chat(gw, key, user="hdr-customer", extra_headers={"x-litellm-customer-id": "hdr-other"}).choices
    wait_for(lambda: admin.get("/spend/logs", end_user="hdr-other") or None, 10, what="the header's spend row")


# LiteLLM's other end-user sources in the body, after `user`: metadata.user_id, safety_identifier
@pytest.mark.parametrize("body", [{"metadata": {"user_id": "body-customer"}},
                                  {"safety_identifier": "body-customer"}])
def test_end_user_from_the_body(gw, admin, body):
    if not admin.http.get("/customer/info", params={"end_user_id": "body-customer"}).is_success:
        admin.post("/customer/new", user_id="body-customer", max_budget=0)
    err = refused_for_budget(gw, admin.key(), extra_body=body)
    assert "End User=body-customer" in err.message


# https://docs.litellm.ai/docs/proxy/users (team member budgets), customers' regions: what llmrelay does not implement is
# refused (an unknown route) or named in the answer, never silently dropped
def test_unimplemented_documented_fields_are_named(admin):
    team = admin.post("/team/new", team_alias="docs-member-budget")
    customer = admin.post("/customer/new", user_id="docs-region", allowed_model_region="eu")
    assert customer["llmrelay_ignored_fields"] == ["allowed_model_region"]
    assert customer["allowed_model_region"] is None and customer["litellm_budget_table"] is None


# https://docs.litellm.ai/docs/proxy/users (Customers: litellm_settings.max_end_user_budget, a
# budget for every `user` without one of its own; the requests are made with the master key)
@pytest.fixture(scope="module")
def end_user_budget(upstream, tmp_path_factory) -> Iterator[Gateway]:
    with configured(upstream, tmp_path_factory, litellm_settings="  max_end_user_budget: 0.0000001\n" + _INTERNAL_USERS,
                    general_settings=_USER_HEADER) as g:
        assert not [line for line in g.lines if "max_end_user_budget" in line or "internal_user" in line
                    or "user_header" in line]
        yield g


# https://docs.litellm.ai/docs/proxy/users (Set default budget for ALL internal users) and
# LiteLLM's default_internal_user_params
_INTERNAL_USERS = """  max_internal_user_budget: 0
  internal_user_budget_duration: "1mo"
  default_internal_user_params:
    models: ["gpt-4o-mini"]
"""


def test_internal_user_defaults(end_user_budget):
    admin = Admin(end_user_budget.url)
    internal = admin.post("/user/new", user_role="internal_user", auto_create_key=False)
    assert internal["max_budget"] == 0 and internal["budget_duration"] == "1mo" and internal["budget_reset_at"]
    assert internal["models"] == ["gpt-4o-mini"]
    other = admin.post("/user/new", user_role="proxy_admin_viewer", models=["gpt-4o"], max_budget=5,
                       auto_create_key=False)
    assert other["max_budget"] == 5 and other["budget_duration"] is None and other["models"] == ["gpt-4o"]
    key = admin.key(user_id=internal["user_id"])
    err = refused_for_budget(end_user_budget, key)  # (a budget of 0: nothing may be spent)
    assert f"ExceededBudget: User={internal['user_id']} over budget" in err.message


# https://docs.litellm.ai/docs/proxy/customers (the end user from a header the config names, as
# Open WebUI sends it)
_USER_HEADER = """  user_header_mappings:
    - header_name: X-OpenWebUI-User-Id
      litellm_user_role: customer
"""


def test_end_user_from_a_configured_header(end_user_budget):
    from proxy.conftest import MASTER_KEY

    headers = {"X-OpenWebUI-User-Id": "webui-user"}
    chat(end_user_budget, MASTER_KEY, extra_headers=headers)
    err = refused_for_budget(end_user_budget, MASTER_KEY, user="someone", extra_headers=headers)
    assert "End User=webui-user" in err.message  # (the header wins over the body's user)
    assert chat(end_user_budget, MASTER_KEY, user="webui-user",
                extra_headers={**headers, "x-litellm-customer-id": "standard-header-first"}).choices


# https://docs.litellm.ai/docs/proxy/configs (general_settings.enforce_user_param)
def test_enforce_user_param(upstream, tmp_path_factory):
    from proxy.conftest import MASTER_KEY

    with configured(upstream, tmp_path_factory, general_settings="  enforce_user_param: true\n") as gw:
        with pytest.raises(openai.BadRequestError, match="'user' param not passed in") as err:
            chat(gw, MASTER_KEY)
        assert err.value.body["param"] == "user"
        assert chat(gw, MASTER_KEY, user="named-user").choices
        assert chat(gw, MASTER_KEY, extra_headers={"x-litellm-customer-id": "header-user"}).choices
        with pytest.raises(openai.BadRequestError, match="'user' param not passed in"):
            client(gw, MASTER_KEY).embeddings.create(model="gpt-4o-mini", input="hi")


# https://docs.litellm.ai/docs/proxy/users (Set Budgets, Global Proxy: litellm_settings.max_budget
# and budget_duration; LiteLLM keeps its spend in the user row litellm-proxy-budget)
def test_global_proxy_budget(upstream, tmp_path_factory):
    from proxy.conftest import MASTER_KEY

    with configured(upstream, tmp_path_factory,
                    litellm_settings="  max_budget: 0.0000001\n  budget_duration: 3s\n") as gw:
        assert not [line for line in gw.lines if "max_budget" in line or "budget_duration" in line]
        admin = Admin(gw.url)
        key = admin.key()
        chat(gw, key)
        err = refused_for_budget(gw, key)
        assert "ExceededBudget: LiteLLM Proxy has exceeded its budget. Current spend:" in err.message
        assert chat(gw, MASTER_KEY).choices  # (the master key is not held to it, as in LiteLLM)
        row = wait_for(lambda: (lambda r: r if r["user_info"]["spend"] > 0 else None)(
            admin.get("/user/info", user_id="litellm-proxy-budget")), 10, what="the gateway's spend written")
        assert row["user_info"]["max_budget"] == 0.0000001 and row["user_info"]["budget_duration"] == "3s"
        wait_for(lambda: served(gw, key), 10, what="the gateway's budget period to reset")


def test_max_end_user_budget(end_user_budget):
    from proxy.conftest import MASTER_KEY

    gw = end_user_budget
    chat(gw, MASTER_KEY, user="ishaan3")
    err = refused_for_budget(gw, MASTER_KEY, user="ishaan3")
    assert err.status_code == 400 and "ExceededBudget: End User=ishaan3 over budget" in err.message
    assert chat(gw, MASTER_KEY, user="someone-else").choices and chat(gw, MASTER_KEY).choices
    admin = Admin(gw.url)
    admin.post("/customer/new", user_id="big-spender", max_budget=100)  # its own budget wins
    for _ in range(3):
        assert chat(gw, admin.key(), user="big-spender").choices


# https://docs.litellm.ai/docs/proxy/virtual_keys (Default /key/generate params; Upperbound
# /key/generate params, in litellm_settings)
_KEY_GENERATE_SETTINGS = """  default_key_generate_params:
    max_budget: 1.5
    models: ["gpt-4o-mini"]
    duration:
    metadata: {"setting": "default"}
  upperbound_key_generate_params:
    max_budget: 100
    budget_duration: "10d"
    duration: "30d"
    max_parallel_requests: 1000
    tpm_limit: 1000
    rpm_limit: 1000
"""


@pytest.fixture(scope="module")
def bounded(upstream, tmp_path_factory) -> Iterator[Admin]:
    with configured(upstream, tmp_path_factory, litellm_settings=_KEY_GENERATE_SETTINGS) as g:
        assert not [line for line in g.lines if "key_generate_params" in line]  # (no "ignored" warning)
        yield Admin(g.url)


def test_default_key_generate_params(bounded):
    made = bounded.post("/key/generate")
    assert made["max_budget"] == 1.5 and made["models"] == ["gpt-4o-mini"]
    assert made["metadata"] == {"setting": "default"}
    assert made["rpm_limit"] == 1000 and made["tpm_limit"] == 1000  # unset: the upper bound
    mine = bounded.post("/key/generate", max_budget=5, models=["gpt-4o"], rpm_limit=10)
    assert mine["max_budget"] == 5 and mine["models"] == ["gpt-4o"] and mine["rpm_limit"] == 10


@pytest.mark.parametrize("field, value", [("max_budget", 200), ("tpm_limit", 1001), ("rpm_limit", 5000),
                                          ("max_parallel_requests", 1001), ("budget_duration", "11d"),
                                          ("duration", "1mo")])
def test_upperbound_key_generate_params(bounded, field, value):
    err = bounded.post("/key/generate", expect=400, **{field: value})["error"]
    assert err["param"] == field and "over max limit set in config" in err["message"]
    key = bounded.post("/key/generate")["key"]
    err = bounded.post("/key/update", expect=400, key=key, **{field: value})["error"]
    assert err["param"] == field
    assert bounded.post("/key/generate", duration="29d", budget_duration="10d", max_budget=100)["key"]


def test_key_generate_params_leave_an_expires_alone(bounded):
    made = bounded.post("/key/generate", expires="2030-01-31T12:00:00Z")
    assert made["expires"].startswith("2030-01-31T12:00:00")


def test_key_generate_params_are_checked_at_load():
    from llmrelay.proxy.config import ConfigError
    from llmrelay.proxy.config import parse_config as parse

    def parse_config(text: str):
        return parse("model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o\n" + text)

    with pytest.raises(ConfigError, match="upperbound_key_generate_params.max_budget"):
        parse_config("litellm_settings:\n  upperbound_key_generate_params:\n    max_budget: lots\n")
    with pytest.raises(ConfigError, match="default_key_generate_params.duration"):
        parse_config("litellm_settings:\n  default_key_generate_params:\n    duration: soon\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config("litellm_settings:\n  default_key_generate_params: 10\n")
    config = parse_config("litellm_settings:\n  upperbound_key_generate_params:\n    rpm_limit: 10\n")
    assert config.key_generate_params == {"upperbound_key_generate_params": {"rpm_limit": 10}}
    assert "upperbound_key_generate_params" not in config.litellm_settings  # (not a module setting)


@pytest.mark.parametrize("setting, message", [
    ("litellm_settings:\n  max_budget: lots\n", "litellm_settings.max_budget must be a number"),
    ("litellm_settings:\n  budget_duration: soon\n", "litellm_settings.budget_duration:"),
    ("litellm_settings:\n  max_end_user_budget: -1\n", "litellm_settings.max_end_user_budget must be a number"),
    ("litellm_settings:\n  max_internal_user_budget: [1]\n", "litellm_settings.max_internal_user_budget must"),
    ("litellm_settings:\n  internal_user_budget_duration: 5\n", "litellm_settings.internal_user_budget_duration:"),
    ("litellm_settings:\n  max_end_user_budget_id: 7\n", "max_end_user_budget_id must be a budget tier's id"),
    ("general_settings:\n  user_header_mappings: [{header_name: 'X-Nützer'}]\n", "user_header_mappings must be"),
    ("general_settings:\n  user_header_name: [a]\n", "user_header_name must be a header name"),
    ("general_settings:\n  enforce_user_param: sometimes\n", "enforce_user_param must be true or false"),
])
def test_budget_and_identity_settings_are_checked_at_load(setting, message):
    from llmrelay.proxy.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=message):
        parse_config("model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o\n" + setting)
