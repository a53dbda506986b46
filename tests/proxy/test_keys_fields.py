"""The rest of the key fields and routes of the keys issue, through the real gateway and the
openai SDK, on SQLite and on a real PostgreSQL: per-model limits, budget periods, expiry,
blocked teams, tags and prompts in the spend log, the spend report's groups, LiteLLM's error
shapes, and what a key may read and what the logs never show."""

from __future__ import annotations

import concurrent.futures
import hashlib
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import openai
import pytest

from dbs import database_for
from proxy.conftest import MASTER_KEY, UPSTREAM_KEY
from proxy.harness import Gateway
from proxy.test_keys import MESSAGES, Admin, chat, client, cost_of, keys_config, refused_for_budget
from servers.openai_server import FakeOpenAIServer
from timing import wait_for


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    with database_for(request.param, str(tmp_path_factory.mktemp("db")), "llmrelay_keys_fields") as url:
        yield url


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


def _start(upstream: FakeOpenAIServer, database: str, tmp_path_factory, extra: str = "") -> Gateway:
    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    path.write_text(keys_config(upstream.url, database) + extra)
    return Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY,
                                   "LLMRELAY_DATA_DIR": str(tmp_path_factory.mktemp("data"))})


@pytest.fixture(scope="module")
def gw(upstream, database, tmp_path_factory) -> Iterator[Gateway]:
    with _start(upstream, database, tmp_path_factory) as g:
        yield g


@pytest.fixture(scope="module")
def admin(gw) -> Admin:
    return Admin(gw.url)


def _at(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def _status(gw: Gateway, key: str, model: str = "gpt-4o-mini") -> int:
    try:
        chat(gw, key, model=model)
        return 200
    except openai.APIStatusError as exc:
        return exc.status_code


# ====================================================================== per-model limits
def test_model_rpm_limit_is_hit_at_its_number_for_that_model_only(gw, admin):
    key = admin.key(model_rpm_limit={"gpt-4o-mini": 2})
    assert [_status(gw, key) for _ in range(2)] == [200, 200]
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, key)
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60
    assert "gpt-4o-mini" in err.value.message
    assert err.value.body["code"] == "429"
    assert [_status(gw, key, "gpt-4o") for _ in range(3)] == [200, 200, 200]  # another model: no limit


def test_model_rpm_limit_under_concurrency(gw, admin):
    key = admin.key(model_rpm_limit={"gpt-4o-mini": 4})
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: _status(gw, key), range(10)))
    assert results.count(200) == 4 and results.count(429) == 6


def test_model_tpm_limit(gw, admin):
    key = admin.key(model_tpm_limit={"gpt-4o-mini": 20})
    used = chat(gw, key).usage.total_tokens
    assert 0 < used < 20
    calls = 1
    while _status(gw, key) == 200:  # allowed while the tokens used so far are under the limit
        calls += 1
        assert calls < 20
    assert calls == -(-20 // used)
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, key)
    assert "tpm" in err.value.message and int(err.value.response.headers["retry-after"]) >= 1
    assert _status(gw, key, "gpt-4o") == 200


def test_remaining_tokens_header_and_tpm_retry_after(gw, admin):
    key = admin.key(tpm_limit=1000, rpm_limit=100)
    raw = client(gw, key).chat.completions.with_raw_response
    first = raw.create(model="gpt-4o-mini", messages=MESSAGES)
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert first.headers["x-ratelimit-remaining-tokens"] == "1000"  # nothing used before it
    assert first.headers["x-ratelimit-remaining-requests"] == "99"
    used = first.parse().usage.total_tokens
    second = raw.create(model="gpt-4o-mini", messages=MESSAGES)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(1000 - used)
    assert second.headers["x-ratelimit-remaining-requests"] == "98"
    small = admin.key(tpm_limit=1)
    chat(gw, small)
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, small)
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60


