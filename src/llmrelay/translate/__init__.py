"""Pure translators between other LLM APIs and the canonical chat-completions shape (no I/O)."""
