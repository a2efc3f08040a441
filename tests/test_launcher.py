"""End to end: the launcher (`manage.py cdp_run`) starts the web server, a Celery worker and
beat against real services; an event posted to the collector gets processed by the worker; and
Ctrl-C stops every process it started.

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
        assert "gunicorn" in names and "worker" in names and "beat" in names

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

        launcher.interrupt_and_wait(timeout=20)
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