# ====================================================================== budget periods, expiry, blocking
@pytest.mark.parametrize("duration", ["30s", "1h", "1d", "30d", "1mo"])
def test_budget_durations(gw, admin, duration):
    from llmrelay.proxy.budgets import next_reset

    before = time.time()
    key = admin.post("/key/generate", max_budget=1, budget_duration=duration)
    team = admin.post("/team/new", max_budget=1, budget_duration=duration)
    user = admin.post("/user/new", max_budget=1, budget_duration=duration)
    customer = admin.post("/customer/new", user_id=f"c-period-{duration}", max_budget=1, budget_duration=duration)
    after = time.time()
    for made in (key, team, user, customer):
        assert made["budget_duration"] == duration, made
        # one period after its creation (calendar months for "mo")
        assert next_reset(duration, before) - 1 <= _at(made["budget_reset_at"]) <= next_reset(duration, after) + 1, made
    info = admin.get("/key/info", key=key["key"])["info"]
    assert info["budget_reset_at"] == key["budget_reset_at"]
    assert chat(gw, key["key"]).choices


def test_expiry_is_set_by_duration_and_can_be_changed(gw, admin):
    before = time.time()
    made = admin.post("/key/generate", duration="1h")
    key = made["key"]
    assert before + 3600 - 1 <= _at(made["expires"]) <= time.time() + 3600 + 1
    assert chat(gw, key).choices
    assert admin.post("/key/update", key=key, duration="0s")["expires"]  # expired now
    with pytest.raises(openai.AuthenticationError, match="Expired") as err:
        chat(gw, key)
    assert err.value.body["type"] == "expired_key"
    admin.post("/key/update", key=key, duration="30d")
    assert chat(gw, key).choices
    assert admin.post("/key/update", key=key, duration=None)["expires"] is None  # never expires
    assert admin.get("/key/info", key=key)["info"]["expires"] is None
    assert chat(gw, key).choices
    admin.post("/key/generate", expect=400, duration="soon")


def _iso(ts: float, naive: bool = False) -> str:
    from datetime import timezone

    at = datetime.fromtimestamp(ts, timezone.utc)
    return at.replace(tzinfo=None).isoformat() if naive else at.isoformat().replace("+00:00", "Z")


def test_expires_sets_when_a_key_expires(gw, admin):
    past = admin.post("/key/generate", expires=_iso(time.time() - 60))
    assert _at(past["expires"]) == pytest.approx(time.time() - 60, abs=5)
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, past["key"])
    assert err.value.body["type"] == "expired_key"

    future = time.time() + 3600
    made = admin.post("/key/generate", expires=_iso(future))  # "…Z"
    assert _at(made["expires"]) == pytest.approx(future, abs=1)
    assert chat(gw, made["key"]).choices
    info = admin.get("/key/info", key=made["key"])["info"]
    assert _at(info["expires"]) == pytest.approx(future, abs=1)

    naive = admin.post("/key/generate", expires=_iso(future, naive=True))  # no offset: UTC
    assert _at(naive["expires"]) == pytest.approx(future, abs=1)
    offset = admin.post("/key/generate", expires="2031-01-31T12:00:00+02:00")
    assert _at(offset["expires"]) == datetime.fromisoformat("2031-01-31T10:00:00+00:00").timestamp()


def test_key_update_changes_expires(gw, admin):
    key = admin.key(duration="1h")
    assert chat(gw, key).choices
    admin.post("/key/update", key=key, expires=_iso(time.time() - 1))
    with pytest.raises(openai.AuthenticationError, match="Expired Key"):
        chat(gw, key)
    assert _at(admin.get("/key/info", key=key)["info"]["expires"]) <= time.time()
    later = time.time() + 86400
    assert _at(admin.post("/key/update", key=key, expires=_iso(later))["expires"]) == pytest.approx(later, abs=1)
    assert chat(gw, key).choices
    assert admin.post("/key/update", key=key, expires=None)["expires"] is None  # null: never expires
    assert admin.get("/key/info", key=key)["info"]["expires"] is None
    assert chat(gw, key).choices
    admin.post("/key/update", key=key, max_budget=5)  # an update without expires keeps it
    assert admin.get("/key/info", key=key)["info"]["expires"] is None


@pytest.mark.parametrize("bad", [12345, "tomorrow", "", "2030-13-01T00:00:00Z", {"at": "2030-01-01"}, ["2030-01-01"],
                                 True])
def test_a_bad_expires_is_a_400_naming_the_field(gw, admin, bad):
    key = admin.key()
    for path, body in (("/key/generate", {}), ("/key/update", {"key": key}), ("/user/new", {})):
        r = admin.http.post(path, json={**body, "expires": bad})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["param"] == "expires" and "expires" in r.json()["error"]["message"]


