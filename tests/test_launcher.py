"""End to end: the launcher (`manage.py cdp_run`) starts the web server, a Celery worker and
beat against real services; an event posted to the collector gets processed by the worker; and
Ctrl-C stops every process it started. The children log to files in the data folder; the
terminal gets a status line, their errors, and the credentials as its last block, which
`--info` prints again for the running instance.

These tests run their own servers and their own database, so they do not use the pytest-django
`db` fixture."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"
SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
# what Celery and the web server (granian) print when they start and run: in their logs, not on
# the terminal
CHILD_CHATTER = [
    "-------------- ",  # the worker's banner
    "[config]",
    "[queues]",
    "celery beat v",
    "beat: Starting",
    "Scheduler: Sending due task",
    "You're running the worker with superuser privileges",
    "Starting granian",
    "Spawning worker-",
    "] ready.",
    "INFO/MainProcess",
]


class Launcher:
    """`manage.py cdp_run` in a subprocess, its output collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "cdp_run", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a Ctrl-C in the terminal running pytest is not for it
        )
        self.lines: list[str] = []
        self.descendants: list[psutil.Process] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def tail(self, n: int = 60) -> str:
        return "".join(self.lines[-n:])

    def wait_for_banner(self, timeout: float = 120) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = self.output
            if "Press Ctrl-C to stop." in output:
                found = {
                    key: re.search(rf"^\s*{label}\s+(\S+)", output, re.MULTILINE)
                    for key, label in [
                        ("login", "Log in"),
                        ("write_key", "Write key"),
                        ("api_token", "API token"),
                        ("docs", "API docs"),
                    ]
                }
                assert all(found.values()), self.tail()
                return {key: match.group(1) for key, match in found.items() if match}
            assert self.process.poll() is None, f"launcher exited early:\n{self.tail()}"
            time.sleep(0.3)
        raise AssertionError(f"no banner within {timeout}s:\n{self.tail()}")

    def remember_descendants(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.descendants = psutil.Process(self.process.pid).children(recursive=True)

    def interrupt_and_wait(self, timeout: float = 20) -> None:
        """Ctrl-C; the launcher and every process it started must be gone within `timeout`."""
        self.remember_descendants()
        assert self.descendants, "the launcher started no processes"
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"launcher still running after {timeout}s:\n{self.tail()}"
            ) from None
        assert code == 0, self.tail()
        left = timeout - (time.monotonic() - started)
        _, alive = psutil.wait_procs(self.descendants, timeout=max(left, 0.5))
        assert not alive, f"still running after Ctrl-C: {[p.pid for p in alive]}\n{self.tail()}"
        assert "Stopped." in self.output

    def cleanup(self) -> None:
        """Whatever happened: nothing of ours keeps running."""
        if self.process.poll() is None:
            self.remember_descendants()
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for child in self.descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def _free_port() -> int:
    ports = list(range(18100, 18200))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):
                sock.bind(("127.0.0.1", port))
                return port
    raise RuntimeError("no free port in 18100-18199")


def _request(
    url: str, *, data: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {})
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def _track(base_url: str, write_key: str, event: str) -> tuple[int, Any]:
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    return _request(
        f"{base_url}/v1/track",
        data={
            "userId": f"launcher-{uuid.uuid4().hex[:8]}",
            "event": event,
            "messageId": str(uuid.uuid4()),
            "properties": {"plan": "pro"},
        },
        headers={"Authorization": f"Basic {auth}"},
    )


