"""``text_completion()`` / ``atext_completion()``: OpenAI's legacy completions for every provider.

The prompt is sent as one user message through :func:`llmrelay.completion` (translation in
:mod:`llmrelay.translate.completions`); the answer comes back as a ``text_completion`` object, a
stream as ``text_completion`` chunks. A list of several prompts is answered one call per prompt
(not streamed), with the choices numbered in prompt order.
"""

from __future__ import annotations

from typing import Any

from .exceptions import BadRequestError
from .translate.completions import CompletionsRequestError, TextChunks, to_chat, to_text_completion
from .types import OpenAIObject, Usage

__all__ = ["text_completion", "atext_completion", "TextCompletionResponse", "TextChoices"]

_LEGACY = frozenset({"prompt", "suffix", "best_of", "logprobs", "echo", "max_tokens", "temperature", "top_p", "n",
                     "stop", "presence_penalty", "frequency_penalty", "logit_bias", "seed", "user", "stream_options"})


class TextChoices(OpenAIObject):
    __slots__ = ()
    text: str = ""
    index: int = 0
    logprobs: Any = None
    finish_reason: str | None = None


class TextCompletionResponse(OpenAIObject):
    """A ``text_completion`` (also each streamed chunk)."""

    __slots__ = ()
    _nested = {"usage": Usage}
    _nested_lists = {"choices": TextChoices}
    id: str | None = None
    object: str = "text_completion"
    created: int = 0
    model: str | None = None
    choices: list = []
    usage: Usage | None = None


def _prompts(prompt: Any) -> list[Any]:
    if isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    return [prompt]


def _translate(model: str, prompt: Any, kwargs: dict[str, Any]) -> tuple[list, dict[str, Any], str | None]:
    data = {k: v for k, v in kwargs.items() if k in _LEGACY}
    data["prompt"] = prompt
    try:
        messages, params, echo = to_chat(data)
    except CompletionsRequestError as exc:
        raise BadRequestError(exc.message, model=model) from None
    rest = {k: v for k, v in kwargs.items() if k not in _LEGACY}
    return messages, {**rest, **params}, messages[0]["content"] if echo else None


def _join(model: str, answers: list[dict[str, Any]]) -> TextCompletionResponse:
    first = answers[0]
    if len(answers) > 1:
        choices = []
        totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for answer in answers:
            for choice in answer["choices"]:
                choices.append({**choice, "index": len(choices)})
            for key in totals:
                totals[key] += (answer.get("usage") or {}).get(key) or 0
        first = {**first, "choices": choices, "usage": totals}
    return TextCompletionResponse(**first)


class _Chunks:
    def __init__(self, stream: Any, model: str, echo: str | None) -> None:
        self.stream = stream
        self.chunks = TextChunks(model, echo)

    def __iter__(self) -> "_Chunks":
        return self

    def __next__(self) -> TextCompletionResponse:
        while True:
            out = self.chunks.convert(next(self.stream))
            if out is not None:
                return TextCompletionResponse(**out)

    def __aiter__(self) -> "_Chunks":
        return self

    async def __anext__(self) -> TextCompletionResponse:
        while True:
            out = self.chunks.convert(await self.stream.__anext__())
            if out is not None:
                return TextCompletionResponse(**out)


def _calls(model: str, prompt: Any, stream: bool, kwargs: dict[str, Any]) -> list[tuple[list, dict[str, Any], str | None]]:
    """One translated call per prompt (a stream takes exactly one prompt)."""
    prompts = _prompts(prompt)
    if stream and len(prompts) > 1:
        raise BadRequestError("Several prompts cannot be streamed in one call.", model=model)
    return [_translate(model, one, kwargs) for one in prompts]


def text_completion(model: str, prompt: Any = None, stream: bool = False, **kwargs: Any) -> Any:
    """Complete ``prompt`` (a string, or a list of strings) with any chat model. Registered
    callbacks hear of the call once (``call_type`` ``"text_completion"``), whatever the number
    of prompts."""
    from .main import completion

    return complete_text(completion, model, prompt, stream, kwargs)


async def atext_completion(model: str, prompt: Any = None, stream: bool = False, **kwargs: Any) -> Any:
    """The async twin of :func:`text_completion`."""
    from .main import acompletion

    return await acomplete_text(acompletion, model, prompt, stream, kwargs)


def _record(model: str, prompt: Any, stream: bool, kwargs: dict[str, Any], is_async: bool) -> tuple[Any, dict]:
    """The call's record (or None) and the kwargs for the chat calls (which then leave the
    reporting to us: one event for the call, not one per prompt)."""
    from .logging_obj import start_call

    record = start_call(model, [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt,
                        stream, kwargs, is_async, "text_completion", {"prompt": prompt})
    if record is None:
        return None, kwargs
    return record, {**kwargs, "litellm_logging_obj": record}


def _report(record: Any, result: Any, answers: list[Any]) -> Any:
    """Report a finished call: a stream at its end (the chat stream under ``result``), else now,
    priced as the sum of its chat calls."""
    if record is None:
        return result
    if isinstance(result, _Chunks):
        record.returned(result.stream)
        return result
    costs = [(getattr(a, "_hidden_params", None) or {}).get("response_cost") for a in answers]
    hidden = dict(getattr(answers[0], "_hidden_params", None) or {}) if answers else {}
    hidden["response_cost"] = None if any(c is None for c in costs) else sum(costs)
    result._hidden_params = hidden
    record.returned(result)
    return result


def complete_text(complete: Any, model: str, prompt: Any, stream: bool, kwargs: dict[str, Any]) -> Any:
    """:func:`text_completion` over any ``completion``-like callable (the library's, a Router's)."""
    record, kw_all = _record(model, prompt, stream, kwargs, False)
    answers: list[Any] = []
    try:
        texts = []
        for messages, kw, echo in _calls(model, prompt, stream, kw_all):
            result = complete(model, messages, stream, **kw)
            if stream:
                return _report(record, _Chunks(result, model, echo), answers)
            answers.append(result)
            texts.append(to_text_completion(result, model, echo))
        return _report(record, _join(model, texts), answers)
    except BaseException as exc:
        if record is not None:
            record.failure(exc)
        raise


async def acomplete_text(acomplete: Any, model: str, prompt: Any, stream: bool, kwargs: dict[str, Any]) -> Any:
    """The async twin of :func:`complete_text`."""
    record, kw_all = _record(model, prompt, stream, kwargs, True)
    answers: list[Any] = []
    try:
        texts = []
        for messages, kw, echo in _calls(model, prompt, stream, kw_all):
            result = await acomplete(model, messages, stream, **kw)
            if stream:
                return _report(record, _Chunks(result, model, echo), answers)
            answers.append(result)
            texts.append(to_text_completion(result, model, echo))
        return _report(record, _join(model, texts), answers)
    except BaseException as exc:
        if record is not None:
            record.failure(exc)
        raise