def test_duration_and_expires_together(gw, admin):
    """Both set: a 400 (which one was meant cannot be known); one of them null: the other decides
    (a LiteLLM answer sent back carries both)."""
    r = admin.http.post("/key/generate", json={"duration": "1h", "expires": _iso(time.time() + 60)})
    assert r.status_code == 400 and "not both" in r.json()["error"]["message"]
    key = admin.key()
    r = admin.http.post("/key/update", json={"key": key, "duration": "1h", "expires": _iso(time.time() + 60)})
    assert r.status_code == 400
    later = time.time() + 7200
    made = admin.post("/key/generate", duration=None, expires=_iso(later))
    assert _at(made["expires"]) == pytest.approx(later, abs=1)
    made = admin.post("/key/generate", duration="1h", expires=None)
    assert _at(made["expires"]) == pytest.approx(time.time() + 3600, abs=5)
    assert admin.post("/key/generate", duration=None, expires=None)["expires"] is None


def test_user_new_passes_expires_to_its_key(gw, admin):
    user = admin.post("/user/new", expires=_iso(time.time() - 5))
    with pytest.raises(openai.AuthenticationError, match="Expired Key"):
        chat(gw, user["key"])


def test_a_blocked_team_blocks_its_keys(gw, admin):
    team = admin.post("/team/new", team_alias="t-blocked")["team_id"]
    key = admin.key(team_id=team)
    assert chat(gw, key).choices
    admin.post("/team/update", team_id=team, blocked=True)
    with pytest.raises(openai.AuthenticationError, match="blocked"):
        chat(gw, key)
    admin.post("/team/update", team_id=team, blocked=False)
    assert chat(gw, key).choices


# ====================================================================== LiteLLM's error shapes
def test_error_bodies_have_litellms_shape(gw, admin):
    key = admin.key(models=["gpt-4o"], max_budget=0.0001)
    with pytest.raises(openai.AuthenticationError) as denied:
        chat(gw, key, model="gpt-4o-mini")
    assert denied.value.status_code == 401
    assert denied.value.body == {
        "message": "key not allowed to access model. This key can only access models=['gpt-4o']. "
                   "Tried to access gpt-4o-mini",
        "type": "key_model_access_denied", "param": "model", "code": "401"}
    chat(gw, key, model="gpt-4o")
    spent = refused_for_budget(gw, key, model="gpt-4o")
    assert spent.status_code == 400
    assert spent.body["type"] == "budget_exceeded" and spent.body["param"] is None and spent.body["code"] == "400"
    assert spent.body["message"].startswith("Budget has been exceeded! Current cost: ")
    with pytest.raises(openai.AuthenticationError) as unknown:
        chat(gw, "sk-not-a-known-key-1234")
    assert unknown.value.status_code == 401


# ====================================================================== authentication errors (LiteLLM's)
def _auth_error(gw: Gateway, key: str, call=None) -> openai.AuthenticationError:
    """The openai SDK's error for a request with ``key``; checks what every one of them shares."""
    sdk = client(gw, key)
    with pytest.raises(openai.AuthenticationError) as err:
        (call or (lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)))(sdk)
    exc = err.value
    assert exc.status_code == 401 and exc.response.headers["www-authenticate"] == "Bearer"
    assert exc.body["code"] == "401" and exc.body["message"].startswith("Authentication Error")
    assert set(exc.body) == {"message", "type", "param", "code"}
    assert key not in exc.response.text and hashlib.sha256(key.encode()).hexdigest() not in exc.response.text
    return exc


def test_an_unknown_key_gets_litellms_invalid_token_error(gw, admin):
    for key in ("sk-not-a-known-key-1234", "not-even-sk-shaped", MASTER_KEY + "x"):
        body = _auth_error(gw, key).body
        assert body["type"] == "token_not_found_in_db" and body["param"] == "key"
        assert body["message"].startswith("Authentication Error, Invalid proxy server token passed.")
        assert _auth_error(gw, key, lambda c: c.models.list()).body == body
    missing = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["type"] == "auth_error" and missing.json()["error"]["code"] == "401"
    assert missing.json()["error"]["message"].startswith("Authentication Error, No api key passed in.")


