"""OpenAI's legacy ``/v1/completions`` over chat completions: pure translation, no I/O.

The prompt becomes one user message; ``echo`` prepends the prompt to the answer; the other
parameters keep their chat meaning. ``suffix``, ``best_of`` > 1 and numeric ``logprobs`` have
no chat equivalent and are refused.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CompletionsRequestError", "prompt_messages", "to_chat", "to_text_completion", "text_chunk", "TextChunks"]

#: Legacy parameters with the same meaning in chat completions.
_SAME = ("max_tokens", "temperature", "top_p", "n", "stop", "presence_penalty", "frequency_penalty",
         "logit_bias", "seed", "user", "stream_options")


class CompletionsRequestError(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def prompt_messages(prompt: Any) -> list[dict[str, Any]]:
    """The chat messages for one prompt (a string, or a one-element list of strings)."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise CompletionsRequestError("'prompt' must be a string (or a list with one string; token-id prompts "
                                      "and several prompts in one request are not supported).", "prompt")
    return [{"role": "user", "content": prompt}]


def to_chat(data: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
    """(messages, chat params, echo) for a legacy request body (``model``/``stream`` taken out)."""
    if "prompt" not in data:
        raise CompletionsRequestError("Missing required parameter: 'prompt'.", "prompt")
    messages = prompt_messages(data["prompt"])
    if data.get("suffix"):
        raise CompletionsRequestError("'suffix' is not supported by this gateway.", "suffix")
    if (data.get("best_of") or 1) > 1:
        raise CompletionsRequestError("'best_of' greater than 1 is not supported by this gateway.", "best_of")
    if data.get("logprobs"):
        raise CompletionsRequestError("'logprobs' is not supported for translated completions.", "logprobs")
    params = {k: data[k] for k in _SAME if data.get(k) is not None}
    return messages, params, bool(data.get("echo"))


def _id(chat_id: Any) -> str:
    return "cmpl-" + (chat_id.removeprefix("chatcmpl-") if isinstance(chat_id, str) else "")


def _usage(usage: Any) -> Any:
    if usage is None:
        return None
    if isinstance(usage, dict):
        return usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def to_text_completion(result: Any, model: str, echo_prompt: str | None = None) -> dict[str, Any]:
    """A ``text_completion`` object for a chat completion."""
    choices = []
    for choice in result.choices:
        text = choice.message.content or ""
        choices.append({"text": (echo_prompt or "") + text, "index": choice.index, "logprobs": None,
                        "finish_reason": choice.finish_reason})
    return {"id": _id(result.id), "object": "text_completion", "created": result.created, "model": model,
            "choices": choices, "usage": _usage(result.__dict__.get("usage"))}


def text_chunk(chunk: Any, model: str) -> dict[str, Any] | None:
    """The legacy stream chunk for a chat chunk (None when it carries nothing)."""
    choices = []
    for choice in chunk.choices:
        text = choice.delta.__dict__.get("content")
        if text or choice.finish_reason:
            choices.append({"text": text or "", "index": choice.index, "logprobs": None,
                            "finish_reason": choice.finish_reason})
    usage = chunk.__dict__.get("usage")
    if not choices and usage is None:
        return None
    out = {"id": _id(chunk.id), "object": "text_completion", "created": chunk.created, "model": model,
           "choices": choices}
    if usage is not None:
        out["usage"] = _usage(usage)
    return out


class TextChunks:
    """Chat chunks → legacy chunks for one stream; ``echo`` (the prompt) opens the first text."""

    __slots__ = ("model", "echo")

    def __init__(self, model: str, echo: str | None = None) -> None:
        self.model = model
        self.echo = echo

    def convert(self, chunk: Any) -> dict[str, Any] | None:
        out = text_chunk(chunk, self.model)
        if out is not None and self.echo is not None and out["choices"]:
            out["choices"][0]["text"] = self.echo + out["choices"][0]["text"]
            self.echo = None
        return out
