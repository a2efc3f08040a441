"""A server process settles before its first request or task: it imports what a first
request would import later (the Celery task modules, loaded by the first kick of the pipeline:
a fifth of a second holding the interpreter lock while up to 16 requests wait) and then moves
every object it has so far out of the garbage collector's sight (`gc.freeze`).

Why the freeze: a loaded process holds about 280,000 objects (Django, DRF, Celery, the ML
libraries), almost none of them ever freed. Python's oldest-generation collection walks them
all: 100-240 ms with the interpreter lock held, measured in gunicorn workers under single-event
ingest, one to three times a minute per worker. Every thread of the process stood still
meanwhile, which set the collector's p99. Frozen, they are never walked again; what requests
allocate is still collected as before."""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def settle() -> int:
    """Import what a first kick would and freeze what exists; returns the number of objects
    frozen. Call once per web server process, after the application is loaded. The task
    modules are imported directly (Celery's autodiscovery, forced), not through
    `import_default_modules`, whose signal would have Celery's Django fixup set Django up again
    (its logging configuration included) and run the system checks."""
    try:
        from cdp.celery import app

        app.autodiscover_tasks(force=True)
        app.finalize(auto=True)
        connection = app.connection_for_write()
        try:
            connection.transport  # noqa: B018 - loads the transport's module, connects nothing
        finally:
            connection.release()
    except Exception:  # a process that cannot load its tasks fails at its first kick instead
        logger.exception("could not import the task modules ahead of the first request")
    return freeze()


def freeze() -> int:
    """Collect once, then move every object that exists now to the permanent generation."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
