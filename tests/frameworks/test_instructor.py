"""instructor's from_litellm on llmrelay: sync and async, tools and JSON-schema modes."""

from __future__ import annotations

import asyncio
import json

import pytest

from frameworks.conftest import MODEL

instructor = pytest.importorskip("instructor", reason="instructor is not installed (scripts/setup-env.sh installs it)")

import litellm  # noqa: E402  (llmrelay, installed by conftest)
from pydantic import BaseModel  # noqa: E402

USER = {"name": "Ada", "age": 36}


class User(BaseModel):
    name: str
    age: int


def _json_answer(body: dict) -> str:
    return json.dumps(USER)


MODES = [("tools", instructor.Mode.TOOLS), ("json_schema", instructor.Mode.JSON_SCHEMA)]


def _check_request(srv, mode_name: str) -> None:
    sent = srv.chat_requests[0]
    if mode_name == "tools":
        assert sent["tools"][0]["function"]["name"] == "User"
        assert set(sent["tools"][0]["function"]["parameters"]["properties"]) == {"name", "age"}
    else:
        assert sent["response_format"]["type"] == "json_schema"
        assert set(sent["response_format"]["json_schema"]["schema"]["properties"]) == {"name", "age"}


@pytest.mark.parametrize("mode_name,mode", MODES)
def test_from_litellm_sync(server_factory, mode_name, mode):
    srv = server_factory(_json_answer, tool_arguments=USER)
    client = instructor.from_litellm(litellm.completion, mode=mode)
    user = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Ada is 36."}],
        response_model=User,
        api_base=srv.url + "/v1",
        api_key="sk-test",
    )
    assert isinstance(user, User) and user.model_dump() == USER
    _check_request(srv, mode_name)


@pytest.mark.parametrize("mode_name,mode", MODES)
def test_from_litellm_async(server_factory, mode_name, mode):
    srv = server_factory(_json_answer, tool_arguments=USER)
    client = instructor.from_litellm(litellm.acompletion, mode=mode)

    async def main():
        return await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Ada is 36."}],
            response_model=User,
            api_base=srv.url + "/v1",
            api_key="sk-test",
        )

    user = asyncio.run(main())
    assert isinstance(user, User) and user.model_dump() == USER
    _check_request(srv, mode_name)
