"""The Celery queues and which tasks go to which (README "Scale-out").

A deployment runs each queue on its own workers (`bin/start --role worker --queues ingest`),
so a slow job of one kind never sits in front of another kind's messages (a Redis queue is
first in, first out). Tasks are routed by name, with patterns for whole packages, so a new
task lands on its queue without an entry here.

- `ingest`: the pipeline's drains and their sweeper, and nothing else. Every message is a
  short drain of one workspace's slot, and the event → profile → segment latency rides on
  how soon one is picked up. The jobs that rework profiles in bulk (computed-trait backfills
  and window refreshes, the hourly built-in traits — one task per workspace —, the identity
  rebuild) stay on `default`: on `ingest` a fan-out of hundreds of them would queue ahead of
  every kick. The pipeline keeps profiles current on its own (identity, computed-trait and
  segment stages run inside each drain); those jobs catch up with time and redefinitions.
- `activation`: every task named `activation.*` (syncs, forwarding, triggers).
- `ml`: every task named `segments.ml.*` (training, scoring, recommendations).
- `default`: the rest — segment refresh and window expiries, retention, privacy requests,
  the profile maintenance jobs above. Its broker name is Celery's default queue
  (`CELERY_TASK_DEFAULT_QUEUE`, `celery`), so messages queued before queues were split are
  still consumed.

`CDP_QUEUE_PREFIX` puts a prefix on every broker queue name, so deployments (or test runs)
sharing one broker do not take each other's messages.
"""

from __future__ import annotations

INGEST = "ingest"
DEFAULT = "default"
ACTIVATION = "activation"
ML = "ml"
QUEUES = (INGEST, DEFAULT, ACTIVATION, ML)
CELERY_DEFAULT_QUEUE = "celery"

# task name or glob pattern -> queue; exact names are looked up before patterns
ROUTES: dict[str, str] = {
    "profiles.tasks.process_pending_events": INGEST,
    "profiles.tasks.sweep_pending_events": INGEST,
    "activation.*": ACTIVATION,
    "segments.ml.*": ML,
}


def broker_queue(queue: str, *, prefix: str, default_queue: str) -> str:
    """The name on the broker of one of QUEUES."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}: expected one of {', '.join(QUEUES)}")
    return default_queue if queue == DEFAULT else prefix + queue


def task_routes(*, prefix: str) -> dict[str, dict[str, str]]:
    """CELERY_TASK_ROUTES: tasks with no route go to the default queue."""
    return {pattern: {"queue": prefix + queue} for pattern, queue in ROUTES.items()}


def parse_queues(text: str) -> list[str]:
    """`ingest,default` -> ["ingest", "default"]; a clear error for anything else."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"no queue named: expected a comma-separated list of {', '.join(QUEUES)}")
    unknown = [name for name in names if name not in QUEUES]
    if unknown:
        raise ValueError(
            f"unknown queue {', '.join(map(repr, unknown))}: expected a comma-separated list "
            f"of {', '.join(QUEUES)}"
        )
    return list(dict.fromkeys(names))
