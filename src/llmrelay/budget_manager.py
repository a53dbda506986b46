"""LiteLLM's client-side ``BudgetManager``: per-user spend limits kept by the application.

    budget_manager = BudgetManager(project_name="test_project")
    if not budget_manager.is_valid_user(user):
        budget_manager.create_budget(total_budget=10, user=user)
    if budget_manager.get_current_cost(user=user) <= budget_manager.get_total_budget(user):
        response = completion(model="gpt-4o-mini", messages=messages)
        budget_manager.update_cost(completion_obj=response, user=user)

With ``client_type="local"`` (the default) the users' budgets and spend live in
``user_cost.json`` in the working directory, as in LiteLLM (``path=`` chooses another file);
it is rewritten after every change. LiteLLM's ``"hosted"`` client (its discontinued hosted
budget service) is not provided. This is not the gateway's budgets (see docs/keys.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

__all__ = ["BudgetManager"]

log = logging.getLogger("llmrelay")

#: LiteLLM's durations, in days.
_DURATIONS = {"daily": 1, "weekly": 7, "monthly": 28, "yearly": 365}


class BudgetManager:
    """Per-user budgets (USD) and the spend counted against them (see the module docstring)."""

    def __init__(
        self,
        project_name: str,
        client_type: str = "local",
        api_base: str | None = None,
        headers: dict[str, str] | None = None,
        path: str = "user_cost.json",
    ) -> None:
        if client_type != "local":
            raise NotImplementedError(
                f"BudgetManager(client_type={client_type!r}): only 'local' (a JSON file) is provided; "
                "LiteLLM's hosted budget service is not"
            )
        self.project_name = project_name
        self.client_type = client_type
        self.api_base = api_base
        self.headers = headers or {"Content-Type": "application/json"}
        self.path = path
        self._lock = threading.Lock()
        self.user_dict: dict[str, dict[str, Any]] = {}
        self.load_data()

    # ------------------------------------------------------------------ storage
    def load_data(self) -> None:
        """Read the users' budgets from the file (none yet: start empty)."""
        if os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.user_dict = json.load(f)
        else:
            log.debug("BudgetManager: %s not found; starting with no users", self.path)
            self.user_dict = {}

    def save_data(self) -> dict[str, str]:
        """Write the users' budgets to the file (whole, through a temporary file)."""
        with self._lock:
            data = json.dumps(self.user_dict, indent=4)
            tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(data)
            os.replace(tmp, self.path)
        return {"status": "success"}

    # ------------------------------------------------------------------ budgets
    def create_budget(
        self,
        total_budget: float,
        user: str,
        duration: str | None = None,
        created_at: float | None = None,
    ) -> dict[str, Any]:
        """Give ``user`` a budget of ``total_budget`` USD; with ``duration`` ("daily", "weekly",
        "monthly" (28 days) or "yearly") their spend starts again at 0 each period (see
        :meth:`update_budget_all_users`). Replaces the user's entry."""
        if duration is None:
            self.user_dict[user] = {"total_budget": total_budget}
        else:
            days = _DURATIONS.get(duration)
            if days is None:
                raise ValueError('duration needs to be one of ["daily", "weekly", "monthly", "yearly"]')
            created = time.time() if created_at is None else created_at
            self.user_dict[user] = {
                "total_budget": total_budget,
                "duration": days,
                "created_at": created,
                "last_updated_at": created,
            }
        self.save_data()
        return self.user_dict[user]

    def projected_cost(self, model: str, messages: list[dict[str, Any]], user: str) -> float:
        """The user's spend so far plus what ``messages`` would cost as a prompt to ``model``."""
        from .cost import cost_per_token
        from .tokens import token_counter

        text = "".join(m["content"] for m in messages)
        prompt_cost, _ = cost_per_token(model=model, prompt_tokens=token_counter(model=model, text=text),
                                        completion_tokens=0)
        return prompt_cost + self.user_dict[user].get("current_cost", 0)

    def get_total_budget(self, user: str) -> float:
        return self.user_dict[user]["total_budget"]

    def update_cost(
        self,
        user: str,
        completion_obj: Any = None,
        model: str | None = None,
        input_text: str | None = None,
        output_text: str | None = None,
    ) -> dict[str, Any]:
        """Add a call's cost to the user's spend (in total and per model): from a response
        (``completion_obj``), or from ``model`` with ``input_text`` and ``output_text``."""
        from .cost import completion_cost, cost_per_token
        from .tokens import token_counter

        if model and input_text and output_text:
            prompt = token_counter(model=model, messages=[{"role": "user", "content": input_text}])
            answer = token_counter(model=model, messages=[{"role": "user", "content": output_text}])
            prompt_cost, answer_cost = cost_per_token(model=model, prompt_tokens=prompt, completion_tokens=answer)
            cost = prompt_cost + answer_cost
        elif completion_obj:
            cost = completion_cost(completion_response=completion_obj)
            model = completion_obj["model"]
        else:
            raise ValueError(
                "Either a chat completion object or the text response needs to be passed in. "
                "Learn more - https://docs.litellm.ai/docs/budget_manager"
            )
        entry = self.user_dict[user]
        entry["current_cost"] = cost + entry.get("current_cost", 0)
        per_model = entry.setdefault("model_cost", {})
        per_model[model] = cost + per_model.get(model, 0)
        self.save_data()
        return {"user": entry}

    def get_current_cost(self, user: str) -> float:
        return self.user_dict[user].get("current_cost", 0)

    def get_model_cost(self, user: str) -> Any:
        """``{model: spend}`` for the user (0 before their first call, as in LiteLLM)."""
        return self.user_dict[user].get("model_cost", 0)

    def is_valid_user(self, user: str) -> bool:
        return user in self.user_dict

    def get_users(self) -> list[str]:
        return list(self.user_dict)

    def reset_cost(self, user: str) -> dict[str, Any]:
        """Set the user's spend back to 0."""
        self.user_dict[user]["current_cost"] = 0
        self.user_dict[user]["model_cost"] = {}
        return {"user": self.user_dict[user]}

    def reset_on_duration(self, user: str) -> None:
        """Reset the user's spend if their budget's period has passed since the last reset."""
        entry = self.user_dict[user]
        now = time.time()
        if now - entry["last_updated_at"] >= entry["duration"] * 24 * 60 * 60:
            self.reset_cost(user)
            entry["last_updated_at"] = now
            self.save_data()

    def update_budget_all_users(self) -> None:
        """:meth:`reset_on_duration` for every user whose budget has a duration."""
        for user in self.get_users():
            if "duration" in self.user_dict[user]:
                self.reset_on_duration(user)
