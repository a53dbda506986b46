"""OpenAI-shaped response objects.

They read like the official OpenAI SDK's objects (``chunk.choices[0].delta.content``,
``.model_dump()``, ``.model_dump_json()``) and like dicts (``resp["choices"][0]``), but are
plain Python objects: building one does no validation, so a streamed chunk costs about a
microsecond. Unknown fields from the upstream are kept as attributes and serialised as is.

Fields that are absent read as ``None`` (class-level defaults), also with dict access
(``delta["role"]``). Dumps follow pydantic and the ``openai`` SDK: ``model_dump()`` has every key
of OpenAI's schema for that object (absent ones as ``None``, so a content delta dumps as
``{"content": "Hi", "function_call": None, "refusal": None, "role": None, "tool_calls": None}``)
plus any extra field; ``exclude_unset=True`` gives exactly the fields that were received or set
(the wire shape, which is also what the gateway sends); ``exclude_none=True`` drops ``None``s.
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
    "PromptTokensDetails",
    "CompletionTokensDetails",
    "Usage",
    "ModelResponse",
    "ModelResponseStream",
    "ImageResponse",
    "TranscriptionResponse",
    "new_completion_id",
    "to_plain",
    "json_default",
    "content_parts_text",
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


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """:func:`to_plain` without options (``model_dump()``'s default): the common case, fast."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list:
        return [v if type(v) in _SCALARS else _plain(v) for v in value]
    if kind is dict:
        return {k: v if type(v) in _SCALARS else _plain(v) for k, v in value.items()}
    if isinstance(value, OpenAIObject):
        own = value.__dict__
        defaults = _DEFAULTS.get(kind, _MISSING)
        if defaults is _MISSING:
            defaults = _defaults(kind)
        if defaults is not None:
            # as _fields(): the schema's keys first (absent ones as the class's defaults), then the
            # extra ones — one merge, then only the nested values are converted
            out = {**defaults, **own}
            for k, v in out.items():
                if type(v) not in _SCALARS:
                    out[k] = _plain(v)
            return out
        out = {}
        for k in value._schema:
            v = own[k] if k in own else getattr(value, k, None)
            out[k] = v if type(v) in _SCALARS else _plain(v)
        for k, v in own.items():
            if k not in out:
                out[k] = v if type(v) in _SCALARS else _plain(v)
        return out
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


#: Per OpenAIObject class: its schema's keys with their class defaults (None where it has none),
#: or None when a schema key is a descriptor (a property…): then each value is looked up.
_DEFAULTS: dict[type, dict[str, Any] | None] = {}
#: Per class in _DEFAULTS: the schema keys whose class default is not a scalar (e.g. ``choices = []``).
_SHARED_DEFAULTS: dict[type, tuple[str, ...]] = {}


def _defaults(cls: type) -> dict[str, Any] | None:
    defaults: dict[str, Any] | None = {}
    if "__getattr__" in dir(cls):
        defaults = None
    else:
        for k in cls._schema:  # type: ignore[attr-defined]
            for klass in cls.__mro__:
                if k in vars(klass):
                    v = vars(klass)[k]
                    if hasattr(type(v), "__get__"):
                        defaults = None
                    break
            if defaults is None:
                break
            defaults[k] = getattr(cls, k, None)
    _DEFAULTS[cls] = defaults
    _SHARED_DEFAULTS[cls] = tuple(k for k, v in (defaults or {}).items() if type(v) not in _SCALARS)
    return defaults


def plain_fields(cls: type, fields: dict[str, Any]) -> dict[str, Any]:
    """``_fast(cls, fields).model_dump()`` for ``fields`` whose values are plain already
    (scalars, or dicts and lists made by the caller, which are used as they are): the schema's
    keys with the class's defaults, then ``fields``, without walking the values."""
    defaults = _DEFAULTS.get(cls, _MISSING)
    if defaults is _MISSING:
        defaults = _defaults(cls)
    if defaults is None:
        return _plain(_fast(cls, fields))
    out = {**defaults, **fields}
    for k in _SHARED_DEFAULTS[cls]:  # a default list or dict is copied, as _plain copies it
        if k not in fields:
            out[k] = _plain(out[k])
    return out


def to_plain(value: Any, exclude_none: bool = False, exclude_unset: bool = False) -> Any:
    """Recursively turn our objects (and lists/dicts of them) into plain dicts and lists."""
    if not exclude_none and not exclude_unset:
        return _plain(value)
    if isinstance(value, OpenAIObject):
        return value.model_dump(exclude_none=exclude_none, exclude_unset=exclude_unset)
    if isinstance(value, list):
        return [to_plain(v, exclude_none, exclude_unset) for v in value]
    if isinstance(value, dict):
        return {
            k: to_plain(v, exclude_none, exclude_unset)
            for k, v in value.items()
            if not (exclude_none and v is None)
        }
    return value


_TEXT_PARTS = frozenset({"text", "output_text", "input_text"})
_REASONING_PARTS = frozenset({"thinking", "reasoning", "reasoning_text"})


def content_parts_text(content: Any) -> tuple[str, str]:
    """``content`` sent as a list of typed parts → (text, reasoning).

    Mistral's Magistral models (and others) answer with ``[{"type": "thinking", "thinking":
    [{"type": "text", "text": …}]}, {"type": "text", "text": …}]``: text parts make the content,
    thinking/reasoning parts (their text possibly nested in parts again) the reasoning. Parts of
    other types (images, references…) carry no text and are skipped. A value that is neither
    text, a part nor a list of parts raises ``ValueError``.
    """
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    if isinstance(content, dict):
        content = [content]
    elif not isinstance(content, list):
        raise ValueError(f"expected text or a list of content parts, got {type(content).__name__}")
    text: list[str] = []
    reasoning: list[str] = []
    for part in content:
        if isinstance(part, str):
            text.append(part)
            continue
        if not isinstance(part, dict):
            raise ValueError(f"expected a content part (an object), got {type(part).__name__}")
        kind = part.get("type")
        if kind in _REASONING_PARTS:
            inner = part.get(kind)
            if inner is None:
                inner = part.get("text") if part.get("text") is not None else part.get("summary")
            reasoning.append("".join(content_parts_text(inner)))
        elif kind in _TEXT_PARTS or (kind is None and "text" in part):
            inner = part.get("text")
            if isinstance(inner, str):
                text.append(inner)
            elif inner is not None:
                raise ValueError(f"a text part's text must be a string, got {type(inner).__name__}")
    return "".join(text), "".join(reasoning)


class OpenAIObject:
    """Base: attribute and dict access over ``__dict__``; unknown fields are kept.

    Subclasses list nested fields in ``_nested`` (field name → class) so that building from
    plain dicts gives objects all the way down, and the keys of OpenAI's schema for the object
    in ``_schema`` (the keys the ``openai`` SDK's ``model_dump()`` always has; taken from openai 3.x).
    """

    __slots__ = ("__dict__", "_hp")
    _nested: dict[str, type["OpenAIObject"]] = {}
    _nested_lists: dict[str, type["OpenAIObject"]] = {}
    _schema: tuple[str, ...] = ()

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
            if key in self._schema:
                return None
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__ or key in self._schema

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, _MISSING)
        return default if value is _MISSING or value is None else value

    def _fields(self) -> dict[str, Any]:
        """The schema's keys (absent ones from class defaults) followed by the extra fields."""
        own = self.__dict__
        schema = self._schema
        if not schema:
            return own
        fields = {k: own[k] if k in own else getattr(self, k, None) for k in schema}
        for k, v in own.items():
            if k not in fields:
                fields[k] = v
        return fields

    def keys(self):
        return self._fields().keys()

    def values(self):
        return self._fields().values()

    def items(self):
        return self._fields().items()

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        # pydantic semantics: ``dict(obj)`` gives the top-level fields.
        return iter(self._fields().items())

    # serialisation -------------------------------------------------------------------
    def model_dump(
        self,
        *,
        exclude_none: bool = False,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        include: Any = None,
        exclude: Any = None,
        **_: Any,
    ) -> dict[str, Any]:
        """A plain ``dict`` of the object, recursively, as pydantic's ``model_dump``:
        every schema key (absent ones as ``None``) unless ``exclude_unset``; ``None`` values
        dropped with ``exclude_none``; ``include``/``exclude`` select top-level keys."""
        if exclude_defaults:
            exclude_unset = True
        if not (exclude_none or exclude_unset or include or exclude):
            return _plain(self)
        fields = self.__dict__ if exclude_unset else self._fields()
        out = {
            k: to_plain(v, exclude_none, exclude_unset)
            for k, v in fields.items()
            if not (exclude_none and v is None)
        }
        if include is not None:
            out = {k: v for k, v in out.items() if k in include}
        if exclude is not None:
            out = {k: v for k, v in out.items() if k not in exclude}
        return out

    def model_dump_json(self, *, indent: int | None = None, **kwargs: Any) -> str:
        """The object as a JSON string (same keys as :meth:`model_dump` with these options)."""
        option = orjson.OPT_INDENT_2 if indent else 0
        if kwargs.get("exclude_unset") and len(kwargs) == 1:
            return orjson.dumps(self, default=json_default, option=option).decode()
        return orjson.dumps(self.model_dump(**kwargs), option=option).decode()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def dict(self, **kwargs: Any) -> dict[str, Any]:  # pydantic v1 name
        return self.model_dump(**kwargs)

    def json(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """LiteLLM compatibility: ``.json()`` returns the dict (use ``model_dump_json`` for text)."""
        return self.model_dump(**kwargs)

    # comparison and display ------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, OpenAIObject):
            return type(self) is type(other) and self.model_dump() == other.model_dump()
        if isinstance(other, dict):  # the full dump or the fields as received
            return self.model_dump() == other or self.model_dump(exclude_unset=True) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({inner})"


class Function(OpenAIObject):
    """``function`` of a tool call: ``name`` and JSON ``arguments`` text."""

    __slots__ = ()
    _schema = ("arguments", "name")
    name: str | None = None
    arguments: str | None = None


FunctionCall = Function


class ChatCompletionMessageToolCall(OpenAIObject):
    __slots__ = ()
    _nested = {"function": Function}
    _schema = ("id", "function", "type")
    id: str | None = None
    type: str = "function"
    function: Function | None = None


class ChatCompletionDeltaToolCall(OpenAIObject):
    __slots__ = ()
    _nested = {"function": Function}
    _schema = ("index", "id", "function", "type")
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: Function | None = None


class Message(OpenAIObject):
    """The assistant message of a non-streamed choice."""

    __slots__ = ()
    _nested = {"function_call": Function}
    _nested_lists = {"tool_calls": ChatCompletionMessageToolCall}
    _schema = ("content", "refusal", "role", "annotations", "audio", "function_call", "tool_calls")
    content: str | None = None
    role: str = "assistant"
    tool_calls: list[ChatCompletionMessageToolCall] | None = None
    function_call: Function | None = None
    reasoning_content: str | None = None
    thinking_blocks: list[dict] | None = None
    refusal: str | None = None
    #: LiteLLM's extras of a provider (citations…); not dumped unless set.
    provider_specific_fields: dict[str, Any] | None = None

    def __init__(self, content: str | None = None, role: str = "assistant", **fields: Any) -> None:
        fields["content"] = content
        fields["role"] = role
        super().__init__(**fields)


class Delta(OpenAIObject):
    """The ``delta`` of a streamed choice; only the fields that are present are stored."""

    __slots__ = ()
    _nested = {"function_call": Function}
    _nested_lists = {"tool_calls": ChatCompletionDeltaToolCall}
    _schema = ("audio", "content", "function_call", "refusal", "role", "tool_calls")
    content: str | None = None
    role: str | None = None
    tool_calls: list[ChatCompletionDeltaToolCall] | None = None
    function_call: Function | None = None
    reasoning_content: str | None = None
    thinking_blocks: list[dict] | None = None
    refusal: str | None = None
    #: LiteLLM's extras of a provider (citations…); not dumped unless set.
    provider_specific_fields: dict[str, Any] | None = None


#: Finish reasons other servers send, mapped onto OpenAI's (LiteLLM's map_finish_reason).
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "function_call",
    # values other servers send for the same meanings
    "eos": "stop",
    "eos_token": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_length": "length",
    "tool_use": "tool_calls",
    "tool_call": "tool_calls",
    "safety": "content_filter",
    "refusal": "content_filter",
}
_OPENAI_FINISH = frozenset(("stop", "length", "tool_calls", "content_filter", "function_call"))


