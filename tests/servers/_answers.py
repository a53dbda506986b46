"""What the native-provider fakes answer (shared by the Ollama, Bedrock and Cohere servers).

Each fake reads its own wire format, reduces the request to a :class:`Ask`, and turns the
:class:`Answer` into its own wire format. The rules are deterministic so tests can assert on
exact text:

* tools offered and the last message is not a tool result → one call to the first tool with
  ``DEFAULT_TOOL_ARGUMENTS``;
* the last message is a tool result → ``"The tool said: <result>"``;
* images in the last user message → ``"I see <n> image(s)."``;
* otherwise ``text`` (``DEFAULT_TEXT``);
* thinking asked for → ``THINKING`` before the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from servers.openai_server import DEFAULT_TEXT, DEFAULT_TOOL_ARGUMENTS, split_text

__all__ = ["Ask", "Answer", "answer", "THINKING", "DEFAULT_TEXT", "DEFAULT_TOOL_ARGUMENTS", "split_text"]

THINKING = "The user greets me. I should greet back."


@dataclass
class Ask:
    tools: list[str] = field(default_factory=list)  # names of the offered tools
    tool_result: str | None = None  # text of the last message, if it is a tool result
    images: int = 0
    thinking: bool = False
    max_tokens: int | None = None


@dataclass
class Answer:
    text: str = ""
    thinking: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    truncated: bool = False

    @property
    def pieces(self) -> list[str]:
        return split_text(self.text)[0] if self.text else []

    @property
    def thinking_pieces(self) -> list[str]:
        return split_text(self.thinking)[0] if self.thinking else []


def answer(ask: Ask, text: str = DEFAULT_TEXT) -> Answer:
    """The answer to ``ask`` by the rules above (``max_tokens`` truncates the text)."""
    out = Answer(thinking=THINKING if ask.thinking else "")
    if ask.tools and ask.tool_result is None:
        out.tool_calls = [(ask.tools[0], dict(DEFAULT_TOOL_ARGUMENTS))]
        return out
    if ask.tool_result is not None:
        body = f"The tool said: {ask.tool_result}"
    elif ask.images:
        body = f"I see {ask.images} image(s)."
    else:
        body = text
    pieces, truncated = split_text(body, ask.max_tokens)
    out.text = "".join(pieces)
    out.truncated = truncated
    return out