def test_an_expired_key_gets_litellms_expired_key_error_on_every_route(gw, admin):
    made = admin.post("/key/generate", expires=_iso(time.time() - 60))
    key = made["key"]
    body = _auth_error(gw, key).body
    assert body["type"] == "expired_key" and body["param"] == made["key_name"] == f"sk-...{key[-4:]}"
    assert body["message"].startswith("Authentication Error - Expired Key. Key Expiry time ")
    assert _auth_error(gw, key, lambda c: c.models.list()).body["type"] == "expired_key"
    r = Admin(gw.url, key).http.get("/key/info")  # its own info too, as LiteLLM
    assert r.status_code == 401 and r.json()["error"]["type"] == "expired_key"


def test_a_blocked_key_and_team_get_litellms_errors(gw, admin):
    key = admin.key()
    admin.post("/key/block", key=key)
    body = _auth_error(gw, key).body
    assert body["type"] == "auth_error"
    assert body["message"].startswith("Authentication Error, Key is blocked. Update via `/key/unblock`")
    assert _auth_error(gw, key, lambda c: c.models.list()).body == body
    assert Admin(gw.url, key).http.get("/key/info").status_code == 401
    admin.post("/key/unblock", key=key)
    assert chat(gw, key).choices
    team = admin.post("/team/new", team_id="t-auth-blocked")["team_id"]
    member = admin.key(team_id=team)
    admin.post("/team/update", team_id=team, blocked=True)
    body = _auth_error(gw, member).body
    assert body["type"] == "auth_error"
    assert body["message"].startswith("Authentication Error, Team=t-auth-blocked is blocked.")


def test_a_non_master_key_on_a_management_route_gets_an_auth_error(gw, admin):
    r = Admin(gw.url, admin.key()).http.post("/key/generate", json={})
    assert r.status_code == 401 and r.json()["error"]["type"] == "auth_error"
    assert r.json()["error"]["message"].startswith("Authentication Error, Only the master key")


# ====================================================================== gaps found in the audit
def test_team_block_and_unblock_routes(gw, admin):
    team = admin.post("/team/new", team_id="t-block-route")["team_id"]
    key = admin.key(team_id=team)
    assert admin.post("/team/block", team_id=team)["blocked"] is True
    assert "Team=t-block-route is blocked" in _auth_error(gw, key).body["message"]
    assert admin.post("/team/unblock", team_id=team)["blocked"] is False
    assert chat(gw, key).choices
    admin.post("/team/block", expect=404, team_id="t-no-such-team")


def test_a_blocked_end_user_is_refused(gw, admin):
    key = admin.key()
    sdk = client(gw, key)
    assert admin.post("/customer/block", user_ids=["c-blocked", "c-new-blocked"]) == {
        "blocked_users": ["c-blocked", "c-new-blocked"]}
    for end_user in ("c-blocked", "c-new-blocked"):  # (one that did not exist is made, blocked)
        with pytest.raises(openai.BadRequestError, match="blocked"):
            sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user=end_user)
    assert sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="c-other").choices
    admin.post("/customer/unblock", user_ids=["c-blocked"])
    assert sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="c-blocked").choices
    admin.post("/customer/update", user_id="c-new-blocked", blocked=False)
    assert sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="c-new-blocked").choices


def test_a_users_models_and_limits_apply_to_its_keys(gw, admin):
    user = admin.post("/user/new", user_id="u-limits", models=["gpt-4o-mini"], rpm_limit=3, auto_create_key=False)
    assert user["rpm_limit"] == 3
    one, two = admin.key(user_id="u-limits"), admin.key(user_id="u-limits")
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, one, model="gpt-4o")
    assert err.value.body["type"] == "key_model_access_denied"
    assert [_status(gw, k) for k in (one, two, one)] == [200, 200, 200]
    with pytest.raises(openai.RateLimitError):  # the user's 3 a minute, over both keys
        chat(gw, two)