def map_finish_reason(reason: Any) -> Any:
    """A provider's finish reason as OpenAI's value (``end_turn`` → ``stop``, ``max_tokens`` →
    ``length``, ``tool_use`` → ``tool_calls``…); unknown values are returned as they are."""
    if reason in _OPENAI_FINISH or not isinstance(reason, str):
        return reason
    return FINISH_REASONS.get(reason.lower(), reason)


class Choices(OpenAIObject):
    __slots__ = ()
    _nested = {"message": Message}
    _schema = ("finish_reason", "index", "logprobs", "message")
    index: int = 0
    message: Message | None = None
    finish_reason: str | None = None
    logprobs: Any = None

    def __init__(self, **fields: Any) -> None:
        fields.setdefault("index", 0)
        reason = fields.get("finish_reason")
        # LiteLLM's Choices: a provider's finish reason as OpenAI's, "stop" when none is given
        fields["finish_reason"] = "stop" if reason is None else map_finish_reason(reason)
        if fields.get("message") is None:
            fields["message"] = Message()
        super().__init__(**fields)


class StreamingChoices(OpenAIObject):
    __slots__ = ()
    _nested = {"delta": Delta}
    _schema = ("delta", "finish_reason", "index", "logprobs")
    index: int = 0
    delta: Delta | None = None
    finish_reason: str | None = None
    logprobs: Any = None

    def __init__(self, **fields: Any) -> None:
        fields.setdefault("index", 0)
        fields["finish_reason"] = map_finish_reason(fields.get("finish_reason"))
        if fields.get("delta") is None:
            fields["delta"] = Delta()
        super().__init__(**fields)


