"""Pure, incremental wire codecs (sans-I/O).

Each decoder turns bytes into objects: ``feed(data)`` returns whatever became
complete, ``close()`` reports (or parses) what is left at end of stream. They
never touch sockets, clocks or globals, so the sync and async transports share
them, and tests drive them by feeding bytes split at every possible point.

Modules: ``sse`` (text/event-stream), ``ndjson`` (newline-delimited JSON),
``eventstream`` (AWS ``application/vnd.amazon.eventstream``), and ``errors``
(:class:`~llmrelay.codecs.errors.CodecError`, raised by all of them).
"""