def test_an_end_users_rpm_limit_over_all_its_keys(gw, admin):
    made = admin.post("/customer/new", user_id="c-rpm", rpm_limit=2, tpm_limit=100000, max_parallel_requests=5)
    assert (made["rpm_limit"], made["tpm_limit"], made["max_parallel_requests"]) == (2, 100000, 5)
    one, two = client(gw, admin.key()), client(gw, admin.key())
    for sdk in (one, two):  # the end user's 2 a minute, whichever key it comes through
        assert sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="c-rpm").choices
    with pytest.raises(openai.RateLimitError, match="end user") as err:
        one.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="c-rpm")
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert one.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="c-other-rpm").choices
    assert one.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    admin.post("/customer/update", user_id="c-rpm", rpm_limit=None)
    assert two.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="c-rpm").choices
    admin.post("/customer/new", expect=400, user_id="c-rpm-bad", rpm_limit=-1)


def test_a_teams_tpm_limit_is_shared_by_its_keys(gw, admin):
    team = admin.post("/team/new", tpm_limit=20)["team_id"]
    one, two = admin.key(team_id=team), admin.key(team_id=team)
    used = chat(gw, one).usage.total_tokens
    assert 0 < used < 20
    calls, keys = 1, (two, one)
    while _status(gw, keys[calls % 2]) == 200:  # both keys' tokens count against the team's 20
        calls += 1
        assert calls < 20
    assert calls == -(-20 // used)
    with pytest.raises(openai.RateLimitError, match="tpm"):
        chat(gw, two)


def test_a_teams_parallel_limit_is_shared_by_its_keys(gw, admin, upstream):
    import threading

    from servers.loopback import Gate
    from servers.openai_server import completion_reply

    team = admin.post("/team/new", max_parallel_requests=1)["team_id"]
    one, two = admin.key(team_id=team), admin.key(team_id=team)
    gate = threading.Event()
    held = completion_reply()
    held.body = [Gate(gate), *held.body]  # an answer the upstream holds back until the gate opens
    upstream.enqueue(held)
    before = len(upstream.chat_requests)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            first = pool.submit(_status, gw, one)
            wait_for(lambda: len(upstream.chat_requests) > before, what="the first request in flight")
            with pytest.raises(openai.RateLimitError):  # the team's one slot, taken by the other key
                chat(gw, two)
        finally:
            gate.set()
        assert first.result() == 200
    assert chat(gw, two).choices  # the slot is given back


def test_all_team_models_lets_a_key_call_what_its_team_may(gw, admin):
    team = admin.post("/team/new", models=["gpt-4o"])["team_id"]
    key = admin.key(team_id=team, models=["all-team-models"])  # (as LiteLLM's UI makes team keys)
    assert chat(gw, key, model="gpt-4o").choices
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, key)
    assert err.value.body["type"] == "team_model_access_denied"
    assert [m.id for m in client(gw, key).models.list()] == ["gpt-4o"]


@pytest.mark.parametrize("path, name", [("/spend/logs", "limit"), ("/key/list", "page"), ("/key/list", "size"),
                                        ("/team/list", "size")])
def test_a_count_that_is_no_whole_number_is_a_400(admin, path, name):
    for bad in ("abc", "1.5", "-1e999", "nan"):
        body = admin.get(path, expect=400, **{name: bad})
        assert body["error"]["param"] == name, body
    admin.get(path, **{name: "2"})  # a number in a text, as every query parameter is


def test_user_list_reports_the_page_size_it_used(admin):
    assert admin.get("/user/list", page_size="2.0")["page_size"] == 2
    assert admin.get("/user/list", page_size="5000")["page_size"] == 1000
    assert admin.get("/user/list", expect=400, page_size="x")["error"]["param"] == "page_size"


def test_all_team_models_without_a_team_allows_nothing(gw, admin):
    key = admin.key(models=["all-team-models"])  # no team to defer to: not every model
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, key)
    assert err.value.body["type"] == "key_model_access_denied"
    assert [m.id for m in client(gw, key).models.list()] == []


