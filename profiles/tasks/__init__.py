"""Celery tasks of the profiles app, one module per concern; importing the package (Celery's
autodiscovery does) registers them all. Task names are stable contracts with queued messages
and the beat schedule, so each is named explicitly."""

from profiles.tasks.computed import (
    builtin_traits_refresh_all,
    builtin_traits_refresh_workspace,
    computed_trait_backfill,
    computed_traits_refresh_windows,
)
from profiles.tasks.identity import identity_graph_rebuild_task
from profiles.tasks.partitions import ensure_event_partitions
from profiles.tasks.processing import (
    process_pending_events,
    sweep_pending_events,
    vacuum_pending_events,
)

__all__ = [
    "builtin_traits_refresh_all",
    "builtin_traits_refresh_workspace",
    "computed_trait_backfill",
    "computed_traits_refresh_windows",
    "ensure_event_partitions",
    "identity_graph_rebuild_task",
    "process_pending_events",
    "sweep_pending_events",
    "vacuum_pending_events",
]
