"""The suppression list: keyed hashes of identifiers whose events are dropped at the door."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

from cdp.models import Workspace
from consent.models import SuppressedIdentifier


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
