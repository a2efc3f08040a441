"""The web server `cdp_run` starts (`python -m cdp.web`, granian): a real server on
127.0.0.1 that answers, logs its own lines in our LOG_FORMAT, starts a killed worker process
again, and stops gracefully on SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from cdp import web
from cdp.tests.test_health import free_port

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - 127.0.0.1
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the web server exited"
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout:.0f}s")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    log = tmp_path / "web.log"
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "cdp.settings"}
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our interpreter and module
            [
                sys.executable,
                "-m",
                "cdp.web",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
            ],  # fmt: skip
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, port, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_serves_respawns_a_killed_worker_and_stops_gracefully(
    server: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, port, log = server
    url = f"http://127.0.0.1:{port}/healthz"
    _wait_serving(url, process)
    assert _get(url) == (200, b'{"status": "ok"}')

    workers = psutil.Process(process.pid).children()
    assert len(workers) == 2
    workers[0].kill()  # SIGKILL: no goodbye
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = [p.pid for p in psutil.Process(process.pid).children() if p.is_running()]
        if len(alive) == 2 and workers[0].pid not in alive:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the killed worker was not started again")
    for _ in range(20):  # both processes answer (the connections land on either)
        assert _get(url)[0] == 200

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0

    # every line granian wrote is one JSON record of ours; the death is an ERROR, which the
    # launcher shows on its terminal
    records = _records(log)
    granian = [r for r in records if str(r["logger"]).startswith("_granian")]
    messages = [str(r["message"]) for r in granian]
    assert any(m.startswith("Starting granian") for m in messages)
    assert any(m.startswith("Listening at: http://127.0.0.1:") for m in messages)
    died = [r for r in granian if "Unexpected exit from worker" in str(r["message"])]
    assert died and died[0]["level"] == "ERROR"
    assert any("shutdown completed" in m for m in messages)
    assert not any("Websockets" in m for m in messages)


def test_logging_config_follows_log_format() -> None:
    text = web.logging_config("text")
    json_config = web.logging_config("json", "WARNING")
    assert text["handlers"]["console"]["formatter"] == "text"
    assert json_config["handlers"]["console"]["formatter"] == "json"
    assert json_config["loggers"]["_granian"]["level"] == "WARNING"
    # granian replaces its default configuration key by key: every key it uses is ours
    assert {"formatters", "handlers", "loggers", "filters"} <= set(text)
    from cdp.env import ImproperlyConfiguredEnv

    with pytest.raises(ImproperlyConfiguredEnv):
        web.logging_config("xml")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("[::1]:9000", ("::1", 9000)),
        (":80", ("127.0.0.1", 80)),
    ],
)
def test_bind(value: str, expected: tuple[str, int]) -> None:
    assert web.parse_bind(value) == expected


@pytest.mark.parametrize("value", ["localhost", "host:", "host:８０", "host:x"])
def test_bind_refuses(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected host:port"):
        web.parse_bind(value)


@pytest.mark.parametrize(
    ("argv", "env_level", "message"),
    [
        (["--workers", "0"], "INFO", "at least 1"),
        (["--threads", "0"], "INFO", "at least 1"),
        ([], "LOUD", "LOG_LEVEL='loud'"),
    ],
)
def test_bad_arguments_are_refused_before_starting(
    argv: list[str], env_level: str, message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("LOG_LEVEL", env_level)
    with pytest.raises(SystemExit) as exit_:
        web.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_log_level_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "WARN")
    assert web.build_parser().parse_args([]).log_level == "warn"
