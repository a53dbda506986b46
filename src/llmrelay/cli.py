"""The ``llmrelay`` command line: a thin layer over the library.

    llmrelay chat "Why is the sky blue?"          # streams from the built-in local model
    echo "Why is the sky blue?" | llmrelay chat   # the prompt from stdin
    llmrelay chat --model openai/gpt-4o-mini --system "Be brief." "Hi"
    llmrelay proxy --config config.yaml           # the gateway (llmrelay.proxy.cli)
    llmrelay check-config config.yaml             # every warning and error of a gateway config
    llmrelay db upgrade --config config.yaml      # apply the gateway database's migrations

Every error ends the command with a one-line message on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

__all__ = ["main", "build_parser"]

DEFAULT_CHAT_MODEL = "local/smollm2"


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="llmrelay",
        description="Call any LLM provider through one OpenAI-shaped API.",
    )
    parser.add_argument("--version", action="version", version=f"llmrelay {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    chat = commands.add_parser(
        "chat",
        help="stream one answer to the terminal",
        description="Stream a model's answer to a prompt (default model: the built-in local one).",
    )
    chat.add_argument("prompt", nargs="?", help="the prompt (read from stdin when left out)")
    chat.add_argument("-m", "--model", default=DEFAULT_CHAT_MODEL,
                      help=f"any llmrelay model name (default: {DEFAULT_CHAT_MODEL})")
    chat.add_argument("-s", "--system", help="a system message")
    chat.add_argument("--max-tokens", type=int, help="the most tokens to generate")
    chat.add_argument("--temperature", type=float, help="sampling temperature")
    chat.add_argument("--seed", type=int, help="sampling seed (reproducible output where supported)")
    chat.add_argument("--api-base", help="the provider's base URL (else its usual environment variable)")
    chat.add_argument("--api-key", help="the provider's API key (else its usual environment variable)")
    commands.add_parser("proxy", help="run the OpenAI-compatible gateway (llmrelay proxy --help)",
                        add_help=False)
    commands.add_parser("check-config", help="check a gateway config.yaml (llmrelay check-config FILE)",
                        add_help=False)
    db = commands.add_parser("db", help="the gateway's database (keys, budgets, spend)",
                             description="Manage the gateway's database.")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_commands.add_parser(
        "upgrade", help="apply the schema migrations not applied yet",
        description="Apply the schema migrations (the gateway also does this at start). The database is "
                    "--database-url, else the config's general_settings.database_url, else $DATABASE_URL, "
                    "else the SQLite file in the data directory ($LLMRELAY_DATA_DIR).")
    upgrade.add_argument("--config", "-c", help="the gateway's config.yaml")
    upgrade.add_argument("--database-url", help="postgresql://… or sqlite:///path")
    return parser


def _db(args: argparse.Namespace) -> int:
    from .storage import database_url, open_store
    from .storage.migrations import LATEST

    url = args.database_url
    if url is None and args.config:
        from .proxy.config import load_config

        url = load_config(args.config).general_settings.get("database_url")
    store = open_store(database_url(url))
    try:
        applied = store.migrate()
        print(f"{store.describe}: schema version {store.version()} (latest {LATEST}); "
              + (f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"))
    finally:
        store.close()
    return 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _fail(message: str, status: int = 1) -> int:
    print(f"llmrelay: error: {message}", file=sys.stderr)
    return status


def _chat(args: argparse.Namespace) -> int:
    prompt = args.prompt
    if prompt is None:
        prompt = sys.stdin.read()
    if not prompt.strip():
        return _fail("no prompt: give it as an argument or on stdin", 2)
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    kwargs: dict[str, Any] = {}
    if args.max_tokens is not None:
        kwargs["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        kwargs["temperature"] = args.temperature
    if args.seed is not None:
        kwargs["seed"] = args.seed
    if args.api_base:
        kwargs["api_base"] = args.api_base
    if args.api_key:
        kwargs["api_key"] = args.api_key

    from .main import completion

    out = sys.stdout
    stream = completion(model=args.model, messages=messages, stream=True, **kwargs)
    try:
        ended_with_newline = True
        for chunk in stream:
            if chunk.choices:
                text = chunk.choices[0].delta.content
                if text:
                    out.write(text)
                    out.flush()
                    ended_with_newline = text.endswith("\n")
        if not ended_with_newline:
            out.write("\n")
            out.flush()
    finally:
        stream.close()
    return 0


def _proxy(argv: list[str], command: str = "main") -> int:
    try:
        from .proxy import cli as proxy_cli
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing == "llmrelay" or missing.startswith("llmrelay."):
            return _fail(f"this llmrelay has no gateway ({_one_line(exc)})", 2)
        return _fail(f"the gateway needs more packages ({_one_line(exc)}); install them with: "
                     'pip install "llmrelay[proxy]"', 2)
    run = proxy_cli.check_config_main if command == "check-config" else proxy_cli.main
    return int(run(argv) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and args_list[0] == "proxy":
            return _proxy(args_list[1:])
        if args_list and args_list[0] == "check-config":
            return _proxy(args_list[1:], "check-config")
        parser = build_parser()
        args = parser.parse_args(args_list)
        if args.command == "chat":
            return _chat(args)
        if args.command == "db":
            return _db(args)
        parser.print_help(sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``llmrelay chat ... | head``): not an error
        _silence_stdout()
        return 0
    except SystemExit as exc:  # argparse (--help, --version, bad arguments)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except Exception as exc:  # noqa: BLE001 - a command line reports, never dumps a traceback
        return _fail(_one_line(exc))


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
