"""Filters at the collector's door: a higher app can have events dropped before they are
stored, by the identifiers they carry. Consent registers the suppression list (people who
asked to be deleted or suppressed) in its `AppConfig.ready()`; this layer knows only the
protocol.

The gate caches the total size of the filters' lists per workspace in Redis (see gate.py), so
a workspace whose lists are empty — nearly all requests — pays nothing here. A filter whose
list changes calls `gate.forget_door_size(workspace_id)`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from profiles.collector.keys import SourceInfo

Identifiers = list[tuple[str, str]]  # (type, normalised value) of one event


class DoorFilter(Protocol):
    def size(self, *, workspace_id: int) -> int:
        """Entries on the filter's list for the workspace (0: it drops nothing)."""
        ...

    def blocked(self, *, workspace_id: int, events: Sequence[Identifiers]) -> list[bool]:
        """For each event (given as its identifiers), whether it must be dropped."""
        ...

    def record_dropped(self, *, source: SourceInfo, day: date, count: int) -> None:
        """Count what was dropped (in the ingest's transaction)."""
        ...


_FILTERS: dict[str, DoorFilter] = {}


def register(name: str, door_filter: DoorFilter) -> None:
    _FILTERS[name] = door_filter


def filters() -> list[DoorFilter]:
    return list(_FILTERS.values())


def size(*, workspace_id: int) -> int:
    return sum(f.size(workspace_id=workspace_id) for f in _FILTERS.values())


@dataclass(eq=False)
class _Count:
    done: threading.Event = field(default_factory=threading.Event)
    value: int | None = None


_counting: dict[int, _Count] = {}
_counting_lock = threading.Lock()


def shared_size(*, workspace_id: int) -> int:
    """`size`, with the requests of this process that ask while a count of the workspace is
    under way sharing its answer (when the gate's cached size expires, every request in
    flight would count, each on its own database connection)."""
    with _counting_lock:
        count = _counting.get(workspace_id)
        leads = count is None
        if count is None:
            count = _counting[workspace_id] = _Count()
    if not leads:
        count.done.wait(timeout=10)
        return count.value if count.value is not None else size(workspace_id=workspace_id)
    try:
        count.value = size(workspace_id=workspace_id)
        return count.value
    finally:
        with _counting_lock:
            _counting.pop(workspace_id, None)
        count.done.set()
