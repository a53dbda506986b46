"""The gateway's schema, as numbered migrations applied in order (never edited once landed).

One schema for SQLite and PostgreSQL: only portable types (TEXT, BIGINT, DOUBLE PRECISION);
JSON values are TEXT, times are Unix seconds. ``{serial}`` is the backend's auto-increment
primary key. Add a migration by appending ``(next number, name, [statements])``.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "LATEST"]

_BUDGET = """
    max_budget DOUBLE PRECISION,
    soft_budget DOUBLE PRECISION,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_duration TEXT,
    budget_reset_at DOUBLE PRECISION,
    rpm_limit BIGINT,
    tpm_limit BIGINT,
    max_parallel_requests BIGINT,
    models TEXT,
    metadata TEXT,
    tags TEXT,
    blocked BIGINT NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION"""

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "keys, teams, users, end users, spend logs, change feed", [
        f"""CREATE TABLE llmrelay_keys (
            token TEXT PRIMARY KEY,
            key_name TEXT,
            key_alias TEXT,
            team_id TEXT,
            user_id TEXT,
            expires DOUBLE PRECISION,
            model_max_budget TEXT,
            model_rpm_limit TEXT,
            model_tpm_limit TEXT,
            model_spend TEXT,{_BUDGET})""",
        "CREATE INDEX llmrelay_keys_team ON llmrelay_keys (team_id)",
        "CREATE INDEX llmrelay_keys_user ON llmrelay_keys (user_id)",
        "CREATE INDEX llmrelay_keys_reset ON llmrelay_keys (budget_reset_at)",
        f"""CREATE TABLE llmrelay_teams (
            team_id TEXT PRIMARY KEY,
            team_alias TEXT,
            members TEXT,{_BUDGET})""",
        f"""CREATE TABLE llmrelay_users (
            user_id TEXT PRIMARY KEY,
            user_email TEXT,
            user_role TEXT,
            teams TEXT,{_BUDGET})""",
        f"""CREATE TABLE llmrelay_end_users (
            user_id TEXT PRIMARY KEY,
            alias TEXT,{_BUDGET})""",
        """CREATE TABLE llmrelay_spend_logs (
            request_id TEXT PRIMARY KEY,
            api_key TEXT,
            team_id TEXT,
            user_id TEXT,
            end_user TEXT,
            model_group TEXT,
            model TEXT,
            model_id TEXT,
            call_type TEXT,
            status TEXT,
            prompt_tokens BIGINT NOT NULL DEFAULT 0,
            completion_tokens BIGINT NOT NULL DEFAULT 0,
            total_tokens BIGINT NOT NULL DEFAULT 0,
            spend DOUBLE PRECISION NOT NULL DEFAULT 0,
            start_time DOUBLE PRECISION NOT NULL,
            end_time DOUBLE PRECISION NOT NULL,
            day TEXT NOT NULL,
            tags TEXT,
            metadata TEXT,
            messages TEXT,
            response TEXT)""",
        "CREATE INDEX llmrelay_spend_logs_time ON llmrelay_spend_logs (start_time)",
        "CREATE INDEX llmrelay_spend_logs_key ON llmrelay_spend_logs (api_key, start_time)",
        """CREATE TABLE llmrelay_changes (
            seq {serial},
            kind TEXT NOT NULL,
            ident TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX llmrelay_changes_at ON llmrelay_changes (at)",
    ]),
    (2, "Responses API conversation state (previous_response_id)", [
        """CREATE TABLE llmrelay_responses (
            response_id TEXT PRIMARY KEY,
            conversation TEXT NOT NULL,
            response TEXT,
            expires_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX llmrelay_responses_expires ON llmrelay_responses (expires_at)",
    ]),
    (3, "per-model budget periods (model_max_budget time_period), soft-budget alert state", [
        "ALTER TABLE llmrelay_keys ADD COLUMN model_budget_reset_at TEXT",
        "ALTER TABLE llmrelay_keys ADD COLUMN model_reset_at DOUBLE PRECISION",
        "CREATE INDEX llmrelay_keys_model_reset ON llmrelay_keys (model_reset_at)",
        *(f"ALTER TABLE {table} ADD COLUMN soft_budget_cooldown BIGINT NOT NULL DEFAULT 0"
          for table in ("llmrelay_keys", "llmrelay_teams", "llmrelay_users", "llmrelay_end_users")),
    ]),
    (4, "budget tiers (LiteLLM's /budget/new; budget_id on keys and end users), teams' per-model limits", [
        """CREATE TABLE llmrelay_budgets (
            budget_id TEXT PRIMARY KEY,
            max_budget DOUBLE PRECISION,
            soft_budget DOUBLE PRECISION,
            budget_duration TEXT,
            rpm_limit BIGINT,
            tpm_limit BIGINT,
            max_parallel_requests BIGINT,
            model_max_budget TEXT,
            created_at DOUBLE PRECISION,
            updated_at DOUBLE PRECISION)""",
        "ALTER TABLE llmrelay_keys ADD COLUMN budget_id TEXT",
        "ALTER TABLE llmrelay_end_users ADD COLUMN budget_id TEXT",
        "CREATE INDEX llmrelay_keys_budget ON llmrelay_keys (budget_id)",
        "ALTER TABLE llmrelay_teams ADD COLUMN model_rpm_limit TEXT",
        "ALTER TABLE llmrelay_teams ADD COLUMN model_tpm_limit TEXT",
        "CREATE INDEX llmrelay_end_users_budget ON llmrelay_end_users (budget_id)",
    ]),
]

MIGRATIONS.append(
    (5, "team members' budgets in the team (LiteLLM's max_budget_in_team)", [
        f"""CREATE TABLE llmrelay_team_members (
            member_id TEXT PRIMARY KEY,
            team_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            soft_budget_cooldown BIGINT NOT NULL DEFAULT 0,{_BUDGET})""",
        "CREATE INDEX llmrelay_team_members_team ON llmrelay_team_members (team_id)",
        "CREATE INDEX llmrelay_team_members_reset ON llmrelay_team_members (budget_reset_at)",
    ]))

MIGRATIONS.append(
    (6, "models added through the management API (LiteLLM's /model/new with store_model_in_db)", [
        """CREATE TABLE llmrelay_models (
            model_id TEXT PRIMARY KEY,
            model_name TEXT NOT NULL,
            litellm_params TEXT NOT NULL,
            model_info TEXT,
            created_at DOUBLE PRECISION,
            updated_at DOUBLE PRECISION)""",
    ]))

LATEST = MIGRATIONS[-1][0]
