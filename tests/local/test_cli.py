"""The ``llmrelay`` command line, end to end in a subprocess (``python -m llmrelay``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import llmrelay
from llmrelay.cli import main

SRC = str(Path(__file__).resolve().parents[2] / "src")
TIMEOUT = 120


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "llmrelay", *args],
        input=stdin, capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )


@pytest.mark.slow
def test_chat_streams_the_answer(needs_model: None) -> None:
    expected = llmrelay.completion(
        "local/smollm2", [{"role": "user", "content": "Why is the sky blue?"}], temperature=0, max_tokens=16
    ).choices[0].message.content
    result = run("chat", "Why is the sky blue?", "--max-tokens", "16", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"
    assert result.stderr == ""


@pytest.mark.slow
def test_chat_reads_the_prompt_from_stdin_with_a_system_message(needs_model: None) -> None:
    messages = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}]
    expected = llmrelay.completion("local/smollm2", messages, temperature=0, max_tokens=8).choices[0].message.content
    result = run("chat", "--system", "Answer in French.", "--max-tokens", "8", "--temperature", "0",
                 "--model", "local/smollm2", stdin="Hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"


@pytest.mark.slow
def test_chat_error_is_one_line_without_traceback() -> None:
    result = run("chat", "--model", "local/does-not-exist.gguf", "hi")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("llmrelay: error: NotFoundError")


def test_in_process_errors_and_usage(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["chat", "--model", "nosuchprovider/x", "hi"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("llmrelay: error: BadRequestError") and err.count("\n") == 1
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("   \n"))
    assert main(["chat"]) == 2
    assert "no prompt" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["--version"]) == 0
    assert llmrelay.__version__ in capsys.readouterr().out
    assert main(["chat", "--max-tokens", "many", "hi"]) == 2


def test_chat_with_any_provider(capsys: pytest.CaptureFixture[str]) -> None:
    """--model reaches any provider (here a loopback OpenAI server); HTTP errors are one line."""
    from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer, error_reply

    with FakeOpenAIServer() as server:
        base = server.url + "/v1"
        assert main(["chat", "--model", "openai/gpt-4o-mini", "--api-base", base, "--api-key", "k", "hi"]) == 0
        assert capsys.readouterr().out == DEFAULT_TEXT + "\n"
        server.enqueue(error_reply(401))
        assert main(["chat", "--model", "openai/gpt-4o-mini", "--api-base", base, "--api-key", "k", "hi"]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("llmrelay: error: AuthenticationError") and captured.err.count("\n") == 1


def test_proxy_dispatch(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    seen: list[list[str]] = []
    module = types.ModuleType("llmrelay.proxy.cli")
    module.main = lambda argv: seen.append(argv) or 0  # type: ignore[attr-defined]
    package = types.ModuleType("llmrelay.proxy")
    package.__path__ = []  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llmrelay.proxy", package)
    monkeypatch.setitem(sys.modules, "llmrelay.proxy.cli", module)
    assert main(["proxy", "--port", "0"]) == 0
    assert seen == [["--port", "0"]]
    monkeypatch.setitem(sys.modules, "llmrelay.proxy.cli", None)
    assert main(["proxy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmrelay: error:") and err.count("\n") == 1
