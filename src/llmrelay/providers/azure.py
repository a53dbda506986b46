"""Azure OpenAI (``azure/<deployment>``): OpenAI's wire format at Azure's URLs and auth.

``api_base`` is the resource endpoint (``https://<resource>.openai.azure.com``), as in LiteLLM
and the Azure SDKs. The URL is

* ``{api_base}/openai/deployments/{deployment}/chat/completions?api-version={api_version}``
  when an ``api_version`` is given (argument, ``AZURE_API_VERSION`` or ``OPENAI_API_VERSION``);
* ``{api_base}/openai/v1/chat/completions`` (the v1 API, which takes no dated version and
  the deployment as ``model``) when the version is ``"v1"``, ``"latest"``, ``"preview"`` or
  absent. Documented difference from LiteLLM, which falls back to a pinned dated version.

Auth: ``api-key`` header (``api_key`` / ``AZURE_API_KEY`` / ``AZURE_OPENAI_API_KEY``), or a
Microsoft Entra ID bearer token (``azure_ad_token`` / ``AZURE_AD_TOKEN``, or a callable
``azure_ad_token_provider``). Responses, streams and errors are OpenAI's (Azure's empty-choices
``prompt_filter_results`` chunk is dropped by the stream state machine; ``content_filter``
error codes map to ``ContentPolicyViolationError`` in the shared OpenAI error mapping).
"""

from __future__ import annotations

from typing import Any

from ..exceptions import AuthenticationError, BadRequestError
from .base import Call, HttpRequest
from .common import first_env, post_json
from .openai import OpenAIProvider

__all__ = ["AzureProvider"]

_V1_VERSIONS = {None, "", "v1", "latest", "preview"}


class AzureProvider(OpenAIProvider):
    """``azure/<deployment>``."""

    name = "azure"
    default_api_base = None
    api_key_env = ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY")
    api_base_env = ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT")
    api_version_env = ("AZURE_API_VERSION", "OPENAI_API_VERSION")

    def url(self, call: Call) -> str:
        base = call.api_base or first_env(self.api_base_env)
        if not base:
            raise BadRequestError(
                "No api_base for azure: pass api_base='https://<resource>.openai.azure.com' or set "
                "AZURE_API_BASE.",
                llm_provider=call.provider,
                model=call.user_model,
            )
        base = base.rstrip("/")
        version = call.extra.get("api_version") or first_env(self.api_version_env)
        if base.endswith("/chat/completions"):
            base = base[: -len("/chat/completions")]
        if base.endswith("/openai/v1") or (version in _V1_VERSIONS and "/openai/deployments/" not in base):
            if not base.endswith("/openai/v1"):
                base = base.removesuffix("/openai") + "/openai/v1"
            url = base + "/chat/completions"
            return url + "?api-version=preview" if version == "preview" else url
        if "/openai/deployments/" not in base:
            base = base.removesuffix("/openai") + f"/openai/deployments/{call.model}"
        return f"{base}/chat/completions?api-version={version or 'v1'}"

    def auth_headers(self, call: Call) -> dict[str, str]:
        key = call.api_key or first_env(self.api_key_env)
        if key:
            return {"api-key": key}
        token: Any = call.extra.get("azure_ad_token") or first_env(("AZURE_AD_TOKEN",))
        provider = call.extra.get("azure_ad_token_provider")
        if not token and callable(provider):
            token = provider()
        if token:
            return {"Authorization": token if token.startswith("Bearer ") else f"Bearer {token}"}
        raise AuthenticationError(
            "No credentials for azure: pass api_key= (or set AZURE_API_KEY), or azure_ad_token= / "
            "azure_ad_token_provider= for Microsoft Entra ID.",
            llm_provider=call.provider,
            model=call.user_model,
        )

    def build_request(self, call: Call) -> HttpRequest:
        params = self.check_params(call)
        return post_json(call, self.url(call), self.auth_headers(call), self.build_body(call, params))
