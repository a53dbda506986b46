"""LiteLLM's client-side BudgetManager (docs/budget_manager.md), with calls to a fake OpenAI
server and the JSON file LiteLLM keeps in the working directory."""

from __future__ import annotations

import json
import time

import pytest

import llmrelay as litellm
from servers.openai_server import FakeOpenAIServer


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def openai_env(monkeypatch):
    with FakeOpenAIServer() as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_API_BASE", server.url + "/v1")
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        yield server


def test_docs_quick_start(in_tmp_cwd, openai_env):
    """docs/budget_manager.md, "User-based rate limiting" (verbatim but for the model's host)."""
    from llmrelay import BudgetManager, completion

    budget_manager = BudgetManager(project_name="test_project")

    user = "1234"

    # create a budget if new user user
    if not budget_manager.is_valid_user(user):
        budget_manager.create_budget(total_budget=10, user=user)

    # check if a given call can be made
    if budget_manager.get_current_cost(user=user) <= budget_manager.get_total_budget(user):
        response = completion(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "Hey, how's it going?"}])
        budget_manager.update_cost(completion_obj=response, user=user)
    else:
        response = "Sorry - no budget!"

    cost = litellm.completion_cost(completion_response=response)
    assert cost > 0
    assert budget_manager.get_current_cost(user) == pytest.approx(cost)
    assert budget_manager.get_model_cost(user) == {response.model: pytest.approx(cost)}
    saved = json.loads((in_tmp_cwd / "user_cost.json").read_text())
    assert saved["1234"]["total_budget"] == 10 and saved["1234"]["current_cost"] == pytest.approx(cost)
    # a new manager in the same directory reads the budgets back
    again = BudgetManager(project_name="test_project")
    assert again.get_users() == ["1234"] and again.get_current_cost("1234") == pytest.approx(cost)


def test_costs_from_text_projected_cost_and_reset(in_tmp_cwd):
    manager = litellm.BudgetManager(project_name="p", path=str(in_tmp_cwd / "budgets.json"))
    manager.create_budget(total_budget=0.5, user="ann")
    result = manager.update_cost(user="ann", model="gpt-4o", input_text="hello there", output_text="general kenobi")
    spent = manager.get_current_cost("ann")
    assert result == {"user": manager.user_dict["ann"]} and spent > 0
    projected = manager.projected_cost(model="gpt-4o", messages=[{"role": "user", "content": "hi " * 100}], user="ann")
    assert projected > spent
    assert manager.reset_cost("ann")["user"]["current_cost"] == 0
    assert manager.get_model_cost("ann") == {}
    assert (in_tmp_cwd / "budgets.json").exists() and not (in_tmp_cwd / "user_cost.json").exists()
    with pytest.raises(ValueError):
        manager.update_cost(user="ann")
    with pytest.raises(ValueError):
        manager.create_budget(total_budget=1, user="bob", duration="hourly")
    assert manager.is_valid_user("ann") and not manager.is_valid_user("bob")


def test_duration_budgets_reset_when_their_period_has_passed(in_tmp_cwd):
    manager = litellm.BudgetManager(project_name="p")
    two_days_ago = time.time() - 2 * 86400
    manager.create_budget(total_budget=1, user="daily", duration="daily", created_at=two_days_ago)
    manager.create_budget(total_budget=1, user="weekly", duration="weekly", created_at=two_days_ago)
    assert manager.user_dict["weekly"]["duration"] == 7
    for user in ("daily", "weekly"):
        manager.update_cost(user=user, model="gpt-4o", input_text="a b c", output_text="d e f")
    manager.update_budget_all_users()
    assert manager.get_current_cost("daily") == 0
    assert manager.get_current_cost("weekly") > 0
    assert manager.user_dict["daily"]["last_updated_at"] > two_days_ago
    assert manager.save_data() == {"status": "success"}


def test_hosted_client_is_not_provided(in_tmp_cwd):
    with pytest.raises(NotImplementedError):
        litellm.BudgetManager(project_name="p", client_type="hosted")
    import llmrelay.budget_manager

    assert litellm.budget_manager is llmrelay.budget_manager
    assert litellm.budget_manager.BudgetManager is litellm.BudgetManager