class TokensDetails(OpenAIObject):
    """``prompt_tokens_details`` / ``completion_tokens_details`` (cached, reasoning tokens…)."""

    __slots__ = ()
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class PromptTokensDetails(TokensDetails):
    __slots__ = ()
    _schema = ("audio_tokens", "cache_write_tokens", "cached_tokens", "image_tokens", "text_tokens")


class CompletionTokensDetails(TokensDetails):
    __slots__ = ()
    _schema = ("accepted_prediction_tokens", "audio_tokens", "reasoning_tokens", "rejected_prediction_tokens",
               "text_tokens")


class Usage(OpenAIObject):
    __slots__ = ()
    _nested = {"prompt_tokens_details": PromptTokensDetails, "completion_tokens_details": CompletionTokensDetails}
    _schema = ("completion_tokens", "prompt_tokens", "total_tokens", "completion_tokens_details",
               "prompt_tokens_details")
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
        if fields:
            # LiteLLM's keywords: reasoning_tokens → completion_tokens_details; Anthropic's
            # cache_read_input_tokens also as prompt_tokens_details.cached_tokens
            reasoning = fields.pop("reasoning_tokens", None)
            if reasoning and fields.get("completion_tokens_details") is None:
                fields["completion_tokens_details"] = CompletionTokensDetails(reasoning_tokens=reasoning)
            read = fields.get("cache_read_input_tokens")
            if read and fields.get("prompt_tokens_details") is None:
                fields["prompt_tokens_details"] = PromptTokensDetails(cached_tokens=read)
        super().__init__(**fields)