def test_streams_and_refusals_carry_the_key_headers(gw, admin):
    key = admin.key(rpm_limit=2, tpm_limit=100000, max_budget=5)
    raw = client(gw, key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                    stream=True)
    assert raw.headers["x-ratelimit-remaining-requests"] == "1" and raw.headers["x-ratelimit-limit-tokens"] == "100000"
    assert raw.headers["x-litellm-key-spend"] == "0.0" and raw.headers["x-litellm-key-max-budget"] == "5.0"
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    chat(gw, key)
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, key)
    assert int(err.value.response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("field, bad", [("blocked", "maybe"), ("blocked", 1), ("key_alias", ["a"]),
                                        ("team_id", 5), ("model_rpm_limit", {"gpt-4o": "ten"}),
                                        ("model_tpm_limit", {"gpt-4o": -1}), ("metadata", "x"),
                                        ("rpm_limit", 2**64), ("max_budget", "lots"), ("tpm_limit", "1.5"),
                                        ("soft_budget", "nan"), ("model_max_budget", {"gpt-4o": -1}),
                                        ("model_max_budget", {"gpt-4o": {"budget_limit": "x"}})])
def test_what_is_stored_is_checked(gw, admin, field, bad):
    r = admin.http.post("/key/generate", json={field: bad})
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text


def test_numbers_in_texts_are_read_and_stored_as_numbers(gw, admin):
    """As LiteLLM's pydantic models read them (an admin form may send texts)."""
    made = admin.post("/key/generate", max_budget="2.5", rpm_limit="3", model_rpm_limit={"gpt-4o": "2"},
                      blocked="false")
    assert (made["max_budget"], made["rpm_limit"], made["model_rpm_limit"], made["blocked"]) == (
        2.5, 3, {"gpt-4o": 2}, False)
    assert chat(gw, made["key"]).choices


def test_fields_llmrelay_does_not_implement_are_named_never_dropped_silently(gw, admin):
    made = admin.post("/key/generate", key_alias="extras", aliases={}, config={}, permissions={},
                      allowed_cache_controls=[], guardrails=None, send_invite_email=False,  # defaults: quiet
                      enforced_params=["user"], max_budgte=5)  # a LiteLLM field we lack; a typo
    assert made["llmrelay_ignored_fields"] == ["enforced_params", "max_budgte"]
    assert chat(gw, made["key"]).choices
    assert "llmrelay_ignored_fields" not in admin.post("/key/update", key=made["key"], max_budget=5, spend=0)
    team = admin.post("/team/new", model_max_budget={"gpt-4o": 1})  # (keys only)
    assert team["llmrelay_ignored_fields"] == ["model_max_budget"]
    wait_for(lambda: any("ignored field(s)" in line and "max_budgte" in line for line in gw.lines),
             what="a log line naming the ignored fields")


# ====================================================================== spend log: tags, prompts, report
def test_key_and_request_tags_are_in_the_spend_log(gw, admin):
    key = admin.key(tags=["team-blue"])
    sdk = client(gw, key)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, metadata={"tags": ["feature-x"]})
    sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                metadata={"tags": ["feature-y", "team-blue"]}).close()
    rows = wait_for(lambda: (r := admin.get("/spend/logs", api_key=key)) and len(r) == 3 and r, what="3 rows")
    tags = sorted(sorted(r["request_tags"]) for r in rows)
    assert tags == [["feature-x", "team-blue"], ["feature-y", "team-blue"], ["team-blue"]]
    assert all("messages" not in r or r["messages"] in (None, "", [], {}) for r in rows)  # not stored by default


def test_prompts_are_stored_only_with_store_prompts_in_spend_logs(upstream, database, tmp_path_factory):
    extra = "  store_prompts_in_spend_logs: true\n"
    with _start(upstream, database, tmp_path_factory, extra) as g:
        admin = Admin(g.url)
        key = admin.key()
        chat(g, key)
        row = wait_for(lambda: admin.get("/spend/logs", api_key=key), what="a spend row")[0]
        assert row["messages"] == MESSAGES


