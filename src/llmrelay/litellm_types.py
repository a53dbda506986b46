"""The type names code imports from ``litellm.types.utils`` and ``litellm.types.llms.openai``
beyond the response objects of :mod:`llmrelay.types`: enums (``CallTypes``, ``LlmProviders``),
the token-details wrappers, and the ``TypedDict`` shapes of messages, tools and logging payloads.

They are for annotations and ``isinstance``/equality checks in code written against LiteLLM;
only the standard library is imported (``install_as_litellm`` resolves these names here).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Dict, List, Literal, Optional, TypedDict, Union

from .types import CompletionTokensDetails, OpenAIObject, PromptTokensDetails

__all__ = [
    "CallTypes",
    "LlmProviders",
    "PromptTokensDetailsWrapper",
    "CompletionTokensDetailsWrapper",
    "TopLogprob",
    "ChatCompletionTokenLogprob",
    "ChoiceLogprobs",
    "Embedding",
    "TextChoices",
    "GenericStreamingChunk",
    "StandardLoggingPayload",
    "StandardLoggingMetadata",
    "StandardLoggingHiddenParams",
    "StandardLoggingModelInformation",
    "HiddenParams",
    "ModelInfo",
    "ChatCompletionUserMessage",
    "ChatCompletionAssistantMessage",
    "ChatCompletionSystemMessage",
    "ChatCompletionToolMessage",
    "ChatCompletionFunctionMessage",
    "ChatCompletionDeveloperMessage",
    "AllMessageValues",
    "OpenAIMessageContent",
    "ChatCompletionToolParam",
    "ChatCompletionToolParamFunctionChunk",
    "ChatCompletionToolCallChunk",
    "ChatCompletionToolCallFunctionChunk",
    "ChatCompletionCachedContent",
    "ChatCompletionThinkingBlock",
    "ChatCompletionRedactedThinkingBlock",
    "ChatCompletionUsageBlock",
    "ChatCompletionResponseMessage",
    "ChatCompletionTextObject",
    "ChatCompletionImageObject",
    "ChatCompletionImageUrlObject",
    "OpenAIChatCompletionFinishReason",
]


class CallTypes(str, Enum):
    """LiteLLM's call types (the ``call_type`` callbacks and the cache see)."""

    completion = "completion"
    acompletion = "acompletion"
    text_completion = "text_completion"
    atext_completion = "atext_completion"
    embedding = "embedding"
    aembedding = "aembedding"
    image_generation = "image_generation"
    aimage_generation = "aimage_generation"
    moderation = "moderation"
    amoderation = "amoderation"
    transcription = "transcription"
    atranscription = "atranscription"
    speech = "speech"
    aspeech = "aspeech"
    rerank = "rerank"
    arerank = "arerank"
    responses = "responses"
    aresponses = "aresponses"
    pass_through = "pass_through_endpoint"
    anthropic_messages = "anthropic_messages"


class LlmProviders(str, Enum):
    """Provider prefixes (LiteLLM's enum; the values are the ``provider/`` prefixes)."""

    OPENAI = "openai"
    TEXT_COMPLETION_OPENAI = "text-completion-openai"
    CUSTOM_OPENAI = "custom_openai"
    OPENAI_LIKE = "openai_like"
    AZURE = "azure"
    AZURE_TEXT = "azure_text"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    VERTEX_AI = "vertex_ai"
    BEDROCK = "bedrock"
    COHERE = "cohere"
    COHERE_CHAT = "cohere_chat"
    GROQ = "groq"
    MISTRAL = "mistral"
    DEEPSEEK = "deepseek"
    XAI = "xai"
    PERPLEXITY = "perplexity"
    TOGETHER_AI = "together_ai"
    FIREWORKS_AI = "fireworks_ai"
    DEEPINFRA = "deepinfra"
    CEREBRAS = "cerebras"
    OPENROUTER = "openrouter"
    OLLAMA = "ollama"
    OLLAMA_CHAT = "ollama_chat"
    HOSTED_VLLM = "hosted_vllm"
    VLLM = "vllm"
    LM_STUDIO = "lm_studio"
    HUGGINGFACE = "huggingface"
    NVIDIA_NIM = "nvidia_nim"
    MOONSHOT = "moonshot"
    DASHSCOPE = "dashscope"
    CLOUDFLARE = "cloudflare"
    GITHUB = "github"
    SAMBANOVA = "sambanova"
    NEBIUS = "nebius"
    NOVITA = "novita"
    MINIMAX = "minimax"
    LITELLM_PROXY = "litellm_proxy"
    DATABRICKS = "databricks"
    LLAMAFILE = "llamafile"
    AZURE_AI = "azure_ai"
    CODESTRAL = "codestral"
    HYPERBOLIC = "hyperbolic"
    LAMBDA_AI = "lambda_ai"
    META_LLAMA = "meta_llama"
    NSCALE = "nscale"
    FRIENDLIAI = "friendliai"
    FEATHERLESS_AI = "featherless_ai"
    VOLCENGINE = "volcengine"


