"""Errors of the local provider that need no model (they run everywhere)."""

from __future__ import annotations

import sys

import pytest

import llmrelay
from llmrelay.providers.local import _held_back

MESSAGES = [{"role": "user", "content": "Hi"}]


def test_llama_cpp_not_installed_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    for stream in (False, True):
        with pytest.raises(llmrelay.BadRequestError) as info:
            llmrelay.completion("local/smollm2", MESSAGES, stream=stream, model_path=__file__)
        assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in info.value.message
        assert "llmrelay[local]" in info.value.message


async def test_llama_cpp_not_installed_async(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(llmrelay.BadRequestError, match="llama-cpp-python"):
        await llmrelay.acompletion("local/smollm2", MESSAGES, stream=True, model_path=__file__)


@pytest.mark.parametrize("model", ["local/missing-file.gguf", "local/./no/such/model.gguf", "local/no-such-model"])
def test_missing_model_file_is_not_found(model: str) -> None:
    with pytest.raises(llmrelay.NotFoundError):
        llmrelay.completion(model, MESSAGES)


def test_missing_model_path_is_not_found() -> None:
    with pytest.raises(llmrelay.NotFoundError, match="model_path"):
        llmrelay.completion("local/mine", MESSAGES, model_path="/nonexistent/model.gguf")


def test_unsupported_params_fail_before_generation() -> None:
    with pytest.raises(llmrelay.UnsupportedParamsError):
        llmrelay.completion("local/smollm2", MESSAGES, tools=[{"type": "function", "function": {"name": "f"}}])
    with pytest.raises(llmrelay.UnsupportedParamsError, match="n=1"):
        llmrelay.completion("local/smollm2", MESSAGES, n=2)


@pytest.mark.parametrize(
    "text, stops, expected",
    [
        ("hello wor", ["world"], 3),
        ("hello", ["world"], 0),
        ("abcab", ["abcabd"], 5),
        ("xyz", ["z!", "yz?"], 2),
        ("x", [], 0),
    ],
)
def test_held_back_is_the_longest_possible_stop_start(text: str, stops: list[str], expected: int) -> None:
    assert _held_back(text, stops, max((len(s) for s in stops), default=0)) == expected