def test_spend_report_by_key_team_user_end_user_model_and_day(gw, admin):
    team = admin.post("/team/new", team_alias="t-report")["team_id"]
    user = admin.post("/user/new", user_id="u-report")["user_id"]
    key = admin.key(team_id=team, user_id=user)
    other = admin.key(team_id=team)
    token = hashlib.sha256(key.encode()).hexdigest()
    chat(gw, key)
    chat(gw, key, model="gpt-4o")
    client(gw, key).chat.completions.create(model="gpt-4o", messages=MESSAGES, user="end-report")
    chat(gw, other)
    mine = wait_for(lambda: (r := admin.get("/spend/logs", api_key=key)) and len(r) == 3 and r, what="3 rows")
    theirs = wait_for(lambda: (r := admin.get("/spend/logs", api_key=other)) and len(r) == 1 and r, what="a row")
    both = mine + theirs
    for row in both:
        assert row["spend"] == pytest.approx(cost_of(row)) and row["spend"] > 0

    def report(group_by: str, **filters) -> dict:
        out = admin.get("/global/spend/report", group_by=group_by, **filters)
        assert out["group_by"] == group_by and out["total_spend"] == pytest.approx(sum(r["spend"] for r in out["results"]))
        return {r["group"]: (pytest.approx(r["spend"]), r["requests"]) for r in out["results"]}

    def summed(rows: list, name: str) -> dict:
        out: dict = {}
        for row in rows:
            spend, n = out.get(row[name], (0.0, 0))
            out[row[name]] = (spend + row["spend"], n + 1)
        return out

    assert report("team", team_id=team) == {team: (pytest.approx(sum(r["spend"] for r in both)), 4)}
    assert report("key", team_id=team) == summed(both, "api_key")
    assert token in report("key", team_id=team)
    assert report("model", api_key=key) == summed(mine, "model_group") and len(report("model", api_key=key)) == 2
    assert report("user", team_id=team) == summed(both, "user_id")
    assert report("end_user", api_key=key) == summed(mine, "end_user")
    assert report("day", api_key=key) == summed(mine, "day") and len(mine[0]["day"]) == 10
    today = mine[0]["day"]
    assert report("team", team_id=team, start_date=today, end_date=today) == report("team", team_id=team)
    assert report("team", team_id=team, start_date="2000-01-01", end_date="2000-01-02") == {}
    admin.get("/global/spend/report", expect=400, group_by="colour")


# ====================================================================== what a key may read, what the logs show
def test_a_key_reads_only_its_own_info(gw, admin):
    from llmrelay.proxy.management import routes

    key, other = admin.key(), admin.key()
    as_key = Admin(gw.url, key)
    own = hashlib.sha256(key.encode()).hexdigest()
    assert as_key.get("/key/info")["key"] == own
    assert as_key.get("/key/info", key=own)["key"] == own  # by its token too
    as_key.get("/key/info", expect=403, key=other)
    as_key.get("/key/info", expect=403, key=hashlib.sha256(other.encode()).hexdigest())
    for path, method in routes():
        if path == "/key/info":
            continue
        r = as_key.http.request(method, path, **({"json": {"key": key}} if method == "POST" else {"params": {"key": key}}))
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["type"] == "auth_error"
    r = as_key.http.post(f"/key/{key}/regenerate")
    assert r.status_code == 401
    assert chat(gw, key).choices  # none of it changed the key


def test_no_key_or_hash_in_any_log_line_of_management_routes(gw, admin):
    made = admin.post("/key/generate", key_alias="log-check")
    key, token = made["key"], made["token"]
    chat(gw, key)
    admin.get("/key/info", key=key)
    admin.get("/key/info", key=token)
    admin.get("/spend/logs", api_key=key)
    admin.post("/key/update", key=key, max_budget=5)
    admin.post("/key/update", expect=404, key=key + "zz")
    new = admin.post(f"/key/{key}/regenerate")["key"]  # LiteLLM's path form: the key in the URL
    new_token = hashlib.sha256(new.encode()).hexdigest()
    Admin(gw.url, new).get("/key/info")
    Admin(gw.url, new).get("/key/list", expect=401)
    admin.post("/key/delete", keys=[new])
    with pytest.raises(openai.AuthenticationError):
        chat(gw, new)
    r = admin.http.post(f"/v1/{key}")  # a key in a wrong URL
    assert r.status_code == 404
    gw.wait_log(lambda r: r.get("path") == "/key/delete")
    gw.wait_log(lambda r: r.get("path") == "/v1/[REDACTED]")
    text = "\n".join(gw.lines)
    for secret in (key, token, key + "zz", hashlib.sha256((key + "zz").encode()).hexdigest(), new, new_token,
                   MASTER_KEY):
        assert secret not in text, secret


