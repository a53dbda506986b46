"""Start the real gateway (``python -m llmrelay.proxy``) in a subprocess for tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
_LISTENING = re.compile(r"listening on (http://\S+)")


def gateway_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("LLMRELAY_PROXY_CONFIG", None)
    if extra:
        env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 20) -> tuple[int, str]:
    """Run ``python -m llmrelay.proxy ARGS`` expecting it to exit; (status, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "llmrelay.proxy", *args],
        env=gateway_env(env), capture_output=True, text=True, timeout=timeout,
    )
    return proc.returncode, proc.stderr


class Gateway:
    """A running gateway process; ``url`` is its base URL, ``lines`` its stderr so far."""

    def __init__(self, config_path: str | None, args: list[str] = (), env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "llmrelay.proxy", "--port", "0", *args]
        if config_path:
            cmd += ["--config", config_path]
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self.proc = subprocess.Popen(cmd, env=gateway_env(env), stderr=subprocess.PIPE, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_url(timeout=60)  # (an import under load: seconds)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def _wait_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for line in self.lines:
                    m = _LISTENING.search(line)
                    if m:
                        url = m.group(1)
                        break
                else:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("gateway did not start:\n" + "\n".join(self.lines))
                    self._cv.wait(0.05)
                    continue
                break
        self._wait_ready(url, deadline)
        return url

    @staticmethod
    def _wait_ready(url: str, deadline: float) -> None:
        import urllib.request

        while True:
            try:
                with urllib.request.urlopen(url + "/health/liveliness", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def log_records(self) -> list[dict]:
        """The structured per-request log lines (JSON objects) seen so far."""
        import json

        out = []
        with self._cv:
            lines = list(self.lines)
        for line in lines:
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait_log(self, predicate, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for record in self.log_records():
                if predicate(record):
                    return record
            if time.monotonic() > deadline:
                raise AssertionError("no matching log line in:\n" + "\n".join(self.lines[-30:]))
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)

    def __enter__(self) -> "Gateway":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
