"""Dead letters within bounds. Write keys are public in client apps, so invalid events must
not be a way to fill the database: a request keeps at most MAX_DEAD_LETTERS_PER_REQUEST of
its invalid events verbatim (service.py counts the rest), every event of a request counts
against the source's rate limit (gate.py, valid or not), and a source keeps at most its daily
quota of dead-letter rows (Source.dead_letter_quota, default CDP_DEAD_LETTER_QUOTA): past it,
invalid events are only counted, per source and UTC day (DeadLetterDay).

The first refusal of a day is the alert: DeadLetterDay.quota_reached_at, an audit row
(`source.dead_letter_quota_reached`), a warning in the log, and a banner on the Sources pages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from django.db import connection, transaction

from cdp.models import Workspace, audit
from profiles.collector.keys import SourceInfo
from profiles.models import FailedEvent, Source

logger = logging.getLogger(__name__)

_ENSURE_DAY = """
INSERT INTO profiles_deadletterday (workspace_id, source_id, day, kept, not_kept)
VALUES (%s, %s, %s, 0, 0)
ON CONFLICT (source_id, day) DO NOTHING"""
_LOCK_DAY = """
SELECT id, kept, quota_reached_at FROM profiles_deadletterday
WHERE source_id = %s AND day = %s FOR UPDATE"""
_COUNT = """
UPDATE profiles_deadletterday
SET kept = kept + %s, not_kept = not_kept + %s,
    quota_reached_at = coalesce(quota_reached_at, %s)
WHERE id = %s"""


def keep(
    source: SourceInfo, *, rows: Sequence[FailedEvent], counted: int, at: datetime
) -> list[FailedEvent]:
    """Write as many of `rows` as the source's quota for the day of `at` leaves room for, in
    order; count the others plus `counted` (invalid events already left out) as not kept.
    One transaction: the day's counters and the rows agree. Returns the rows written."""
    if not rows and not counted:
        return []
    day = at.astimezone(UTC).date()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_ENSURE_DAY, [source.workspace_id, source.source_id, day])
        cursor.execute(_LOCK_DAY, [source.source_id, day])
        day_id, kept, reached_at = cursor.fetchone()
        room = max(source.dead_letter_quota - kept, 0)
        written = list(rows[:room])
        refused = len(rows) - len(written)
        alert = refused > 0 and reached_at is None
        cursor.execute(_COUNT, [len(written), refused + counted, at if refused else None, day_id])
        if written:
            FailedEvent.objects.bulk_create(written)
        if alert:
            _alert(source, at)
    return written


def _alert(source: SourceInfo, at: datetime) -> None:
    logger.warning(
        "source %s (%r, workspace %s) reached its dead-letter quota of %s for %s: further "
        "invalid events are counted, not kept",
        source.source_id,
        source.name,
        source.workspace_id,
        source.dead_letter_quota,
        at.astimezone(UTC).date(),
    )
    audit(
        workspace=Workspace.objects.get(pk=source.workspace_id),
        actor=None,
        action="source.dead_letter_quota_reached",
        target=Source(pk=source.source_id),
        detail={"day": at.astimezone(UTC).date().isoformat(), "quota": source.dead_letter_quota},
    )
