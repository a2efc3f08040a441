"""The prefork pool of the Celery workers (`CELERY_WORKER_POOL`): Celery's own, except that it
checks its processes every half second instead of every 5 s.

Celery starts a replacement for a pool process that died at its next check. A process
SIGKILLed (or OOM-killed) mid-task was replaced 3.5-3.9 s later in the pipeline benchmark's
crash scenario (bench/pipeline.py --only recovery): with the other process busy on a long task
(a full segment evaluation), no drain ran meanwhile and every probe waited 4.6 s. A check is a
non-blocking `waitpid` per process."""

from __future__ import annotations

from typing import Any

from celery.concurrency import asynpool, prefork

MAINTAIN_SECONDS = 0.5


class AsynPool(asynpool.AsynPool):  # type: ignore[misc]
    @property
    def timers(self) -> dict[Any, float]:
        return {self.maintain_pool: MAINTAIN_SECONDS}


class TaskPool(prefork.TaskPool):  # type: ignore[misc]
    Pool = AsynPool
