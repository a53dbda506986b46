"""``azure_ai/``: models served by Azure AI Foundry (the Azure AI model inference API: Mistral,
Llama, DeepSeek, Phi, Cohere… deployed as serverless or Foundry endpoints).

The wire format is OpenAI's chat completions; what differs is the URL and the key's header
(LiteLLM's conventions, the same ``AZURE_AI_API_BASE`` / ``AZURE_AI_API_KEY`` variables):

* a Foundry resource (``https://<resource>.services.ai.azure.com``) is called at
  ``…/models/chat/completions``; any other endpoint (a serverless
  ``https://<name>.<region>.models.ai.azure.com``) at ``{api_base}/chat/completions``;
* ``api-version`` is sent when the deployment names one (``api_version``, or already in the
  api_base's query);
* the key goes in the ``api-key`` header to ``*.services.ai.azure.com`` and
  ``*.openai.azure.com`` hosts, as ``Authorization: Bearer`` to the others.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import settings
from .base import Call, HttpRequest
from .common import first_env, post_json, require_key
from .openai_compatible import Host, HostProvider

__all__ = ["AzureAIProvider", "chat_url", "uses_api_key_header"]

HOST = Host(None, ("AZURE_AI_API_KEY",), ("AZURE_AI_API_BASE",), True)
_API_KEY_HOSTS = (".services.ai.azure.com", ".openai.azure.com")


def uses_api_key_header(api_base: str) -> bool:
    """Whether ``api_base``'s host takes the key in ``api-key`` (else ``Authorization: Bearer``)."""
    host = urlsplit(api_base).hostname or ""
    return host.endswith(_API_KEY_HOSTS)


def chat_url(api_base: str, api_version: str | None) -> str:
    """The chat-completions URL of a deployment at ``api_base`` (see the module docstring)."""
    parts = urlsplit(api_base)
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        foundry = (parts.hostname or "").endswith(".services.ai.azure.com")
        if foundry and not path.endswith("/models"):
            path += "/models"
        path += "/chat/completions"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if api_version and not any(name == "api-version" for name, _ in query):
        query.append(("api-version", api_version))
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


class AzureAIProvider(HostProvider):
    """Azure AI Foundry's model inference API (OpenAI's wire format, Azure's URL and key header)."""

    def __init__(self, name: str = "azure_ai") -> None:
        super().__init__(name, HOST)

    def resolve_api_key(self, call: Call, base: str) -> str | None:
        key = call.api_key or settings.get("api_key") or first_env(self.api_key_env)
        return require_key(key, call.provider, call.user_model, self.api_key_env)

    def build_request(self, call: Call) -> HttpRequest:
        params = self.check_params(call)
        base = self.resolve_api_base(call)
        key = self.resolve_api_key(call, base)
        auth = {"api-key": key} if uses_api_key_header(base) else {"Authorization": f"Bearer {key}"}
        url = chat_url(base, call.extra.get("api_version"))
        return post_json(call, url, auth, self.build_body(call, params))


def make_provider(prefix: str = "azure_ai") -> AzureAIProvider:
    return AzureAIProvider(prefix)
