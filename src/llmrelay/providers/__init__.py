"""Providers, registered by model prefix (see :mod:`llmrelay.providers.registry`)."""