class ModelResponse(OpenAIObject):
    """A ``chat.completion``; with ``stream=True`` a ``chat.completion.chunk``.

    ``ModelResponse(**chunk_dict, stream=True)`` returns a :class:`ModelResponseStream` (a
    subclass, so ``isinstance(chunk, ModelResponse)`` holds for chunks too).
    ``_response_ms``: milliseconds the call took (set on a response from a provider, as LiteLLM's).
    """

    __slots__ = ("_response_ms",)
    _nested = {"usage": Usage}
    _schema = ("id", "choices", "created", "model", "object", "metadata", "moderation", "service_tier",
               "system_fingerprint", "usage")
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
        hidden = fields.pop("hidden_params", None)  # LiteLLM's constructor keywords
        if hidden:
            self._hidden_params = dict(hidden)
        response_ms = fields.pop("response_ms", None)
        if response_ms is not None:
            self._response_ms = response_ms
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
    _schema = ("id", "choices", "created", "model", "object", "moderation", "obfuscation", "service_tier",
               "system_fingerprint", "usage")
    _object = "chat.completion.chunk"
    object: str = "chat.completion.chunk"


class ImageResponse(OpenAIObject):
    """OpenAI's image-generation answer (``created``, ``data``), LiteLLM's ``ImageResponse`` (the
    type only: llmrelay does not generate images)."""

    __slots__ = ()
    _schema = ("created", "data", "usage")

    def __init__(self, **fields: Any) -> None:
        fields.setdefault("created", int(time.time()))
        fields.setdefault("data", [])
        super().__init__(**fields)


class TranscriptionResponse(OpenAIObject):
    """OpenAI's transcription answer (``text``), LiteLLM's ``TranscriptionResponse`` (the type
    only: llmrelay does not transcribe audio)."""

    __slots__ = ()
    _schema = ("text",)
    text: str | None = None


def _fast(cls: type, fields: dict) -> Any:
    """Build an object around ``fields`` without copying or validating (hot path only)."""
    obj = object.__new__(cls)
    obj.__dict__ = fields
    return obj