def test_team_info_and_user_info_list_keys_by_token_never_the_key(gw, admin):
    team = admin.post("/team/new", team_alias="t-tokens")["team_id"]
    key = admin.key(team_id=team)
    info = httpx.get(gw.url + "/team/info", params={"team_id": team},
                     headers={"Authorization": f"Bearer {MASTER_KEY}"}).text
    assert hashlib.sha256(key.encode()).hexdigest() in info and key not in info


def test_the_database_holds_only_hashes(gw, admin, database):
    """A key is stored as its SHA-256 only: its text is nowhere in the database (every table)."""
    made = admin.post("/key/generate", key_alias="stored-hashed", metadata={"note": "n"})
    key = made["key"]
    chat(gw, key)
    wait_for(lambda: admin.get("/spend/logs", api_key=key), what="a spend row")
    regenerated = admin.post("/key/regenerate", key=key)["key"]
    chat(gw, regenerated)
    wait_for(lambda: len(admin.get("/spend/logs", api_key=regenerated)) == 1, what="its spend row")
    if database.startswith("sqlite:///"):
        import glob

        dump = b"".join(open(p, "rb").read() for p in glob.glob(database.removeprefix("sqlite:///") + "*"))
    else:
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
            dump = "\n".join(str(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"')).encode()
    assert hashlib.sha256(regenerated.encode()).hexdigest().encode() in dump  # (the dump is the database's)
    for secret in (key, regenerated, MASTER_KEY):
        assert secret.encode() not in dump


def test_team_user_and_end_user_budgets_reset_with_their_period(gw, admin):
    from timing import in_one_period

    def spend(period: float) -> list[tuple[str, dict]]:
        """A team's, a user's and an end user's budgets spent within their period."""
        tag = f"{period:g}-{time.monotonic_ns()}"
        duration = f"{period:g}s"
        team = admin.post("/team/new", max_budget=0.0001, budget_duration=duration)["team_id"]
        user = admin.post("/user/new", user_id=f"u-reset-{tag}", max_budget=0.0001, budget_duration=duration)
        admin.post("/customer/new", user_id=f"c-reset-{tag}", max_budget=0.0001, budget_duration=duration)
        cases = [(admin.key(team_id=team), {}), (user["key"], {}), (admin.key(), {"user": f"c-reset-{tag}"})]
        for key, kw in cases:
            chat(gw, key, **kw)
            refused_for_budget(gw, key, timeout=period, **kw)
        return cases

    cases = in_one_period(spend)
    for key, kw in cases:  # a new period: served again
        wait_for(lambda: _status_with(gw, key, **kw) == 200, timeout=60, what="a new period")


def _status_with(gw: Gateway, key: str, **kw) -> int:
    try:
        chat(gw, key, **kw)
        return 200
    except openai.APIStatusError as exc:
        return exc.status_code


def test_a_spend_row_has_every_field(gw, admin):
    team = admin.post("/team/new", team_alias="t-row")["team_id"]
    admin.post("/user/new", user_id="u-row", auto_create_key=False)
    key = admin.key(team_id=team, user_id="u-row", tags=["row-tag"], metadata={"owner": "row"})
    assert admin.get("/key/info", key=key)["info"]["metadata"] == {"owner": "row"}
    raw = client(gw, key).chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, user="end-row")
    answer = raw.parse()
    row = wait_for(lambda: admin.get("/spend/logs", api_key=key), what="a spend row")[0]
    assert row["request_id"] == raw.headers["x-request-id"] == raw.headers["x-litellm-call-id"]
    assert row["api_key"] == hashlib.sha256(key.encode()).hexdigest()
    assert (row["team_id"], row["user_id"], row["end_user"], row["user"]) == (team, "u-row", "end-row", "u-row")
    assert row["model_group"] == "gpt-4o" and row["model"] == "openai/gpt-4o-mini" and row["model_id"]
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens)
    assert row["spend"] == pytest.approx(cost_of(row)) and row["spend"] > 0
    assert row["status"] == "success" and row["request_tags"] == ["row-tag"]
    assert row["start_time"] <= row["end_time"] and _at(row["startTime"]) == pytest.approx(row["start_time"])
    assert row["metadata"]["response_id"] == answer.id
    assert admin.get("/spend/logs", request_id=answer.id)[0]["request_id"] == row["request_id"]
