"""The launcher's terminal and data-folder files (cdp/launcher.py, cdp_run): the status line,
the children's ERROR lines picked out of their logs (and not too many), log tails, the 0600
files, `--info`, and which password a later start may show again. The processes themselves
are tested end to end in tests/test_launcher.py."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from cdp import launcher, runtime
from cdp.management.commands.cdp_run import Command
from cdp.services import workspace_bootstrap


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(runtime, "DATA_DIR", tmp_path)
    monkeypatch.delenv("CDP_LOG_DIR", raising=False)
    return tmp_path


def test_status_text() -> None:
    states = {"web": "ok", "worker": "starting", "beat": "down"}
    assert launcher.status_text(states, 12, "var/log") == (
        "web ✓ worker … beat ✗ · 12 events/min · logs: var/log"
    )
    assert launcher.status_text({"web": "ok"}, None, "/x") == "web ✓ · logs: /x"
    assert launcher.status_text(states, 1200, "v", unicode=False) == (
        "web ok worker ... beat DOWN | 1,200 events/min | logs: v"
    )


def watched(tmp_path: Path, key: str = "worker") -> launcher.Watched:
    log = tmp_path / f"{key}.log"
    log.touch()
    return launcher.Watched(key=key, label=key, log=log, pid=1, tail=launcher.LogTail(log))


def test_error_lines_of_each_format_and_not_too_many(tmp_path: Path) -> None:
    child = watched(tmp_path)
    lines = [
        "[2026-01-05 12:00:00,123: INFO/MainProcess] Task x succeeded",
        "[2026-01-05 12:00:01,000: ERROR/ForkPoolWorker-1] Task x raised: boom",
        "2026-01-05 12:00:02,000 ERROR django.request Internal Server Error: /api/",
        "[2026-01-05 12:00:03 +0000] [123] [CRITICAL] WORKER TIMEOUT (pid:9)",
        "2026-01-05 12:00:02,000 INFO cdp something about ERROR handling",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
    ]
    shown = launcher.error_lines(child, lines, now=100.0)
    assert shown == [
        "worker │ [2026-01-05 12:00:01,000: ERROR/ForkPoolWorker-1] Task x raised: boom",
        "worker │ 2026-01-05 12:00:02,000 ERROR django.request Internal Server Error: /api/",
        "worker │ [2026-01-05 12:00:03 +0000] [123] [CRITICAL] WORKER TIMEOUT (pid:9)",
    ]
    flood = [f"2026-01-05 12:00:0{i},000 ERROR x failure {i}" for i in range(9)]
    shown = launcher.error_lines(child, flood, now=101.0)
    assert len(shown) == launcher.ERRORS_PER_WINDOW - 3  # the window already had 3
    assert launcher.error_lines(child, [], now=110.0) == []
    later = launcher.error_lines(child, ["2026-01-05 12:01:00,000 ERROR x again"], now=200.0)
    assert later == [
        f"worker │ … 7 more error lines in {child.log}",
        "worker │ 2026-01-05 12:01:00,000 ERROR x again",
    ]
    long = launcher.error_lines(child, ["2026-01-05 12:01:00,000 ERROR " + "x" * 1000], 201.0)
    assert len(long[0]) == len("worker │ ") + launcher.MAX_ERROR_LINE


def test_json_error_lines_are_picked_out_and_shown_as_text(tmp_path: Path) -> None:
    """LOG_FORMAT=json: a record is one JSON line; its level decides, not the words in it."""
    child = watched(tmp_path, "web")
    record = {"time": "2026-01-05T12:00:01.000Z", "logger": "cdp.middleware", "process": 9}
    lines = [
        json.dumps({**record, "level": "INFO", "message": "ERROR handling is fine"}),
        json.dumps(
            {
                **record,
                "level": "ERROR",
                "message": "unhandled error on GET /api/v1/x",
                "request_id": "3f2a9c",
                "workspace_id": 4,
                "traceback": "Traceback (most recent call last):\n  ...",
            }
        ),
        json.dumps(
            {
                **record,
                "level": "CRITICAL",
                "message": "gave up",
                "task": "t.x",
                "task_id": "id-1",
                "logger": "celery",
            }
        ),  # fmt: skip
        '{"not": "a record", "level_": "ERROR"}',
        "{ broken json ERROR",
        "2026-01-05 12:00:02,000 ERROR django.request still text",
    ]
    assert launcher.error_lines(child, lines, now=100.0) == [
        "web │ 2026-01-05T12:00:01.000Z ERROR cdp.middleware unhandled error on GET /api/v1/x"
        " [request 3f2a9c] [workspace 4]",
        "web │ 2026-01-05T12:00:01.000Z CRITICAL celery gave up [task t.x id-1]",
        "web │ 2026-01-05 12:00:02,000 ERROR django.request still text",
    ]


def test_a_child_is_ready_from_a_json_line_too() -> None:
    ready = json.dumps({"level": "INFO", "logger": "celery", "message": "cdp-1@host ready."})
    assert launcher.READY_LINE["worker"].search(launcher.message_of(ready))
    assert launcher.READY_LINE["worker"].search(launcher.message_of("celery@h ready."))
    assert not launcher.READY_LINE["worker"].search(ready)  # the line itself ends with "}"


def test_log_tail_gives_whole_lines_from_where_it_started(tmp_path: Path) -> None:
    log = tmp_path / "web.log"
    log.write_text("old line from an earlier run\n")
    tail = launcher.LogTail(log)
    assert tail.lines() == []
    with log.open("a") as out:
        out.write("one\ntw")
        out.flush()
        assert tail.lines() == ["one"]
        out.write("o\n")
    assert tail.lines() == ["two"]
    log.write_text("new\n")  # replaced (shorter): read from its start
    assert tail.lines() == ["new"]
    assert launcher.LogTail(tmp_path / "absent.log").lines() == []
    assert launcher.last_lines(log) == ["new"]


def test_a_big_log_is_moved_aside_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "ROTATE_BYTES", 10)
    log = tmp_path / "log" / "beat.log"
    log.parent.mkdir()
    log.write_text("x" * 20)
    with launcher.open_log(log) as out:
        assert out.tell() == 0
    assert (tmp_path / "log" / "beat.log.1").read_text() == "x" * 20


def test_private_files_are_0600_and_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "launcher.json"
    path.write_text("{}")
    path.chmod(0o644)
    launcher.write_private(path, {"password": "s3cret"})
    assert path.stat().st_mode & 0o777 == 0o600
    assert launcher.read_private(path) == {"password": "s3cret"}
    assert [p.name for p in tmp_path.iterdir()] == ["launcher.json"]  # no temporary left
    path.write_text("not json")
    assert launcher.read_private(path) is None


def test_info_prints_the_running_instance_or_says_none_runs(data_dir: Path) -> None:
    out = io.StringIO()
    assert launcher.info(out) == 1
    assert f"CDP is not running on the data folder {data_dir}" in out.getvalue()

    # a pid left by a launcher that was killed, now another program's: not running either
    banner = ["  Log in        http://127.0.0.1:8000/login/", "  Password      pw", ""]
    state: dict[str, Any] = {
        "pid": 1,
        "started_at": "2026-01-05T12:00:00+00:00",
        "log_dir": str(data_dir / "log"),
        "children": [{"key": "web", "pid": 1}, {"key": "worker", "pid": 2**22 + 7}],
        "status": {"states": {"web": "ok", "worker": "ok"}, "events_per_minute": 3},
        "banner": banner,
    }
    launcher.write_private(data_dir / "launcher.json", state)
    assert launcher.info(io.StringIO()) == 1

    stand_in = subprocess.Popen(  # noqa: S603 - a process whose command line names cdp_run
        [sys.executable, "-c", "import time; time.sleep(30)", "cdp_run"]
    )
    try:
        launcher.write_private(data_dir / "launcher.json", {**state, "pid": stand_in.pid})
        out = io.StringIO()
        assert launcher.info(out) == 0
        lines = out.getvalue().splitlines()
        assert lines[0].startswith(f"CDP is running (pid {stand_in.pid}")
        # the worker's pid is gone: shown as down, whatever the file said
        assert lines[1] == f"web ✓ worker ✗ · 3 events/min · logs: {data_dir / 'log'}"
        assert lines[2:] == banner[:2]
    finally:
        stand_in.kill()
        stand_in.wait()


def test_a_later_start_shows_only_a_password_made_for_this_data_folder(
    db: Any, data_dir: Path
) -> None:
    command = Command()
    first = workspace_bootstrap(name="Demo")
    assert first.password and first.api_token
    assert command._secrets(first) == (first.password, first.api_token)
    kept = data_dir / "credentials.json"
    assert kept.stat().st_mode & 0o777 == 0o600

    again = workspace_bootstrap(name="Demo")
    assert again.password is None and again.api_token is None
    assert command._secrets(again) == (first.password, first.api_token)

    # the password was changed since: it is neither shown nor kept
    user = get_user_model().objects.get(username="admin")
    user.set_password("changed-by-hand-123")
    user.save()
    password, token = command._secrets(again)
    assert password.startswith("(set on the first run") and token == first.api_token
    assert first.password not in kept.read_text()

    # another database (same folder, DATABASE_URL changed): nothing of the first one's
    entry = json.loads(kept.read_text())
    other = {key.replace("@", "@elsewhere-", 1): value for key, value in entry.items()}
    kept.write_text(json.dumps(other))
    password, token = command._secrets(again)
    assert password.startswith("(set on the first run") and token is None


def test_the_status_line_is_redrawn_in_place_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    command = Command(stdout=out)
    command._tty = True
    command._status_shown = ""
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: os.terminal_size((30, 9)))
    command._draw_status("web ✓ worker ✓ · 5 events/min · logs: /var/lib/cdp/log")
    command._draw_status("web ✓ worker ✗ · logs: x")
    command._print_above_status(["worker │ boom"])
    assert out.getvalue() == (
        "\r\x1b[2Kweb ✓ worker ✓ · 5 events/mi…"  # cut: a wrapped line cannot be redrawn
        "\r\x1b[2Kweb ✓ worker ✗ · logs: x"
        "\r\x1b[2Kworker │ boom\n"
    )