class PromptTokensDetailsWrapper(PromptTokensDetails):
    """LiteLLM's ``prompt_tokens_details`` class (OpenAI's fields plus ``cache_creation_tokens``,
    ``text_tokens``, ``image_tokens``)."""

    __slots__ = ()
    cache_creation_tokens: Optional[int] = None
    text_tokens: Optional[int] = None
    image_tokens: Optional[int] = None


class CompletionTokensDetailsWrapper(CompletionTokensDetails):
    """LiteLLM's ``completion_tokens_details`` class (OpenAI's fields plus ``text_tokens``)."""

    __slots__ = ()
    text_tokens: Optional[int] = None


class TopLogprob(OpenAIObject):
    __slots__ = ()
    _schema = ("token", "bytes", "logprob")
    token: Optional[str] = None
    bytes: Optional[List[int]] = None
    logprob: Optional[float] = None


class ChatCompletionTokenLogprob(OpenAIObject):
    __slots__ = ()
    _nested_lists = {"top_logprobs": TopLogprob}
    _schema = ("token", "bytes", "logprob", "top_logprobs")
    token: Optional[str] = None
    bytes: Optional[List[int]] = None
    logprob: Optional[float] = None
    top_logprobs: Optional[List[TopLogprob]] = None


class ChoiceLogprobs(OpenAIObject):
    __slots__ = ()
    _nested_lists = {"content": ChatCompletionTokenLogprob}
    _schema = ("content",)
    content: Optional[List[ChatCompletionTokenLogprob]] = None


def __getattr__(name: str) -> Any:  # the classes other modules define, without importing them here
    if name == "Embedding":
        from .embeddings.base import Embedding

        return Embedding
    if name == "TextChoices":
        from .completions_api import TextChoices

        return TextChoices
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class GenericStreamingChunk(TypedDict, total=False):
    text: str
    tool_use: Optional[Dict[str, Any]]
    is_finished: bool
    finish_reason: str
    usage: Optional[Dict[str, Any]]
    index: int
    provider_specific_fields: Optional[Dict[str, Any]]


class StandardLoggingMetadata(TypedDict, total=False):
    user_api_key_hash: Optional[str]
    user_api_key_alias: Optional[str]
    user_api_key_org_id: Optional[str]
    user_api_key_team_id: Optional[str]
    user_api_key_user_id: Optional[str]
    user_api_key_user_email: Optional[str]
    user_api_key_team_alias: Optional[str]
    user_api_key_end_user_id: Optional[str]
    spend_logs_metadata: Optional[Dict[str, Any]]
    requester_ip_address: Optional[str]
    requester_metadata: Optional[Dict[str, Any]]


class StandardLoggingHiddenParams(TypedDict, total=False):
    model_id: Optional[str]
    cache_key: Optional[str]
    api_base: Optional[str]
    response_cost: Optional[str]
    additional_headers: Optional[Dict[str, Any]]
    litellm_overhead_time_ms: Optional[float]


class StandardLoggingModelInformation(TypedDict, total=False):
    model_map_key: str
    model_map_value: Optional[Dict[str, Any]]


class StandardLoggingPayload(TypedDict, total=False):
    """The ``kwargs["standard_logging_object"]`` callbacks receive."""

    id: str
    trace_id: str
    call_type: str
    stream: Optional[bool]
    response_cost: float
    response_cost_failure_debug_info: Optional[Dict[str, Any]]
    status: Literal["success", "failure"]
    custom_llm_provider: Optional[str]
    total_tokens: int
    prompt_tokens: int
    completion_tokens: int
    startTime: float
    endTime: float
    completionStartTime: float
    response_time: float
    model_map_information: StandardLoggingModelInformation
    model: str
    model_id: Optional[str]
    model_group: Optional[str]
    api_base: str
    metadata: StandardLoggingMetadata
    cache_hit: Optional[bool]
    cache_key: Optional[str]
    saved_cache_cost: float
    request_tags: List[str]
    end_user: Optional[str]
    requester_ip_address: Optional[str]
    messages: Optional[Union[str, List[Any], Dict[str, Any]]]
    response: Optional[Union[str, List[Any], Dict[str, Any]]]
    error_str: Optional[str]
    error_information: Optional[Dict[str, Any]]
    model_parameters: Dict[str, Any]
    hidden_params: StandardLoggingHiddenParams


