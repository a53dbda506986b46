"""``previous_response_id`` state in the gateway's database: it survives a restart (SQLite) and is
shared by two gateways on one PostgreSQL; expired rows are never read. Real gateway
subprocesses, the official ``openai`` SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from dbs import database_for
from proxy.conftest import MASTER_KEY, UPSTREAM_KEY
from proxy.harness import Gateway
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer
from timing import DEADLINE

CONFIG = """
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
general_settings:
  master_key: {master}
  database_url: "{database}"
  proxy_batch_write_at: 0.05
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


def _gateway(upstream: FakeOpenAIServer, database: str, tmp_path_factory) -> Gateway:
    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    path.write_text(CONFIG.format(upstream=upstream.url, master=MASTER_KEY, database=database))
    return Gateway(str(path), [], env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY,
                                       "LLMRELAY_DATA_DIR": str(tmp_path_factory.mktemp("data"))})


def _client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)


def _continue(client: openai.OpenAI, upstream: FakeOpenAIServer, previous: str, text: str,
              timeout: float = DEADLINE) -> openai.types.responses.Response:
    """A follow-up on ``previous`` (retried until the write-behind has reached the database)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            follow = client.responses.create(model="gpt", input=text, previous_response_id=previous)
            break
        except openai.NotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert follow.previous_response_id == previous and follow.output_text == DEFAULT_TEXT
    return follow


def _eventually(call, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except openai.NotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sent_texts(upstream: FakeOpenAIServer) -> list[str]:
    return [m["content"] for m in upstream.chat_requests[-1]["messages"]]


def test_a_conversation_survives_a_restart(upstream, tmp_path_factory):
    with database_for("sqlite", str(tmp_path_factory.mktemp("db"))) as url:
        with _gateway(upstream, url, tmp_path_factory) as gw:
            first = _client(gw).responses.create(model="gpt", input="My name is Ada.", instructions="Be brief.")
            second = _continue(_client(gw), upstream, first.id, "And yours?")
            kept = _client(gw).responses.create(model="gpt", input="Forget me.")
            _client(gw).responses.delete(kept.id)
        # stopped gracefully: the queue was flushed; a new process has an empty memory
        with _gateway(upstream, url, tmp_path_factory) as gw:
            client = _client(gw)
            third = client.responses.create(model="gpt", input="What is my name?", previous_response_id=second.id)
            assert third.output_text == DEFAULT_TEXT
            assert _sent_texts(upstream) == ["My name is Ada.", DEFAULT_TEXT, "And yours?", DEFAULT_TEXT,
                                             "What is my name?"]
            assert client.responses.retrieve(first.id).output_text == DEFAULT_TEXT
            with pytest.raises(openai.NotFoundError):  # deleted before the restart
                client.responses.create(model="gpt", input="more", previous_response_id=kept.id)
            with pytest.raises(openai.NotFoundError):
                client.responses.retrieve(kept.id)


def test_two_gateways_share_a_conversation_on_postgres(upstream, tmp_path_factory):
    with database_for("postgres", str(tmp_path_factory.mktemp("db")), "llmrelay_resp") as url:
        with _gateway(upstream, url, tmp_path_factory) as one, _gateway(upstream, url, tmp_path_factory) as two:
            a, b = _client(one), _client(two)
            first = a.responses.create(model="gpt", input="My name is Ada.")
            second = _continue(b, upstream, first.id, "And yours?")  # written by one, read by two
            third = _continue(a, upstream, second.id, "What is my name?")  # and back
            assert _sent_texts(upstream) == ["My name is Ada.", DEFAULT_TEXT, "And yours?", DEFAULT_TEXT,
                                             "What is my name?"]
            _eventually(lambda: b.responses.retrieve(third.id))  # written behind by a
            b.responses.delete(third.id)
            with _gateway(upstream, url, tmp_path_factory) as fresh:
                deadline = time.monotonic() + DEADLINE
                while True:
                    try:
                        _client(fresh).responses.retrieve(third.id)
                    except openai.NotFoundError:
                        break
                    assert time.monotonic() < deadline, "the delete never reached the database"
                    time.sleep(0.05)


def test_expired_rows_are_not_read_and_are_pruned(tmp_path):
    from llmrelay.storage import open_store

    store = open_store(f"sqlite:///{tmp_path}/x.db")
    try:
        store.migrate()
        now = time.time()
        store.write_responses([("put", "resp_old", [{"role": "user", "content": "a"}], None, now - 1),
                               ("put", "resp_new", [{"role": "user", "content": "b"}], {"id": "resp_new"}, now + 60),
                               ("put", "resp_gone", [], None, now + 60), ("delete", "resp_gone")])
        assert store.read_response("resp_old", now) is None
        assert store.read_response("resp_gone", now) is None
        assert store.read_response("resp_new", now) == ([{"role": "user", "content": "b"}], {"id": "resp_new"},
                                                        pytest.approx(now + 60))
        assert store.prune_responses(now) == 1
        assert store.read_response("resp_new", now + 61) is None
    finally:
        store.close()