def _info(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    """`--info` as bin/start runs it (`python -m cdp.launcher --info`, no Django), or the
    command given."""
    argv = list(command) or [sys.executable, "-m", "cdp.launcher", "--info"]
    return subprocess.run(  # noqa: S603 - fixed argv
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _credential_block(output: str) -> list[str]:
    """The lines from the first credential line ("Log in") to the end of the output."""
    lines = output.rstrip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Log in"))
    return lines[start:]


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env["CDP_DATA_DIR"] = str(tmp_path)  # beat schedule, embedded services: not in the repo
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A new, empty database on the machine's Postgres (dropped afterwards)."""
    server = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    parts = urllib.parse.urlsplit(server)
    name = f"test_cdp_launcher_{uuid.uuid4().hex[:10]}"
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    try:
        connection = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.skip(f"no Postgres server at {parts.hostname}:{parts.port}: {error}")
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
        finally:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _processes_mentioning(text: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(text in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def test_launcher_runs_web_worker_and_beat_and_stops_on_ctrl_c(
    tmp_path: Path, fresh_database: str
) -> None:
    port = _free_port()
    env = _base_env(tmp_path)
    env["DATABASE_URL"] = fresh_database
    env["REDIS_URL"] = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    env["CDP_SWEEP_SECONDS"] = "2"  # a lost kick is picked up by the sweeper soon
    launcher = Launcher(["--port", str(port), "--workspace", "LauncherTest", "--workers", "2"], env)
    try:
        banner = launcher.wait_for_banner()
        base_url = f"http://127.0.0.1:{port}"
        assert banner["login"] == f"{base_url}/login/"
        assert banner["docs"] == f"{base_url}/api/docs/"
        assert "Password" in launcher.output and "curl " in launcher.output
        names = " ".join(
            " ".join(p.cmdline()) for p in psutil.Process(launcher.process.pid).children()
        )
        assert "cdp.web" in names and "worker" in names and "beat" in names

        # the terminal: no Celery or web server chatter, a status line, the log folder
        output = launcher.output
        for chatter in CHILD_CHATTER:
            assert chatter not in output, f"{chatter!r} on the terminal:\n{output}"
        logs = tmp_path / "log"
        assert f"logs: {logs}" in output
        assert re.search(
            r"CDP is running: web ✓ worker ✓ activation ✓ beat ✓ · \d+ events/min", output
        )
        # ...which are in the logs
        log_text = {name: (logs / f"{name}.log").read_text() for name in ("web", "worker", "beat")}
        assert "Starting granian" in log_text["web"]
        assert "[queues]" in log_text["worker"] and " ready." in log_text["worker"]
        assert "beat: Starting" in log_text["beat"]
        assert (logs / "activation.log").read_text()

        status, body = _track(base_url, banner["write_key"], "Launcher Checked")
        assert status == 200, body
        assert body["accepted"] == 1

        # the worker turns the stored event into an observed-schema entry
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while time.monotonic() < deadline and "Launcher Checked" not in seen:
            status, schema = _request(
                f"{base_url}/api/v1/schema/observed/",
                headers={"Authorization": f"Token {banner['api_token']}"},
            )
            assert status == 200, schema
            seen = [entry["event"] for entry in schema["events"]]
            time.sleep(0.5)
        assert "Launcher Checked" in seen, f"not processed within 30s:\n{launcher.tail()}"

        # seconds later (beat has sent tasks, the worker ran them), the credentials are still
        # the last block on the terminal: login, user, password, write key, curl line
        time.sleep(6)
        block = _credential_block(launcher.output)
        assert block[0].strip() == f"Log in        {base_url}/login/"
        text = "\n".join(block)
        for label in ("Username", "Password", "Write key", "API token", "Send a test event"):
            assert label in text, text
        assert banner["write_key"] in text and "curl " in text
        assert block[-2].startswith("Press Ctrl-C to stop.") and set(block[-1]) == {"="}
        password = re.search(r"^\s*Password\s+(\S+)", text, re.MULTILINE)
        assert password is not None

        # --info, from another terminal: the same credentials and the status, nothing started
        state = tmp_path / "launcher.json"
        assert state.stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600
        info = _info(env)
        assert info.returncode == 0, info.stderr
        assert re.search(r"^web ✓ worker ✓ activation ✓ beat ✓ · \d+ events/min", info.stdout, re.M)
        assert f"Password      {password.group(1)}" in info.stdout
        assert f"Write key     {banner['write_key']}" in info.stdout
        assert f"Log in        {base_url}/login/" in info.stdout and "curl " in info.stdout
        via_manage = _info(env, sys.executable, "manage.py", "cdp_run", "--info")
        assert via_manage.returncode == 0 and banner["write_key"] in via_manage.stdout

        # an ERROR line a child writes to its log reaches the terminal
        with (logs / "worker.log").open("a") as log:
            log.write("[2030-01-01 00:00:00,000: ERROR/MainProcess] launcher-test: boom\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "launcher-test: boom" not in launcher.output:
            time.sleep(0.3)
        assert "worker │ [2030-01-01 00:00:00,000: ERROR/MainProcess] launcher-test: boom" in (
            launcher.output
        )

        launcher.interrupt_and_wait(timeout=20)
        assert not state.exists()
        stopped = _info(env)
        assert stopped.returncode == 1 and "not running" in stopped.stdout
    finally:
        launcher.cleanup()


def test_launcher_embedded_services_start_and_stop(tmp_path: Path) -> None:
    port = _free_port()
    launcher = Launcher(["--port", str(port), "--no-worker"], _base_env(tmp_path))
    try:
        banner = launcher.wait_for_banner()
        assert "embedded PostgreSQL" in launcher.output
        assert _processes_mentioning(str(tmp_path / "postgres")), "no embedded postgres running"

        status, body = _track(f"http://127.0.0.1:{port}", banner["write_key"], "Embedded Checked")
        assert status == 200, body

        launcher.interrupt_and_wait(timeout=20)
        assert not _processes_mentioning(str(tmp_path / "postgres")), "embedded postgres left"
        redis_socket = json.loads((tmp_path / "redis" / "redis.db.settings").read_text())[
            "unixsocket"
        ]
        assert not _processes_mentioning(redis_socket), "embedded redis left running"

        # asking a stopped instance starts nothing, not even the embedded database
        info = _info(_base_env(tmp_path))
        assert info.returncode == 1 and "not running" in info.stdout
        if (ROOT / ".venv" / "bin" / "python").exists():
            info = _info(_base_env(tmp_path), str(ROOT / "bin" / "start"), "--info")
            assert info.returncode == 1 and "not running" in info.stdout, info.stderr
        assert not _processes_mentioning(str(tmp_path / "postgres")), "--info started postgres"

        # a second start shows the first run's password again (kept for this data folder)
        first = re.search(r"^\s*Password\s+(\S+)", launcher.output, re.MULTILINE)
        assert first is not None
        again = Launcher(["--port", str(port), "--no-worker"], _base_env(tmp_path))
        try:
            again.wait_for_banner()
            assert f"Password      {first.group(1)}" in again.output
            assert "web ✓ · " in again.output
            again.interrupt_and_wait(timeout=20)
        finally:
            again.cleanup()
    finally:
        launcher.cleanup()
        _stop_leftover_embedded_services(tmp_path)


def _stop_leftover_embedded_services(data_dir: Path) -> None:
    """Only after a failure: a launcher that was killed cannot stop its embedded services."""
    for process in _processes_mentioning(str(data_dir / "postgres")):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGQUIT)  # postgres: immediate shutdown
    settings_file = data_dir / "redis" / "redis.db.settings"
    if settings_file.exists():
        for process in _processes_mentioning(json.loads(settings_file.read_text())["unixsocket"]):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
