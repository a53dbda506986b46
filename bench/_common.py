"""Helpers shared by the micro-benchmarks in bench/ (imported as ``_common``: the scripts run as
``python bench/<name>.py``, which puts bench/ on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Callable, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_upstream(chunks: int) -> tuple[subprocess.Popen, str]:
    """bench/fake_upstream.py in its own process, streaming ``chunks`` chunks; and its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_upstream.py"), str(port), str(chunks)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc, f"http://127.0.0.1:{port}/v1"


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``run`` (time.perf_counter), in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def reads_of(data: bytes, size: int) -> list[bytes]:
    """``data`` as consecutive reads of ``size`` bytes (the last one may be shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def start_gateway(config: str, env: dict, args: Sequence[str] = (), log_level: str | None = "warning",
                  log: str | None = None, pin: Sequence[str] = ()) -> tuple[subprocess.Popen, str]:
    """``python -m llmrelay.proxy --config CONFIG [ARGS]`` on a free port, once it answers; (process, URL).

    ``log_level`` None leaves the gateway's default; ``pin`` prefixes the command (``taskset -c N``).
    Its stderr is drained in the background (a full pipe would block the gateway), into ``log`` if given."""
    import shutil
    import threading
    import urllib.request

    level = ["--log-level", log_level] if log_level else []
    proc = subprocess.Popen([*pin, sys.executable, "-m", "llmrelay.proxy", "--config", str(config), "--port", "0",
                             *level, *args], env=env, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "listening on" in line:
            url = line.split("listening on ")[1].split()[0]
            break
    else:
        raise RuntimeError("gateway did not start")
    if log is None:
        threading.Thread(target=proc.stderr.read, daemon=True).start()
    else:
        threading.Thread(target=shutil.copyfileobj, args=(proc.stderr, open(log, "w")), daemon=True).start()
    while True:
        try:
            urllib.request.urlopen(url + "/health/liveliness", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.01)


def stop(procs: list) -> None:
    """Terminate the processes still running, last started first (kill those that hang)."""
    for proc in reversed(procs):
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` now (``VmRSS``), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_otlp_sink(keep_alive: bool = False) -> tuple[object, str]:
    """An OTLP/HTTP receiver on 127.0.0.1 that reads and drops what it is sent (in a thread of this
    process); (server, endpoint URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``). ``server.shutdown()`` stops it.
    ``keep_alive``: HTTP/1.1, connections kept open between exports."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


#: The callback a benchmark worker registers (``kind``: none, fn, afn or logger; ``seen`` collects
#: what it read), for bench_callbacks.py and callgrind_callbacks.py's worker programs.
CALLBACK_SETUP = r'''
MESSAGES = [{"role": "user", "content": "Say hello."}]
seen = []
if kind == "fn":
    llmrelay.success_callback = [lambda kwargs, response, start, end: seen.append(kwargs["response_cost"])]
elif kind == "afn":
    async def on_success(kwargs, response, start, end):
        seen.append(kwargs["response_cost"])
    llmrelay.success_callback = [on_success]
elif kind == "logger":
    class Logger(llmrelay.CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            seen.append(kwargs["standard_logging_object"]["completion_tokens"])
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            seen.append(kwargs["standard_logging_object"]["completion_tokens"])
    llmrelay.callbacks = [Logger()]
'''
