from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Exists, Func, OuterRef
from django.utils import timezone

from activation.models import Delivery, DeliveryKind, DeliveryStatus, Destination, ServerKey
from activation.secrets import SecretsUnreadable
from activation.secrets import decrypt as secrets_decrypt
from activation.secrets import encrypt as secrets_encrypt
from cdp.errors import Conflict, NotFound, ValidationFailed
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


# ---- destinations ---------------------------------------------------------------------------

POLICY_FIELDS: dict[str, tuple[type, float, float]] = {
    # name: (type, minimum, maximum)
    "batch_size": (int, 1, 10_000),
    "concurrency": (int, 1, 16),
    "rate_per_second": (float, 0, 10_000),
    "timeout_seconds": (float, 0.5, 120),
    "max_attempts": (int, 1, 100),
    "max_age_seconds": (int, 0, 30 * 86400),
    "circuit_threshold": (int, 1, 1000),
    "circuit_cooldown_seconds": (int, 1, 86400),
    "retry_base_seconds": (float, 0.05, 3600),
    "retry_max_seconds": (float, 0.05, 86400),
}


def _policy(data: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (kind, low, high) in POLICY_FIELDS.items():
        if name not in data:
            continue
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.setdefault(name, []).append("expected a number")
            continue
        if kind is int and value != int(value):
            errors.setdefault(name, []).append("expected a whole number")
            continue
        if not low <= value <= high:
            errors.setdefault(name, []).append(f"expected {low:g} to {high:g}")
            continue
        out[name] = kind(value)
    return out


def _purpose_problem(workspace: Workspace, purpose: Any) -> str | None:
    from consent.enforcement import purpose_default

    if not isinstance(purpose, str) or not purpose:
        return "required: the consent purpose every send to this destination needs"
    if purpose_default(workspace_id=workspace.pk, purpose=purpose) is None:
        return f"{purpose!r} is not a consent purpose of this workspace"
    return None


@transaction.atomic
def destination_create(
    *, workspace: Workspace, data: dict[str, Any], actor: Any | None = None
) -> tuple[Destination, dict[str, str]]:
    """Create a destination. Returns it and the secrets generated for it (a webhook's signing
    secret when none was given): shown once, in the answer that creates it."""
    from activation import connectors
    from activation.connectors.webhook import new_signing_secret

    errors: dict[str, list[str]] = {}
    kind = data.get("kind")
    try:
        connector = connectors.get(str(kind))
    except KeyError:
        choices = ", ".join(c.kind for c in connectors.kinds())
        raise ValidationFailed.at("kind", f"expected one of {choices}") from None
    name = str(data.get("name") or "").strip()
    if not name:
        errors.setdefault("name", []).append("required")
    elif Destination.objects.filter(workspace=workspace, name=name).exists():
        errors.setdefault("name", []).append("a destination with this name exists")
    problem = _purpose_problem(workspace, data.get("purpose"))
    if problem:
        errors.setdefault("purpose", []).append(problem)
    config, secret_values = _split_config(connector, data.get("config") or {}, errors)
    generated: dict[str, str] = {}
    if connector.kind == "webhook" and not secret_values.get("signing_secret"):
        generated["signing_secret"] = secret_values["signing_secret"] = new_signing_secret()
    for path, messages in connector.validate(config, secret_values).items():
        errors.setdefault(f"config.{path}", []).extend(messages)
    policy = _policy(data, errors)
    if errors:
        raise ValidationFailed(errors)
    destination = Destination.objects.create(
        workspace=workspace,
        name=name,
        kind=connector.kind,
        purpose=data["purpose"],
        config=config,
        secrets_encrypted=secrets_encrypt(secret_values),
        secret_names=sorted(secret_values),
        enabled=bool(data.get("enabled", True)),
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        **policy,
    )
    audit(
        workspace=workspace,
        actor=actor,
        action="destination.create",
        target=destination,
        detail={"kind": connector.kind, "secrets": sorted(secret_values)},
    )
    return destination, generated


def _split_config(
    connector: Any, raw: Any, errors: dict[str, list[str]]
) -> tuple[dict[str, Any], dict[str, str]]:
    if not isinstance(raw, dict):
        errors.setdefault("config", []).append("expected an object")
        return {}, {}
    known = {f.name: f for f in connector.fields}
    config: dict[str, Any] = {}
    secret_values: dict[str, str] = {}
    for key, value in raw.items():
        f = known.get(key)
        if f is None:
            errors.setdefault(f"config.{key}", []).append(
                f"not a {connector.label} setting ({', '.join(known)})"
            )
            continue
        if f.secret:
            if value not in (None, ""):
                if not isinstance(value, str):
                    errors.setdefault(f"config.{key}", []).append("expected a string")
                else:
                    secret_values[key] = value
            continue
        config[key] = value
    for f in connector.fields:
        if not f.secret and f.name not in config and f.default is not None:
            config[f.name] = f.default
    return config, secret_values


@transaction.atomic
def destination_update(
    *, destination: Destination, data: dict[str, Any], actor: Any | None = None
) -> Destination:
    """Change settings; secrets given replace those stored (an empty value keeps it; null
    removes it), names not given are kept."""
    from activation import connectors

    connector = connectors.get(destination.kind)
    errors: dict[str, list[str]] = {}
    if "name" in data:
        name = str(data.get("name") or "").strip()
        if not name:
            errors.setdefault("name", []).append("required")
        elif (
            Destination.objects.filter(workspace_id=destination.workspace_id, name=name)
            .exclude(pk=destination.pk)
            .exists()
        ):
            errors.setdefault("name", []).append("a destination with this name exists")
        else:
            destination.name = name
    if "purpose" in data:
        problem = _purpose_problem(destination.workspace, data.get("purpose"))
        if problem:
            errors.setdefault("purpose", []).append(problem)
        else:
            destination.purpose = data["purpose"]
    stored = secrets_decrypt(destination.secrets_encrypted)
    if "config" in data:
        raw = data["config"]
        removed = (
            {k for k, v in raw.items() if v is None and k in stored}
            if isinstance(raw, dict)
            else set()
        )
        config, given = _split_config(
            connector,
            {k: v for k, v in raw.items() if k not in removed} if isinstance(raw, dict) else raw,
            errors,
        )
        merged_config = {**destination.config, **config}
        stored = {k: v for k, v in {**stored, **given}.items() if k not in removed}
        for path, messages in connector.validate(merged_config, stored).items():
            errors.setdefault(f"config.{path}", []).extend(messages)
        destination.config = merged_config
    for name, value in _policy(data, errors).items():
        setattr(destination, name, value)
    if "enabled" in data:
        destination.enabled = bool(data["enabled"])
    if errors:
        raise ValidationFailed(errors)
    destination.secrets_encrypted = secrets_encrypt(stored)
    destination.secret_names = sorted(stored)
    destination.updated_at = timezone.now()
    destination.save()
    audit(
        workspace=destination.workspace,
        actor=actor,
        action="destination.update",
        target=destination,
        detail={
            "fields": sorted(k for k in data if k != "config")
            + [f"config.{k}" for k in (data.get("config") or {})]
        },
    )
    return destination


@transaction.atomic
def destination_delete(*, destination: Destination, actor: Any | None = None) -> None:
    from activation.models import Stream, Sync

    used = [s.name for s in Sync.objects.filter(destination=destination)] + [
        s.name for s in Stream.objects.filter(destination=destination)
    ]
    if used:
        raise Conflict(
            f"{destination.name} is used by {', '.join(used)}: delete those first.",
            code="destination_in_use",
            detail={"used_by": used},
        )
    audit(
        workspace=destination.workspace,
        actor=actor,
        action="destination.delete",
        target=destination,
    )
    destination.delete()


def destination_test(*, destination: Destination) -> dict[str, Any]:
    """The "Send test" button: one harmless message, reported as request and answer."""
    from activation import connectors
    from activation.delivery.engine import target_of

    try:
        target = target_of(destination)
    except SecretsUnreadable as exc:
        return {"ok": False, "message": str(exc), "request": {}, "response": {}}
    result = connectors.get(destination.kind).test(target)
    return {
        "ok": result.ok,
        "message": result.message,
        "request": result.request,
        "response": result.response,
    }


# ---- deliveries -----------------------------------------------------------------------------


@transaction.atomic
def deliveries_retry(
    *,
    workspace: Workspace,
    ids: list[int] | None = None,
    destination_id: int | None = None,
    actor: Any | None = None,
) -> dict[str, int]:
    """Replay dead letters (the given ones, or every dead one of a destination or of the
    workspace): back to pending with a fresh attempt budget and the same idempotency key.
    An audience delivery that a later one of the same sync and profile superseded is not
    replayed (it would roll the destination back): it is cancelled as `superseded`."""
    rows = Delivery.objects.filter(workspace_id=workspace.pk, status=DeliveryStatus.DEAD)
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    if destination_id is not None:
        rows = rows.filter(destination_id=destination_id)
    later = Delivery.objects.filter(sync_id=OuterRef("sync_id"), pk__gt=OuterRef("pk")).exclude(
        status=DeliveryStatus.CANCELLED
    )
    superseded = rows.filter(kind__in=["upsert", "remove"]).filter(
        Exists(later.filter(profile_id=OuterRef("profile_id")))
        # or a later audience batch carrying the profile
        | Exists(
            later.filter(kind=DeliveryKind.BULK).filter(
                profile_ids__contains=Func(
                    OuterRef("profile_id"), template="ARRAY[%(expressions)s]::bigint[]"
                )
            )
        )
    )
    now = timezone.now()
    skipped = superseded.update(
        status=DeliveryStatus.CANCELLED,
        reason="superseded",
        error="a later delivery for this profile replaced it",
        finished_at=now,
    )
    destinations = set(rows.values_list("destination_id", flat=True).distinct())
    replayed = rows.update(
        status=DeliveryStatus.PENDING,
        attempts=0,
        created_at=now,  # the give-up age counts from the replay
        next_attempt_at=now,
        finished_at=None,
        reason="",
        error="",
    )
    audit(
        workspace=workspace,
        actor=actor,
        action="deliveries.retry",
        detail={"replayed": replayed, "superseded": skipped, "ids": (ids or [])[:100]},
    )
    from activation import tasks

    for destination_id_ in destinations:
        transaction.on_commit(partial(tasks.kick, destination_id_))
    return {"replayed": replayed, "superseded": skipped}
