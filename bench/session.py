"""Start the platform's processes in one session of their own, as `bin/start` runs them.

Linux schedules the processes of a session as one group (autogroup, on by default): a busy
machine is shared equally between sessions, and nice values count only between processes of
one session. `bin/start` (cdp_run) starts the web server and the Celery workers in its own
session, each in its own process group, so the workers' lower priority (CDP_WORKER_NICE) lets
the web server's requests go first. A benchmark that started each in a session of its own —
as bench/collector.py did until 2026-12-05 — measured the two as equals whatever their nice
values, and its load generator, started in the benchmark's session, is kept apart from them:
it stands for clients on other machines.

A process can only be created in an existing session by one of its members, so a small
spawner process leads the new session and starts the commands it is sent (one JSON line
each), answering with their pids; it reaps them when they exit.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import psutil

_SPAWNER = r"""
import json, subprocess, sys, threading, time
children = []
def reap():
    while True:
        for child in list(children):
            child.poll()
        time.sleep(0.2)
threading.Thread(target=reap, daemon=True).start()
for line in sys.stdin:
    order = json.loads(line)
    with open(order["log"], "ab") as log:
        child = subprocess.Popen(order["argv"], cwd=order["cwd"], env=order["env"],
                                 stdout=log, stderr=log, process_group=0)
    children.append(child)
    print(child.pid, flush=True)
while any(child.poll() is None for child in children):
    time.sleep(0.2)
"""


class Spawned:
    """A process started in the shared session: what the benchmark uses of a Popen (pid,
    poll, terminate, kill, wait). Its parent is the spawner, which reaps it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.process = psutil.Process(pid)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                alive = self.process.status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                alive = False
            if not alive:
                self.returncode = -1  # its parent, the spawner, has its exit status
        return self.returncode

    def terminate(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.process.terminate()

    def kill(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.process.kill()

    def wait(self, timeout: float | None = None) -> int:
        try:
            self.process.wait(timeout)
        except psutil.TimeoutExpired as exc:
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0) from exc
        self.returncode = -1
        return self.returncode


class SharedSession:
    def __init__(self) -> None:
        self.spawner = subprocess.Popen(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", _SPAWNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def spawn(self, argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> Spawned:
        stdin: IO[str] | None = self.spawner.stdin
        stdout: IO[str] | None = self.spawner.stdout
        assert stdin is not None and stdout is not None  # noqa: S101 - both are pipes
        order: dict[str, Any] = {"argv": argv, "cwd": str(cwd), "env": env, "log": str(log)}
        stdin.write(json.dumps(order) + "\n")
        stdin.flush()
        answer = stdout.readline()
        if not answer.strip().isdigit():
            raise SystemExit(f"the session's spawner did not start {argv[:3]}: {answer!r}")
        return Spawned(int(answer))

    def close(self) -> None:
        """The spawner leaves once the processes it started have exited (stopped by the
        benchmark, each with its process group)."""
        if self.spawner.stdin is not None:
            self.spawner.stdin.close()
        try:
            self.spawner.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.spawner.kill()
            self.spawner.wait(timeout=10)