class HiddenParams(TypedDict, total=False):
    """``response._hidden_params``."""

    model_id: Optional[str]
    api_base: Optional[str]
    custom_llm_provider: Optional[str]
    response_cost: Optional[float]
    additional_headers: Optional[Dict[str, Any]]
    cache_hit: Optional[bool]
    cache_key: Optional[str]


class ModelInfo(TypedDict, total=False):
    """What :func:`llmrelay.get_model_info` returns."""

    key: str
    max_tokens: Optional[int]
    max_input_tokens: Optional[int]
    max_output_tokens: Optional[int]
    input_cost_per_token: float
    output_cost_per_token: float
    cache_read_input_token_cost: Optional[float]
    cache_creation_input_token_cost: Optional[float]
    litellm_provider: str
    mode: str
    supported_openai_params: Optional[List[str]]
    supports_system_messages: Optional[bool]
    supports_function_calling: Optional[bool]
    supports_vision: Optional[bool]
    supports_response_schema: Optional[bool]
    supports_prompt_caching: Optional[bool]


# ---------------------------------------------------------------- litellm.types.llms.openai
class ChatCompletionTextObject(TypedDict):
    type: Literal["text"]
    text: str


class ChatCompletionImageUrlObject(TypedDict, total=False):
    url: str
    detail: str


class ChatCompletionImageObject(TypedDict):
    type: Literal["image_url"]
    image_url: Union[str, ChatCompletionImageUrlObject]


OpenAIMessageContent = Union[str, List[Dict[str, Any]]]


class ChatCompletionCachedContent(TypedDict):
    type: Literal["ephemeral"]


class ChatCompletionToolCallFunctionChunk(TypedDict, total=False):
    name: Optional[str]
    arguments: str


class ChatCompletionToolCallChunk(TypedDict, total=False):
    id: Optional[str]
    type: Literal["function"]
    function: ChatCompletionToolCallFunctionChunk
    index: int


class ChatCompletionToolParamFunctionChunk(TypedDict, total=False):
    name: str
    description: str
    parameters: Dict[str, Any]
    strict: bool


class ChatCompletionToolParam(TypedDict, total=False):
    type: Literal["function"]
    function: ChatCompletionToolParamFunctionChunk
    cache_control: ChatCompletionCachedContent


class ChatCompletionUserMessage(TypedDict, total=False):
    role: Literal["user"]
    content: OpenAIMessageContent
    cache_control: ChatCompletionCachedContent


class ChatCompletionAssistantMessage(TypedDict, total=False):
    role: Literal["assistant"]
    content: Optional[OpenAIMessageContent]
    name: Optional[str]
    tool_calls: Optional[List[ChatCompletionToolCallChunk]]
    function_call: Optional[ChatCompletionToolCallFunctionChunk]
    reasoning_content: Optional[str]
    thinking_blocks: Optional[List[Dict[str, Any]]]
    cache_control: ChatCompletionCachedContent


class ChatCompletionSystemMessage(TypedDict, total=False):
    role: Literal["system"]
    content: OpenAIMessageContent
    name: str
    cache_control: ChatCompletionCachedContent


class ChatCompletionDeveloperMessage(TypedDict, total=False):
    role: Literal["developer"]
    content: OpenAIMessageContent
    name: str


class ChatCompletionToolMessage(TypedDict, total=False):
    role: Literal["tool"]
    content: OpenAIMessageContent
    tool_call_id: str


class ChatCompletionFunctionMessage(TypedDict, total=False):
    role: Literal["function"]
    content: Optional[OpenAIMessageContent]
    name: str
    tool_call_id: Optional[str]


AllMessageValues = Union[
    ChatCompletionUserMessage,
    ChatCompletionAssistantMessage,
    ChatCompletionToolMessage,
    ChatCompletionSystemMessage,
    ChatCompletionFunctionMessage,
    ChatCompletionDeveloperMessage,
]


class ChatCompletionThinkingBlock(TypedDict, total=False):
    type: Literal["thinking"]
    thinking: str
    signature: str
    cache_control: Optional[Dict[str, Any]]


class ChatCompletionRedactedThinkingBlock(TypedDict, total=False):
    type: Literal["redacted_thinking"]
    data: str
    cache_control: Optional[Dict[str, Any]]


class ChatCompletionUsageBlock(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionResponseMessage(TypedDict, total=False):
    content: Optional[str]
    tool_calls: Optional[List[ChatCompletionToolCallChunk]]
    role: Literal["assistant"]
    function_call: Optional[ChatCompletionToolCallFunctionChunk]
    reasoning_content: Optional[str]
    thinking_blocks: Optional[List[Dict[str, Any]]]


OpenAIChatCompletionFinishReason = Literal["stop", "content_filter", "function_call", "tool_calls", "length"]
