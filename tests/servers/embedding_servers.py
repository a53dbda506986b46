"""Loopback fakes of every embeddings wire format llmrelay speaks, on one server.

Each route reads its provider's real request shape (from the provider's API reference),
refuses what the real API refuses (missing ``input_type`` for Cohere, batches over the limit,
unknown keys where the API is strict, wrong auth), and answers with :func:`vector` of each input,
so tests can check order, batching and dimensions exactly:

* ``POST /v1/embeddings`` — OpenAI, Mistral (``output_dimension``), Voyage (``output_dimension``,
  no ``encoding_format: "float"``), chosen by the model name's prefix (``mistral-``/``voyage-``);
* ``POST /openai/deployments/<d>/embeddings?api-version=`` — Azure (``api-key`` header);
* ``POST /v1beta/models/<m>:batchEmbedContents`` — Gemini (``x-goog-api-key``, ≤ 100 requests);
* ``POST /v1/projects/<p>/locations/<l>/publishers/google/models/<m>:predict`` — Vertex AI
  (bearer token, ``instances``; ``gemini-embedding-*`` takes one instance per request);
* ``POST /v2/embed`` — Cohere (``input_type`` required, ``embedding_types``, ≤ 96 texts);
* ``POST /api/embed`` — Ollama;
* ``POST /model/<id>/invoke`` — Bedrock Titan (one ``inputText``) and Cohere Embed (``texts``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from servers.loopback import LoopbackServer, Reply, Request

__all__ = ["FakeEmbeddingServer", "vector", "KEY", "DEFAULT_DIMS"]

KEY = "embed-key-0123456789"
DEFAULT_DIMS = 8
_AZURE = re.compile(r"^/openai/deployments/([^/]+)/embeddings$")
_GEMINI = re.compile(r"^/v1beta/models/([^/:]+):batchEmbedContents$")
_BEDROCK = re.compile(r"^/model/([^/]+)/invoke$")
_VERTEX = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+):predict$")
VERTEX_TOKEN = "vertex-token-1"


def vector(text: str, dims: int | None = None) -> list[float]:
    """The deterministic embedding of ``text`` (values exactly representable in float32)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % len(digest)] - 128) / 128 for i in range(dims or DEFAULT_DIMS)]


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _openai_error(status: int, message: str) -> Reply:
    return Reply.json({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}},
                      status=status)


