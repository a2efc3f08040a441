"""The launcher's terminal and its files in the data folder (`bin/start`, that is
`manage.py cdp_run --role all`).

The children (gunicorn, the Celery workers, beat) write their output to one log file each in
the log folder (<data>/log: web.log, worker.log, beat.log, ...; errors.log has every error of
every process, with tracebacks). The terminal keeps what a person acts on:
- one status line, "web ✓ worker ✓ beat ✓ · 12 events/min · logs: <folder>", redrawn in
  place on a terminal and printed again only when it changes otherwise (a pipe, a file);
- the children's ERROR lines, read from their logs as they are written, and the end of the
  log of a child that dies;
- the credentials block, printed last once everything has started.
The credentials and the children's process ids are kept in <data>/launcher.json (mode 0600)
while the launcher runs, so that `bin/start --info` prints them again for the running
instance without starting anything; secrets made for this data folder (the first run's
password and API token) are kept in <data>/credentials.json (0600), per database, so a later
start can show them again once it has checked they still work.

Nothing here reads Django's settings at import: `bin/start --info` runs this module alone
(`python -m cdp.launcher --info`), and settings would start an embedded Postgres.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cdp import runtime

STATE_FILE = "launcher.json"
CREDENTIALS_FILE = "credentials.json"
ROTATE_BYTES = 20 * 1024 * 1024  # a log this big at start is moved to <name>.1
READ_CHUNK = 1024 * 1024  # bytes of one log read per tick; the rest comes on the next
ERRORS_PER_WINDOW = 5  # error lines a child may print per window before they are summarised
ERROR_WINDOW = 30.0
MAX_ERROR_LINE = 400
EXIT_TAIL_LINES = 25

# ERROR and CRITICAL lines in the formats our children log in: Django's LOGGING ("2026-01-05
# 12:00:00,123 ERROR name message"), Celery's ("[2026-01-05 12:00:00,123: ERROR/MainProcess]
# message") and gunicorn's ("[2026-01-05 12:00:00 +0000] [123] [ERROR] message")
ERROR_LINE = re.compile(
    r"^\S+ \S+ (?:ERROR|CRITICAL) "
    r"|^\[[^\]]*: (?:ERROR|CRITICAL)/"
    r"|^\[[^\]]*\] \[\d+\] \[(?:ERROR|CRITICAL)\]"
)
# with LOG_FORMAT=json (cdp/logs.py) a record is a line '{"time": ..., "level": "ERROR", ...}'
ERROR_LEVELS = ("ERROR", "CRITICAL")
# what a child logs once it serves (the web server is asked over HTTP instead)
READY_LINE = {
    "worker": re.compile(r"\bready\.\s*$"),
    "activation": re.compile(r"\bready\.\s*$"),
    "beat": re.compile(r"beat: Starting"),
}
MARKS = {"ok": "✓", "starting": "…", "down": "✗"}
ASCII_MARKS = {"ok": "ok", "starting": "...", "down": "DOWN"}


def data_dir() -> Path:
    return runtime.DATA_DIR


def log_dir() -> Path:
    return Path(os.environ.get("CDP_LOG_DIR") or runtime.DATA_DIR / "log")


def metrics_dir() -> Path:
    """Where the web server's processes keep their Prometheus values (multiprocess mode,
    cdp/metrics.py): PROMETHEUS_MULTIPROC_DIR when set, else <data>/prometheus."""
    return Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or runtime.DATA_DIR / "prometheus")


def reset_metrics_dir(path: Path) -> None:
    """Create `path` and remove the value files of an earlier run (their processes are gone:
    counters restart from zero, as Prometheus expects of a restart). Only *.db files: the
    folder may be one the operator named."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        remove(stale)


def state_path() -> Path:
    return data_dir() / STATE_FILE


def credentials_path() -> Path:
    return data_dir() / CREDENTIALS_FILE


# ---- private files ----------------------------------------------------------------------------


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by this user only (0600), atomically: a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
    os.chmod(temporary, 0o600)  # whatever the umask, or a leftover with other bits
    os.replace(temporary, path)


