"""Filters at the collector's door: a higher app can have events dropped before they are
stored, by the identifiers they carry. Consent registers the suppression list (people who
asked to be deleted or suppressed) in its `AppConfig.ready()`; this layer knows only the
protocol.

The gate caches the total size of the filters' lists per workspace in Redis (see gate.py), so
a workspace whose lists are empty — nearly all requests — pays nothing here. A filter whose
list changes calls `gate.forget_door_size(workspace_id)`."""

from __future__ import annotations

from collections.abc import Sequence
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
