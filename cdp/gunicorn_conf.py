"""gunicorn settings for the web server that `cdp_run` starts (`--config python:cdp.gunicorn_conf`).

Prometheus multiprocess mode (cdp/metrics.py): when a worker exits, its live-gauge files in
PROMETHEUS_MULTIPROC_DIR are marked dead so /metrics stops summing them (its counters stay)."""

from __future__ import annotations

import os
from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
