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
    """Import the task modules and freeze what exists; returns the number of objects frozen.
    Call once per process, after the application is loaded (a forked child calls it again:
    the parent's objects are already frozen and stay so)."""
    try:
        from cdp.celery import app

        app.loader.import_default_modules()
        app.finalize(auto=True)
    except Exception:  # a process that cannot load its tasks fails at its first kick instead
        logger.exception("could not import the task modules ahead of the first request")
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
