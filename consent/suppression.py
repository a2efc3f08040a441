"""The suppression list: keyed hashes of identifiers whose events are dropped at the door."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from cdp.errors import ValidationFailed
from cdp.models import Workspace, audit
from consent.models import SuppressedIdentifier
from profiles import identifiers


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
    from profiles.collector import gate

    digest = identifier_digest(workspace.pk, identifier_type, normalized_value)
    row, _ = SuppressedIdentifier.objects.get_or_create(
        workspace=workspace,
        digest=digest,
        defaults={"identifier_type": identifier_type, "reason": reason},
    )
    transaction.on_commit(lambda: gate.forget_suppression_count(workspace.pk))
    return row


@transaction.atomic
def suppression_remove(*, workspace: Workspace, identifier_type: str, normalized_value: str) -> int:
    from profiles.collector import gate

    digest = identifier_digest(workspace.pk, identifier_type, normalized_value)
    deleted, _ = SuppressedIdentifier.objects.filter(workspace=workspace, digest=digest).delete()
    transaction.on_commit(lambda: gate.forget_suppression_count(workspace.pk))
    return deleted


MAX_IMPORT_LINES = 10_000


@dataclass(frozen=True, slots=True)
class SuppressionImport:
    added: int
    already: int  # suppressed before (or listed twice)


def parse_suppression_lines(lines: Sequence[str]) -> list[tuple[str, str]]:
    """Identifiers as `type:value`, one per line (a bare email is taken as one); blank lines
    and lines starting with # are skipped. Every bad line is reported with its number."""
    if len(lines) > MAX_IMPORT_LINES:
        raise ValidationFailed(
            f"identifiers: at most {MAX_IMPORT_LINES:,} per import (got {len(lines):,})",
            detail={"field": "identifiers"},
        )
    found: list[tuple[str, str]] = []
    errors: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip() if isinstance(raw, str) else raw
        if not isinstance(line, str):
            errors.append({"line": number, "message": "expected a string"})
            continue
        if not line or line.startswith("#"):
            continue
        spec = line if ":" in line or "@" not in line else f"email:{line}"
        try:
            found.append(identifiers.parse_identifier(spec))
        except ValueError as exc:
            errors.append({"line": number, "message": str(exc)})
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValidationFailed(
            f"line {first['line']}: {first['message']}{more}; nothing was imported",
            code="bad_identifiers",
            detail={"field": "identifiers", "errors": errors[:100]},
        )
    if not found:
        raise ValidationFailed(
            "identifiers: none given (one type:value per line)", detail={"field": "identifiers"}
        )
    return found


@transaction.atomic
def suppression_import(
    *, workspace: Workspace, lines: Sequence[str], actor: Any = None
) -> SuppressionImport:
    """Suppress many identifiers at once (e.g. a list kept in another tool): all or nothing,
    only keyed hashes stored, the audit log keeps counts and never the identifiers."""
    from profiles.collector import gate

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
    transaction.on_commit(lambda: gate.forget_suppression_count(workspace.pk))
    return result


def suppression_drop_from_batch(events: Sequence[Any]) -> tuple[list[Any], int]:
    """The pipeline's check, for events accepted before their person was suppressed (still
    queued when a deletion ran): those carrying a suppressed identifier are deleted unprocessed
    and counted as dropped. Returns the events to process and how many were dropped."""
    from profiles.identifiers import event_identifiers

    workspaces = sorted({int(e.workspace_id) for e in events})
    if not SuppressedIdentifier.objects.filter(workspace_id__in=workspaces).exists():
        return list(events), 0
    digests: dict[int, list[str]] = {}
    for e in events:
        ids = event_identifiers(
            user_id=e.user_id,
            anonymous_id=e.anonymous_id,
            previous_id=e.previous_id,
            traits=e.traits if isinstance(e.traits, dict) else {},
            context=e.context if isinstance(e.context, dict) else {},
        )
        digests[int(e.pk)] = [identifier_digest(int(e.workspace_id), t, v) for t, v in ids]
    hits = set(
        SuppressedIdentifier.objects.filter(
            workspace_id__in=workspaces, digest__in={d for ds in digests.values() for d in ds}
        ).values_list("digest", flat=True)
    )
    dropped = [e for e in events if hits.intersection(digests[int(e.pk)])]
    if not dropped:
        return list(events), 0
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM profiles_event WHERE id = ANY(%s)", [[int(e.pk) for e in dropped]]
        )
        for (workspace_id, source_id, day), n in Counter(
            (int(e.workspace_id), e.source_id, e.received_at.date()) for e in dropped
        ).items():
            cursor.execute(
                "INSERT INTO consent_suppressiondropcount (workspace_id, source_id, day, dropped)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (workspace_id, source_id, day)"
                " DO UPDATE SET dropped = consent_suppressiondropcount.dropped"
                " + EXCLUDED.dropped",
                [workspace_id, source_id or 0, day, n],
            )
    gone = {int(e.pk) for e in dropped}
    return [e for e in events if int(e.pk) not in gone], len(dropped)