class FakeEmbeddingServer(LoopbackServer):
    def __init__(self, key: str = KEY) -> None:
        super().__init__(self.route)
        self.key = key

    def bodies(self, path_part: str) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests if path_part in r.path]

    def route(self, request: Request) -> Reply:
        path = request.path
        try:
            body = request.json()
        except ValueError:
            return _openai_error(400, "invalid JSON")
        if path == "/v1/embeddings":
            return self.openai_shape(request, body)
        if _AZURE.match(path):
            if request.headers.get("api-key") != self.key or "api-version" not in request.query:
                return _openai_error(401, "Access denied due to invalid subscription key or api-version.")
            return self._openai_answer(body, "dimensions")
        match = _GEMINI.match(path)
        if match:
            return self.gemini(request, body, match.group(1))
        match = _VERTEX.match(path)
        if match:
            return self.vertex(request, body, match.group(3))
        if path == "/v2/embed":
            return self.cohere(request, body)
        if path == "/api/embed":
            inputs = body.get("input")
            inputs = [inputs] if isinstance(inputs, str) else inputs
            return Reply.json({"model": body["model"], "embeddings": [vector(t, body.get("dimensions")) for t in inputs],
                               "total_duration": 1000, "load_duration": 10,
                               "prompt_eval_count": sum(_tokens(t) for t in inputs)})
        match = _BEDROCK.match(path)
        if match:
            return self.bedrock(request, body, match.group(1))
        return _openai_error(404, f"Unknown path {path}")

    # ---------------------------------------------------------------- OpenAI shape
    def openai_shape(self, request: Request, body: dict[str, Any]) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _openai_error(401, "Incorrect API key provided.")
        model = body.get("model") or ""
        if model.startswith(("mistral", "voyage")):
            if "dimensions" in body:
                return _openai_error(422, "Extra inputs are not permitted: dimensions")
            if model.startswith("voyage") and body.get("encoding_format") not in (None, "base64"):
                return _openai_error(400, "encoding_format must be null or 'base64'")
            return self._openai_answer(body, "output_dimension", voyage=model.startswith("voyage"))
        return self._openai_answer(body, "dimensions")

    def _openai_answer(self, body: dict[str, Any], dims_key: str, voyage: bool = False) -> Reply:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or len(inputs) > 2048:
            return _openai_error(400, "'input' must be a string or an array of 1 to 2048 items")
        texts = [t if isinstance(t, str) else json.dumps(t) for t in inputs]
        data = [{"object": "embedding", "index": i, "embedding": vector(t, body.get(dims_key))}
                for i, t in enumerate(texts)]
        tokens = sum(_tokens(t) for t in texts)
        usage = {"total_tokens": tokens} if voyage else {"prompt_tokens": tokens, "total_tokens": tokens}
        return Reply.json({"object": "list", "data": data[::-1], "model": body.get("model"), "usage": usage})

    # ---------------------------------------------------------------- Gemini
    def gemini(self, request: Request, body: dict[str, Any], model: str) -> Reply:
        if request.headers.get("x-goog-api-key") != self.key:
            return Reply.json({"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}},
                              status=400)
        requests = body.get("requests")
        if not isinstance(requests, list) or not 1 <= len(requests) <= 100:
            return Reply.json({"error": {"code": 400, "message": "requests: 1 to 100 items", "status": "INVALID_ARGUMENT"}},
                              status=400)
        out = []
        for item in requests:
            if item.get("model") != f"models/{model}":
                return Reply.json({"error": {"code": 400, "message": "model mismatch", "status": "INVALID_ARGUMENT"}},
                                  status=400)
            text = "".join(p["text"] for p in item["content"]["parts"])
            out.append({"values": vector(text, item.get("outputDimensionality"))})
        return Reply.json({"embeddings": out})

    # ---------------------------------------------------------------- Vertex AI
    def vertex(self, request: Request, body: dict[str, Any], model: str) -> Reply:
        if request.headers.get("authorization") != f"Bearer {VERTEX_TOKEN}":
            return Reply.json({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                         "status": "UNAUTHENTICATED"}}, status=401)
        instances = body.get("instances")
        limit = 1 if model.startswith("gemini-embedding") else 250
        if not isinstance(instances, list) or not 1 <= len(instances) <= limit:
            return Reply.json({"error": {"code": 400, "message": f"instances: 1 to {limit} items",
                                         "status": "INVALID_ARGUMENT"}}, status=400)
        dims = (body.get("parameters") or {}).get("outputDimensionality")
        return Reply.json({"predictions": [
            {"embeddings": {"values": vector(i["content"], dims),
                            "statistics": {"token_count": _tokens(i["content"]), "truncated": False}}}
            for i in instances]})

    # ---------------------------------------------------------------- Cohere
    def cohere(self, request: Request, body: dict[str, Any]) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return Reply.json({"id": "x", "message": "invalid api token"}, status=401)
        texts = body.get("texts")
        if not body.get("input_type"):
            return Reply.json({"id": "x", "message": "invalid request: input_type is required for v3+ models"},
                              status=400)
        if not isinstance(texts, list) or not 1 <= len(texts) <= 96:
            return Reply.json({"id": "x", "message": "invalid request: texts must have 1 to 96 items"}, status=400)
        vectors = [vector(t, body.get("output_dimension")) for t in texts]
        return Reply.json({"id": "emb-1", "embeddings": {"float": vectors}, "texts": texts,
                           "response_type": "embeddings_by_type",
                           "meta": {"api_version": {"version": "2"},
                                    "billed_units": {"input_tokens": sum(_tokens(t) for t in texts)}}})

    # ---------------------------------------------------------------- Bedrock
    def bedrock(self, request: Request, body: dict[str, Any], model: str) -> Reply:
        auth = request.headers.get("authorization") or ""
        if auth != f"Bearer {self.key}" and not auth.startswith("AWS4-HMAC-SHA256 Credential="):
            return Reply.json({"message": "The security token included in the request is invalid."}, status=403,
                              headers={"x-amzn-errortype": "UnrecognizedClientException"})
        if model.startswith("cohere.embed"):
            texts = body.get("texts")
            if not isinstance(texts, list) or not 1 <= len(texts) <= 96 or not body.get("input_type"):
                return Reply.json({"message": "Malformed input request"}, status=400,
                                  headers={"x-amzn-errortype": "ValidationException"})
            return Reply.json({"id": "b-1", "embeddings": [vector(t) for t in texts], "texts": texts,
                               "response_type": "embeddings_floats"})
        text = body.get("inputText")
        if not isinstance(text, str) or set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}:
            return Reply.json({"message": "Malformed input request: extraneous key"}, status=400,
                              headers={"x-amzn-errortype": "ValidationException"})
        return Reply.json({"embedding": vector(text, body.get("dimensions")), "inputTextTokenCount": _tokens(text)})
