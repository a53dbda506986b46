"""The OpenAPI 3.1 description of the gateway's endpoints (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": "OpenAI-shaped error", "content": {"application/json": {"schema": _ERROR}}}
        for c in codes
    }


def openapi_document() -> dict[str, Any]:
    """The document, as a dict."""
    from .. import __version__

    chat = {
        "post": {
            "summary": "Create a chat completion (OpenAI-compatible; stream=true gives text/event-stream)",
            "operationId": "createChatCompletion",
            "security": [{"bearer": []}, {"apiKey": []}, {"xApiKey": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
            },
            "responses": {
                "200": {
                    "description": "A chat.completion object, or with stream=true a stream of "
                    "`data: {chat.completion.chunk}` frames ending with `data: [DONE]`",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **_errors(400, 401, 403, 404, 413, 429, 500, 502, 503, 504),
            },
        }
    }
    models = {
        "get": {
            "summary": "List the model names this gateway serves",
            "operationId": "listModels",
            "security": [{"bearer": []}, {"apiKey": []}, {"xApiKey": []}],
            "responses": {"200": {"description": "{object: list, data: [model]}",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelList"}}}},
                          **_errors(401)},
        }
    }
    model = {
        "get": {
            "summary": "One model",
            "operationId": "retrieveModel",
            "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "a model object"}, **_errors(401, 404)},
        }
    }
    from .ingress.routes import ingress_table
    from .management import routes

    apis = {
        path: {"post": {
            "summary": ingress.summary,
            "security": [{"bearer": []}, {"apiKey": []}, {"xApiKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": {"description": "the API's answer (JSON, or a stream with stream=true)"},
                          **_errors(400, 401, 404, 413, 429, 500, 502, 503, 504)},
        }}
        for path, ingress in ingress_table().items() if ingress.name != "chat"
    }
    management = {
        path: {method.lower(): {
            "summary": f"Management API (LiteLLM's shape, see docs/keys.md): {path}",
            "security": [{"bearer": []}, {"apiKey": []}, {"xApiKey": []}],
            "responses": {"200": {"description": "JSON"}, **_errors(400, 401, 404, 503)},
        }} for path, method in routes()
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "llmrelay gateway", "version": __version__,
                 "description": "An OpenAI-compatible gateway in front of any LLM provider."},
        "paths": {
            "/v1/chat/completions": chat,
            "/chat/completions": chat,
            "/v1/models": models,
            "/models": models,
            "/v1/models/{model}": model,
            "/health": {"get": {"summary": "Call each deployment once; which answered (master key)",
                                "parameters": [{"name": "model", "in": "query", "schema": {"type": "string"}},
                                               {"name": "model_id", "in": "query", "schema": {"type": "string"}}],
                                "responses": {"200": {"description": "healthy_endpoints, unhealthy_endpoints"}}}},
            "/health/liveliness": {"get": {"summary": "The process is up", "responses": {"200": {"description": "alive"}}}},
            "/health/readiness": {"get": {"summary": "Ready to serve (has models)",
                                          "responses": {"200": {"description": "ready"}, "503": {"description": "no models"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI JSON"}}}},
            **apis,
            **management,
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "api-key"},
                "xApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "object", "properties": {
                        "message": {"type": "string"}, "type": {"type": "string"},
                        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
                },
                "ChatCompletionRequest": {
                    "type": "object",
                    "required": ["model", "messages"],
                    "properties": {
                        "model": {"type": "string"},
                        "messages": {"type": "array", "items": {"type": "object"}},
                        "stream": {"type": "boolean"},
                        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
                        "n": {"type": "integer"},
                        "tools": {"type": "array", "items": {"type": "object"}},
                        "tool_choice": {},
                        "response_format": {"type": "object"},
                        "temperature": {"type": "number"},
                        "max_tokens": {"type": "integer"},
                        "max_completion_tokens": {"type": "integer"},
                    },
                    "additionalProperties": True,
                },
                "ModelList": {
                    "type": "object",
                    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {
                        "type": "object", "properties": {"id": {"type": "string"}, "object": {"const": "model"},
                                                         "created": {"type": "integer"}, "owned_by": {"type": "string"}}}}},
                },
            },
        },
    }
