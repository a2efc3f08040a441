from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from activation.models import ServerKey
from cdp.errors import NotFound
from cdp.models import Workspace, audit


@transaction.atomic
def server_key_create(*, workspace: Workspace, name: str, actor: Any | None = None) -> ServerKey:
    key = ServerKey.objects.create(workspace=workspace, name=name.strip() or "server key")
    audit(workspace=workspace, actor=actor, action="server_key.create", target=key)
    return key


@transaction.atomic
def server_key_revoke(*, workspace: Workspace, key_id: int, actor: Any | None = None) -> ServerKey:
    key = ServerKey.objects.filter(workspace=workspace, pk=key_id).first()
    if key is None:
        raise NotFound("No such server key.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit(workspace=workspace, actor=actor, action="server_key.revoke", target=key)
    return key


def server_key_provision(workspace: Workspace, owner: Any) -> dict[str, str]:
    """The bootstrap's step (cdp.services.register_provisioner): one live server key, shown
    when it is made (it is stored as a digest)."""
    if workspace.server_keys.filter(revoked_at__isnull=True).exists():
        return {}
    key = server_key_create(workspace=workspace, name="default", actor=owner)
    return {"server_key": key.secret or ""}
