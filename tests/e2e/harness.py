"""Run the real `assistant-bridge` process against the emulators."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import wait_until
from tests.emulators.slack import SlackEmulator

MODEL = "gpt-5.4-mini"
REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def bridge_command() -> list[str]:
    """The installed console script if it sits beside this Python, else `python -m bot`."""
    script = Path(sys.executable).with_name("assistant-bridge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


def bridge_env(slack: SlackEmulator, openai: OpenAIEmulator, workdir: Path,
               extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "PYTHONUNBUFFERED": "1",
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.base_url,
        "OPENAI_API_KEY": openai.api_key,
        "OPENAI_BASE_URL": openai.base_url,
        "OPENAI_MODEL": MODEL,
        "DATABASE_URL": f"sqlite:///{workdir / 'bridge.sqlite3'}",
        "LOG_LEVEL": "INFO",
    }
    env.update(extra or {})
    return env


class BridgeProcess:
    """One `assistant-bridge run` process; its output goes to `<workdir>/bridge<k>-<n>.log` (process k of
    the work dir, its n-th start)."""

    def __init__(self, slack: SlackEmulator, openai: OpenAIEmulator, workdir: Path, *,
                 env: Mapping[str, str] | None = None, command: str = "run",
                 program: list[str] | None = None, args: list[str] | None = None) -> None:
        self.program = program  # another program to run instead of the bridge (the benchmark's reference)
        self.args = list(args or [])  # after the command (`serve --port N`)
        self.slack = slack
        self.openai = openai
        self.workdir = workdir
        self.extra_env = dict(env or {})
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.name: str | None = None  # bridge1, bridge2 …: which process of the work dir it is
        self.log_paths: list[Path] = []

    def start(self, *, wait: bool = True) -> BridgeProcess:
        self.starts += 1
        # (one file per start; replicas sharing the work dir are told apart by their first start)
        self.name = self.name or next(
            f"bridge{n}" for n in range(1, 1000) if not (self.workdir / f"bridge{n}-1.log").exists())
        log_path = self.workdir / f"{self.name}-{self.starts}.log"
        self.log_paths.append(log_path)
        connected_before = self.slack.connections_total
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*(self.program or bridge_command()), self.command, *self.args], cwd=self.workdir, stdout=log,
                stderr=subprocess.STDOUT,
                env=bridge_env(self.slack, self.openai, self.workdir, self.extra_env),
            )
        if wait:
            ready = self._healthy if self.command == "serve" else (
                lambda: self.slack.connections_total > connected_before)
            wait_until(lambda: ready() or self.process.poll() is not None,
                       timeout=START_TIMEOUT, message=f"the bridge to be ready ({self.command})")
            if self.process.poll() is not None:
                raise AssertionError(f"the bridge exited with {self.process.returncode}:\n{self.log}")
        return self

    @property
    def http_url(self) -> str:
        """`serve` mode: where the bridge listens (`--port N`, else PORT from its environment)."""
        port = self.args[self.args.index("--port") + 1] if "--port" in self.args else self.extra_env["PORT"]
        return f"http://127.0.0.1:{port}"

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"the bridge did not stop within {timeout}s:\n{self.log}") from None
        return self.process.returncode

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def restart(self) -> BridgeProcess:
        assert self.stop() == 0
        return self.start()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_once(args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run `assistant-bridge <args>` to completion (check, config errors …)."""
    return subprocess.run([*bridge_command(), *args], cwd=cwd, env=dict(env), capture_output=True, text=True,
                          timeout=timeout)


def eventually(predicate, timeout: float = 15.0, message: str = "condition"):  # type: ignore[no-untyped-def]
    return wait_until(predicate, timeout=timeout, message=message)


def settle(seconds: float = 0.5) -> None:
    """Give the bridge a moment in which it should NOT do something (used only for negative checks)."""
    time.sleep(seconds)
