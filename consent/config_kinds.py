"""The consent app's part of workspace configuration as code (cdp.config_code): purposes."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from cdp import config_code
from cdp.errors import ValidationFailed
from cdp.models import Workspace, audit
from consent.models import LegalBasis, Purpose
from consent.services import purpose_create

FIELDS = ("key", "name", "description", "legal_basis", "default_granted")


def export_purposes(workspace: Workspace) -> list[dict[str, Any]]:
    return [
        {name: getattr(purpose, name) for name in FIELDS}
        for purpose in Purpose.objects.filter(workspace=workspace)
    ]


def apply_purpose(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    config_code.only(item, set(FIELDS), {"key", "legal_basis"})
    if current is None:
        purpose_create(
            workspace=workspace,
            key=item["key"],
            name=item.get("name", ""),
            legal_basis=item["legal_basis"],
            default_granted=item.get("default_granted"),
            description=item.get("description", ""),
            actor=actor,
        )
        return
    purpose = Purpose.objects.select_for_update().get(workspace=workspace, key=item["key"])
    changes = {k: v for k, v in item.items() if k != "key" and v != current.get(k)}
    legal_basis = changes.get("legal_basis", purpose.legal_basis)
    if legal_basis not in LegalBasis.values:
        raise ValidationFailed.at("legal_basis", f"expected one of {', '.join(LegalBasis.values)}")
    if (
        changes.get("default_granted", purpose.default_granted)
        and legal_basis == LegalBasis.CONSENT
    ):
        raise ValidationFailed.at(
            "default_granted", "under consent nobody is in before they say yes"
        )
    for name, value in changes.items():
        setattr(purpose, name, value)
    purpose.updated_at = timezone.now()
    purpose.save(update_fields=[*changes, "updated_at"])
    audit(
        workspace=workspace,
        actor=actor,
        action="consent.purpose_update",
        target=purpose,
        detail={"changed": sorted(changes)},
    )


def register() -> None:
    config_code.register(
        key="purposes", order=20, identity="key", export=export_purposes, apply=apply_purpose
    )