def read_private(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# ---- logs -------------------------------------------------------------------------------------


def open_log(path: Path) -> Any:
    """The child's log file, appended to; a big one from earlier runs is moved aside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    return path.open("ab")


class LogTail:
    """The complete lines written to a file from `offset` (default: its end now) on, a
    batch per call."""

    def __init__(self, path: Path, offset: int | None = None) -> None:
        self.path = path
        if offset is None:
            try:
                offset = path.stat().st_size
            except FileNotFoundError:
                offset = 0
        self.offset = offset
        self._partial = b""

    def lines(self) -> list[str]:
        try:
            with self.path.open("rb") as log:
                if os.fstat(log.fileno()).st_size < self.offset:
                    self.offset, self._partial = 0, b""  # truncated or replaced
                log.seek(self.offset)
                chunk = log.read(READ_CHUNK)
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in complete]


def last_lines(path: Path, n: int = EXIT_TAIL_LINES) -> list[str]:
    try:
        with path.open("rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - 64 * 1024))
            text = log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-n:]


@dataclass
class Watched:
    """One child as the terminal sees it: its log, and whether it has started serving."""

    key: str  # web, worker, activation, beat: its log is <key>.log
    label: str
    log: Path
    pid: int
    tail: LogTail
    ready: bool = False
    dead: bool = False
    shown_errors: list[float] = field(default_factory=list)
    hidden_errors: int = 0

    @property
    def state(self) -> str:
        return "down" if self.dead else "ok" if self.ready else "starting"


def json_record(line: str) -> dict[str, Any] | None:
    """The record of a JSON log line (LOG_FORMAT=json), None for a line of another format."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "level" in record else None


def message_of(line: str) -> str:
    """The message of a JSON log line, or the line itself (the READY_LINE patterns)."""
    record = json_record(line)
    return str(record.get("message", "")) if record is not None else line


def error_text(line: str) -> str | None:
    """What the terminal shows of an ERROR or CRITICAL line, None for other lines: a JSON
    record as a line of text ("<time> ERROR <logger> <message> [request <id>]"; its
    traceback stays in the log)."""
    record = json_record(line)
    if record is None:
        return line if ERROR_LINE.search(line) else None
    if record.get("level") not in ERROR_LEVELS:
        return None
    tags = [
        f"[{label} {record[name]}]"
        for label, name in (("request", "request_id"), ("workspace", "workspace_id"))
        if record.get(name) is not None
    ]
    if record.get("task"):
        tags.append(f"[task {record['task']} {record.get('task_id', '')}]".replace(" ]", "]"))
    head = [str(record.get(name, "")) for name in ("time", "level", "logger", "message")]
    return " ".join(head + tags)


def error_lines(child: Watched, lines: Iterable[str], now: float) -> list[str]:
    """The ERROR lines among `lines` to print, at most ERRORS_PER_WINDOW per window; a
    count of the others once the window has passed (so a failing loop cannot flood the
    terminal)."""
    out = []
    child.shown_errors = [t for t in child.shown_errors if now - t < ERROR_WINDOW]
    if child.hidden_errors and not child.shown_errors:
        out.append(f"{child.key} │ … {child.hidden_errors} more error lines in {child.log}")
        child.hidden_errors = 0
    for line in lines:
        text = error_text(line)
        if text is None:
            continue
        if len(child.shown_errors) >= ERRORS_PER_WINDOW:
            child.hidden_errors += 1
            continue
        child.shown_errors.append(now)
        if len(text) > MAX_ERROR_LINE:
            text = text[: MAX_ERROR_LINE - 1] + "…"
        out.append(f"{child.key} │ {text}")
    return out


# ---- the status line ----------------------------------------------------------------------------


def can_print(text: str, stream: TextIO) -> bool:
    """Whether `stream` can write `text` (an ASCII-only terminal gets ok/DOWN for ✓/✗)."""
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")  # None: an in-memory text
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def status_text(
    states: dict[str, str], rate: int | None, logs: Path | str, *, unicode: bool = True
) -> str:
    """ "web ✓ worker ✓ beat ✓ · 12 events/min · logs: var/log" """
    marks = MARKS if unicode else ASCII_MARKS
    dot = " · " if unicode else " | "
    parts = [" ".join(f"{name} {marks.get(state, state)}" for name, state in states.items())]
    if rate is not None:
        parts.append(f"{rate:,} events/min")
    parts.append(f"logs: {logs}")
    return dot.join(parts)


# ---- bin/start --info -------------------------------------------------------------------------


def _alive(pid: Any, needle: str | None = None) -> bool:
    """Whether `pid` runs (and, given `needle`, is that program: a pid left in a file by a
    launcher that was killed may belong to another process by now)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if needle is None:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return True  # no /proc (macOS): the pid check alone
    return needle in cmdline


def running_state() -> dict[str, Any] | None:
    """What the launcher running on this data folder wrote, or None when none runs."""
    state = read_private(state_path())
    if state is None or not _alive(state.get("pid"), "cdp_run"):
        return None
    return state


def info(out: Any = None) -> int:
    """`bin/start --info`: the status and credentials of the instance running on this data
    folder, from the file it keeps there; 1 when none runs. `out`: a text stream (stdout)."""
    out = out or sys.stdout
    state = running_state()
    if state is None:
        out.write(
            f"CDP is not running on the data folder {data_dir()}.\n"
            "Start it with bin/start (its output ends with the login and keys).\n"
        )
        return 1
    pids = {child.get("key"): child.get("pid") for child in state.get("children", [])}
    states = {
        key: known if _alive(pids.get(key)) else "down"
        for key, known in state.get("status", {}).get("states", {}).items()
    }
    rate = state.get("status", {}).get("events_per_minute")
    unicode = can_print("".join(MARKS.values()) + "·", out)
    started = state.get("started_at", "")
    out.write(f"CDP is running (pid {state['pid']}, since {started}).\n")
    out.write(status_text(states, rate, state.get("log_dir", log_dir()), unicode=unicode) + "\n")
    out.write("\n".join(state.get("banner", [])).rstrip() + "\n")
    return 0


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--info" not in args:
        sys.stderr.write("usage: python -m cdp.launcher --info\n")
        return 2
    return info()


if __name__ == "__main__":
    sys.exit(main())
