"""OpenAI-shaped response objects.

They read like the official OpenAI SDK's objects (``chunk.choices[0].delta.content``,
``.model_dump()``, ``.model_dump_json()``) and like dicts (``resp["choices"][0]``), but are
plain Python objects: building one does no validation, so a streamed chunk costs about a
microsecond. Unknown fields from the upstream are kept as attributes and serialised as is.

Fields that are absent read as ``None`` (class-level defaults) and are left out of dumps, so a
content delta dumps as ``{"content": "Hi"}`` exactly as OpenAI sends it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterator

import orjson

__all__ = [
    "OpenAIObject",
    "Function",
    "FunctionCall",
    "ChatCompletionMessageToolCall",
    "ChatCompletionDeltaToolCall",
    "Message",
    "Delta",
    "Choices",
    "StreamingChoices",
    "TokensDetails",
    "Usage",
    "ModelResponse",
    "ModelResponseStream",
    "new_completion_id",
    "to_plain",
    "json_default",
]

_MISSING = object()


def new_completion_id() -> str:
    """A fresh ``chatcmpl-…`` id."""
    return "chatcmpl-" + uuid.uuid4().hex


def json_default(obj: Any) -> Any:
    """orjson ``default=`` hook: our objects serialise as their public attributes
    (``orjson.dumps(chunk, default=json_default)``, no intermediate dict tree)."""
    if isinstance(obj, OpenAIObject):
        return obj.__dict__
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def to_plain(value: Any, exclude_none: bool = False) -> Any:
    """Recursively turn our objects (and lists/dicts of them) into plain dicts and lists."""
    if isinstance(value, OpenAIObject):
        return value.model_dump(exclude_none=exclude_none)
    if isinstance(value, list):
        return [to_plain(v, exclude_none) for v in value]
    if isinstance(value, dict):
        return {
            k: to_plain(v, exclude_none)
            for k, v in value.items()
            if not (exclude_none and v is None)
        }
    return value


class OpenAIObject:
    """Base: attribute and dict access over ``__dict__``; unknown fields are kept.

    Subclasses list nested fields in ``_nested`` (field name → class) so that building from
    plain dicts gives objects all the way down.
    """

    __slots__ = ("__dict__", "_hp")
    _nested: dict[str, type["OpenAIObject"]] = {}
    _nested_lists: dict[str, type["OpenAIObject"]] = {}

    def __init__(self, **fields: Any) -> None:
        for name, cls in self._nested.items():
            value = fields.get(name)
            if type(value) is dict:
                fields[name] = cls(**value)
        for name, cls in self._nested_lists.items():
            value = fields.get(name)
            if type(value) is list:
                fields[name] = [cls(**v) if type(v) is dict else v for v in value]
        self.__dict__.update(fields)

    @property
    def _hidden_params(self) -> dict[str, Any]:
        """Facts about the call that are not part of the OpenAI shape (provider, api_base…)."""
        try:
            return self._hp
        except AttributeError:
            self._hp = {}
            return self._hp

    @_hidden_params.setter
    def _hidden_params(self, value: dict[str, Any]) -> None:
        self._hp = value

    # dict-style access -------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key, _MISSING) if isinstance(key, str) else _MISSING
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, _MISSING)
        return default if value is _MISSING or value is None else value

    def keys(self):
        return self.__dict__.keys()

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        # pydantic semantics: ``dict(obj)`` gives the top-level fields.
        return iter(self.__dict__.items())

    # serialisation -------------------------------------------------------------------
    def model_dump(self, exclude_none: bool = False, **_: Any) -> dict[str, Any]:
        """A plain ``dict`` of the object, recursively (like pydantic's ``model_dump``)."""
        return {
            k: to_plain(v, exclude_none)
            for k, v in self.__dict__.items()
            if not (exclude_none and v is None)
        }

    def model_dump_json(self, exclude_none: bool = False, **_: Any) -> str:
        """The object as a JSON string."""
        if exclude_none:
            return orjson.dumps(self.model_dump(exclude_none=True)).decode()
        return orjson.dumps(self, default=json_default).decode()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def dict(self, **kwargs: Any) -> dict[str, Any]:  # pydantic v1 name
        return self.model_dump(**kwargs)

    def json(self, **kwargs: Any) -> dict[str, Any]:
        """LiteLLM compatibility: ``.json()`` returns the dict (use ``model_dump_json`` for text)."""
        return self.model_dump(**kwargs)

    # comparison and display ------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, OpenAIObject):
            return type(self) is type(other) and self.model_dump() == other.model_dump()
        if isinstance(other, dict):
            return self.model_dump() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({inner})"


class Function(OpenAIObject):
    """``function`` of a tool call: ``name`` and JSON ``arguments`` text."""

    __slots__ = ()
    name: str | None = None
    arguments: str | None = None


FunctionCall = Function


class ChatCompletionMessageToolCall(OpenAIObject):
    __slots__ = ()
    _nested = {"function": Function}
    id: str | None = None
    type: str = "function"
    function: Function | None = None


class ChatCompletionDeltaToolCall(OpenAIObject):
    __slots__ = ()
    _nested = {"function": Function}
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: Function | None = None


class Message(OpenAIObject):
    """The assistant message of a non-streamed choice."""

    __slots__ = ()
    _nested = {"function_call": Function}
    _nested_lists = {"tool_calls": ChatCompletionMessageToolCall}
    content: str | None = None
    role: str = "assistant"
    tool_calls: list[ChatCompletionMessageToolCall] | None = None
    function_call: Function | None = None
    reasoning_content: str | None = None
    thinking_blocks: list[dict] | None = None
    refusal: str | None = None

    def __init__(self, content: str | None = None, role: str = "assistant", **fields: Any) -> None:
        fields["content"] = content
        fields["role"] = role
        super().__init__(**fields)


class Delta(OpenAIObject):
    """The ``delta`` of a streamed choice; only the fields that are present are stored."""

    __slots__ = ()
    _nested = {"function_call": Function}
    _nested_lists = {"tool_calls": ChatCompletionDeltaToolCall}
    content: str | None = None
    role: str | None = None
    tool_calls: list[ChatCompletionDeltaToolCall] | None = None
    function_call: Function | None = None
    reasoning_content: str | None = None
    thinking_blocks: list[dict] | None = None
    refusal: str | None = None


class Choices(OpenAIObject):
    __slots__ = ()
    _nested = {"message": Message}
    index: int = 0
    message: Message | None = None
    finish_reason: str | None = None
    logprobs: Any = None

    def __init__(self, **fields: Any) -> None:
        fields.setdefault("index", 0)
        fields.setdefault("finish_reason", None)
        if fields.get("message") is None:
            fields["message"] = Message()
        super().__init__(**fields)


class StreamingChoices(OpenAIObject):
    __slots__ = ()
    _nested = {"delta": Delta}
    index: int = 0
    delta: Delta | None = None
    finish_reason: str | None = None
    logprobs: Any = None

    def __init__(self, **fields: Any) -> None:
        fields.setdefault("index", 0)
        fields.setdefault("finish_reason", None)
        if fields.get("delta") is None:
            fields["delta"] = Delta()
        super().__init__(**fields)


class TokensDetails(OpenAIObject):
    """``prompt_tokens_details`` / ``completion_tokens_details`` (cached, reasoning tokens…)."""

    __slots__ = ()
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None


class Usage(OpenAIObject):
    __slots__ = ()
    _nested = {"prompt_tokens_details": TokensDetails, "completion_tokens_details": TokensDetails}
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: TokensDetails | None = None
    completion_tokens_details: TokensDetails | None = None

    def __init__(
        self,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        total_tokens: int | None = None,
        **fields: Any,
    ) -> None:
        prompt_tokens = prompt_tokens or 0
        completion_tokens = completion_tokens or 0
        fields["prompt_tokens"] = prompt_tokens
        fields["completion_tokens"] = completion_tokens
        fields["total_tokens"] = (
            total_tokens if total_tokens is not None else prompt_tokens + completion_tokens
        )
        super().__init__(**fields)


class ModelResponse(OpenAIObject):
    """A ``chat.completion``; with ``stream=True`` a ``chat.completion.chunk``.

    ``ModelResponse(**chunk_dict, stream=True)`` returns a :class:`ModelResponseStream` (a
    subclass, so ``isinstance(chunk, ModelResponse)`` holds for chunks too).
    """

    __slots__ = ()
    _nested = {"usage": Usage}
    _choice_class: type[OpenAIObject] = Choices
    _object = "chat.completion"
    id: str | None = None
    object: str = "chat.completion"
    created: int = 0
    model: str | None = None
    choices: list = []
    usage: Usage | None = None
    system_fingerprint: str | None = None

    def __new__(cls, *args: Any, stream: bool = False, **fields: Any) -> "ModelResponse":
        if stream and cls is ModelResponse:
            cls = ModelResponseStream
        return object.__new__(cls)

    def __init__(self, stream: bool = False, **fields: Any) -> None:
        fields.setdefault("id", None)
        if not fields["id"]:
            fields["id"] = new_completion_id()
        fields["object"] = fields.get("object") or self._object
        if not fields.get("created"):
            fields["created"] = int(time.time())
        fields.setdefault("model", None)
        choices = fields.get("choices")
        if choices is None:
            choices = [] if self._choice_class is StreamingChoices else [{}]
        cls = self._choice_class
        fields["choices"] = [cls(**c) if type(c) is dict else c for c in choices]
        super().__init__(**fields)


class ModelResponseStream(ModelResponse):
    """One streamed ``chat.completion.chunk``."""

    __slots__ = ()
    _choice_class = StreamingChoices
    _object = "chat.completion.chunk"
    object: str = "chat.completion.chunk"


def _fast(cls: type, fields: dict) -> Any:
    """Build an object around ``fields`` without copying or validating (hot path only)."""
    obj = object.__new__(cls)
    obj.__dict__ = fields
    return obj
