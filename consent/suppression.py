"""The suppression list: keyed hashes of identifiers whose events are dropped at the door.

It plugs into profiles through two registries (filled in ConsentConfig.ready()): the
collector's door filter (`SuppressionDoor`, events dropped before they are stored) and a
pipeline stage (`suppression_stage`, events accepted before their person was suppressed and
still queued when a deletion ran)."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from cdp.errors import ValidationFailed
from cdp.models import Workspace, audit
from consent.models import SuppressedIdentifier
from profiles import identifiers
from profiles.collector import gate
from profiles.collector.door import Identifiers
from profiles.collector.keys import SourceInfo
from profiles.identifiers import event_identifiers
from profiles.pipeline.stages import Batch


def identifier_digest(workspace_id: int, identifier_type: str, normalized_value: str) -> str:
    message = f"{workspace_id}\x1f{identifier_type}\x1f{normalized_value}".encode()
    key = settings.CDP_SUPPRESSION_HMAC_KEY.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def suppressed_digests(*, workspace_id: int, digests: Iterable[str]) -> set[str]:
    wanted = list(set(digests))
    if not wanted:
        return set()
    return set(
        SuppressedIdentifier.objects.filter(
            workspace_id=workspace_id, digest__in=wanted
        ).values_list("digest", flat=True)
    )


def suppression_count(*, workspace_id: int) -> int:
    return SuppressedIdentifier.objects.filter(workspace_id=workspace_id).count()


@transaction.atomic
def suppression_add(
    *, workspace: Workspace, identifier_type: str, normalized_value: str, reason: str = "deletion"
) -> SuppressedIdentifier:
    digest = identifier_digest(workspace.pk, identifier_type, normalized_value)
    row, _ = SuppressedIdentifier.objects.get_or_create(
        workspace=workspace,
        digest=digest,
        defaults={"identifier_type": identifier_type, "reason": reason},
    )
    transaction.on_commit(lambda: gate.forget_door_size(workspace.pk))
    return row


@transaction.atomic
def suppression_remove(*, workspace: Workspace, identifier_type: str, normalized_value: str) -> int:
    digest = identifier_digest(workspace.pk, identifier_type, normalized_value)
    deleted, _ = SuppressedIdentifier.objects.filter(workspace=workspace, digest=digest).delete()
    transaction.on_commit(lambda: gate.forget_door_size(workspace.pk))
    return deleted


MAX_IMPORT_LINES = 10_000
MAX_REPORTED = 100  # bad lines named in an error


def line_of(path: str) -> int:
    """`identifiers[4]` -> 5: the line of the import a path of its error names."""
    return int(path[path.index("[") + 1 : -1]) + 1


@dataclass(frozen=True, slots=True)
class SuppressionImport:
    added: int
    already: int  # suppressed before (or listed twice)


def parse_suppression_lines(lines: Sequence[str]) -> list[tuple[str, str]]:
    """Identifiers as `type:value`, one per line (a bare email is taken as one); blank lines
    and lines starting with # are skipped. Every bad line is reported, as the path
    `identifiers[i]` (i counted from 0, line i + 1)."""
    if len(lines) > MAX_IMPORT_LINES:
        raise ValidationFailed.at(
            "identifiers", f"at most {MAX_IMPORT_LINES:,} per import (got {len(lines):,})"
        )
    found: list[tuple[str, str]] = []
    errors: dict[str, str] = {}
    for index, raw in enumerate(lines):
        line = raw.strip() if isinstance(raw, str) else raw
        if not isinstance(line, str):
            errors[f"identifiers[{index}]"] = "expected a string"
            continue
        if not line or line.startswith("#"):
            continue
        spec = line if ":" in line or "@" not in line else f"email:{line}"
        try:
            found.append(identifiers.parse_identifier(spec))
        except ValueError as exc:
            errors[f"identifiers[{index}]"] = str(exc)
    if errors:
        first_path, first = next(iter(errors.items()))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValidationFailed(
            dict(list(errors.items())[:MAX_REPORTED]),
            message=f"line {line_of(first_path)}: {first}{more}; nothing was imported",
        )
    if not found:
        raise ValidationFailed.at("identifiers", "none given (one type:value per line)")
    return found


@transaction.atomic
def suppression_import(
    *, workspace: Workspace, lines: Sequence[str], actor: Any = None
) -> SuppressionImport:
    """Suppress many identifiers at once (e.g. a list kept in another tool): all or nothing,
    only keyed hashes stored, the audit log keeps counts and never the identifiers."""
    parsed = parse_suppression_lines(lines)
    wanted = {identifier_digest(workspace.pk, kind, value): kind for kind, value in parsed}
    known = suppressed_digests(workspace_id=workspace.pk, digests=wanted)
    SuppressedIdentifier.objects.bulk_create(
        [
            SuppressedIdentifier(workspace=workspace, digest=d, identifier_type=k, reason="import")
            for d, k in wanted.items()
            if d not in known
        ],
        ignore_conflicts=True,  # one added meanwhile by a deletion is suppressed all the same
        batch_size=1000,
    )
    added = len(wanted) - len(known)
    result = SuppressionImport(added=added, already=len(parsed) - added)
    audit(
        workspace=workspace,
        actor=actor,
        action="privacy.suppression_import",
        detail={"added": result.added, "already": result.already},
    )
    transaction.on_commit(lambda: gate.forget_door_size(workspace.pk))
    return result


_COUNT_DROPS = (
    "INSERT INTO consent_suppressiondropcount (workspace_id, source_id, day, dropped)"
    " VALUES (%s, %s, %s, %s) ON CONFLICT (workspace_id, source_id, day)"
    " DO UPDATE SET dropped = consent_suppressiondropcount.dropped + EXCLUDED.dropped"
)


def suppressed_events(*, workspace_id: int, events: Sequence[Identifiers]) -> list[bool]:
    """For each event (given as its identifiers), whether one of them is suppressed."""
    digests = [[identifier_digest(workspace_id, t, v) for t, v in ids] for ids in events]
    hits = suppressed_digests(workspace_id=workspace_id, digests=(d for ds in digests for d in ds))
    return [bool(hits.intersection(ds)) for ds in digests]


def suppression_drops_count(*, workspace_id: int, source_id: int, day: date, count: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_DROPS, [workspace_id, source_id, day, count])


class SuppressionDoor:
    """The collector's door filter (profiles.collector.door): the events of suppressed
    people are dropped before they are stored, and counted per source and day."""

    def size(self, *, workspace_id: int) -> int:
        return suppression_count(workspace_id=workspace_id)

    def blocked(self, *, workspace_id: int, events: Sequence[Identifiers]) -> list[bool]:
        return suppressed_events(workspace_id=workspace_id, events=events)

    def record_dropped(self, *, source: SourceInfo, day: date, count: int) -> None:
        suppression_drops_count(
            workspace_id=source.workspace_id, source_id=source.source_id, day=day, count=count
        )


def suppression_stage(batch: Batch) -> None:
    """The pipeline's check (runs before identity resolution, under the identity lock: a
    deletion, which holds it exclusively, has committed its suppressions before this batch
    reads them), for events accepted before their person was suppressed: those carrying a
    suppressed identifier are deleted unprocessed and counted as dropped."""
    events = batch.events
    workspaces = sorted({int(e.workspace_id) for e in events})
    if not SuppressedIdentifier.objects.filter(workspace_id__in=workspaces).exists():
        return
    blocked: set[int] = set()
    for workspace_id in workspaces:
        mine = [e for e in events if int(e.workspace_id) == workspace_id]
        found = suppressed_events(
            workspace_id=workspace_id,
            events=[
                event_identifiers(
                    user_id=e.user_id,
                    anonymous_id=e.anonymous_id,
                    previous_id=e.previous_id,
                    traits=e.traits if isinstance(e.traits, dict) else {},
                    context=e.context if isinstance(e.context, dict) else {},
                )
                for e in mine
            ],
        )
        blocked |= {int(e.pk) for e, no in zip(mine, found, strict=True) if no}
    for (workspace_id, source_id, day), n in Counter(
        (int(e.workspace_id), e.source_id or 0, e.received_at.date())
        for e in batch.discard(blocked)
    ).items():
        suppression_drops_count(workspace_id=workspace_id, source_id=source_id, day=day, count=n)
