"""gunicorn config for `bench/collector.py --profile`: each worker runs under cProfile from
fork to exit and writes worker-<pid>.prof into $BENCH_PROFILE_DIR."""

from __future__ import annotations

import cProfile
import os
from pathlib import Path
from typing import Any

_profiler: cProfile.Profile | None = None


def post_fork(server: Any, worker: Any) -> None:
    global _profiler
    _profiler = cProfile.Profile()
    _profiler.enable()


def worker_exit(server: Any, worker: Any) -> None:
    if _profiler is None:
        return
    _profiler.disable()
    out = Path(os.environ.get("BENCH_PROFILE_DIR", "/tmp"))
    _profiler.dump_stats(str(out / f"worker-{os.getpid()}.prof"))
