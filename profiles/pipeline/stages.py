"""The processing pipeline as an ordered list of stages. Each stage gets the batch of claimed
events (in the claim's transaction) and may drop events, read the identity resolution, or
update what it owns. Profiles registers its own stages (identity resolution, computed traits,
counters); higher apps register theirs in `AppConfig.ready()` — consent the suppression check
and the consent log, segments the real-time membership — so this layer never imports them.

Orders in use (gaps leave room): 10 suppression (consent), 20 identity, 30 consent log
(consent), 40 computed traits, 50 segment membership (segments), 60 forwarding (activation),
90 counters and schema, 95 decision records (activation), 99 segment member counts
(segments: the batch's last write, so two drains hold a segment's row lock only while
committing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from profiles.identity.resolve import Resolution
from profiles.pipeline.rows import EventLike


@dataclass(slots=True)
class Batch:
    events: list[EventLike]
    resolution: Resolution = field(default_factory=Resolution)
    dropped: int = 0  # events a stage discarded unprocessed (e.g. of suppressed people)
    may_defer: bool = False  # identity may leave events whose profile another worker holds
    overdue: set[int] = field(default_factory=set)  # deferred too long: may not be again
    deferred: set[int] = field(default_factory=set)  # left queued for a later batch
    # what a stage leaves for a later one (keys named after the app, e.g. "segments.…")
    notes: dict[str, Any] = field(default_factory=dict)

    def defer(self, events: list[EventLike]) -> None:
        """Take these events out of the batch unprocessed; they stay queued (their claim
        ends with the transaction) and a later batch takes them, oldest first."""
        if events:
            self.deferred |= {int(e.pk) for e in events}
            self.events = [e for e in self.events if int(e.pk) not in self.deferred]

    def discard(self, event_ids: set[int]) -> list[EventLike]:
        """Delete these events unprocessed (the raw rows too) and take them out of the
        batch; returns them."""
        gone = [e for e in self.events if int(e.pk) in event_ids]
        if gone:
            with connection.cursor() as cursor:
                cursor.execute(
                    "DELETE FROM profiles_event WHERE id = ANY(%s) "
                    "AND received_at BETWEEN %s AND %s",  # prunes to the events' partitions
                    [
                        [int(e.pk) for e in gone],
                        min(e.received_at for e in gone),
                        max(e.received_at for e in gone),
                    ],
                )
            self.events = [e for e in self.events if int(e.pk) not in event_ids]
            self.dropped += len(gone)
        return gone


StageRun = Callable[[Batch], None]


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    order: int
    run: StageRun


_STAGES: dict[str, Stage] = {}


def register(name: str, run: StageRun, *, order: int) -> None:
    """Add (or replace, by name) a stage; stages run by ascending order."""
    _STAGES[name] = Stage(name, order, run)


def stages() -> list[Stage]:
    return sorted(_STAGES.values(), key=lambda s: (s.order, s.name))
