"""The llmrelay gateway: an OpenAI-compatible server in front of the library.

``llmrelay proxy --config config.yaml`` (see :mod:`llmrelay.proxy.cli`); the ASGI app is
:class:`llmrelay.proxy.app.ProxyApp`. Nothing here is imported by ``import llmrelay``.
"""
