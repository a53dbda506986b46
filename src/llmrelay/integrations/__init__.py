"""Integrations with LiteLLM's names: ``CustomLogger`` and the built-in loggers
(``prometheus``, ``otel``), plus the dispatch that runs callbacks once per call."""
