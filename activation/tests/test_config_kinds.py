"""The activation app's kinds of configuration as code: destinations (secrets as references),
syncs, streams, metrics, experiments, placements and offers survive export → apply on an
empty workspace → export; applying twice changes nothing; secrets resolve from the
environment or a file, rotate, and never appear in a document."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from activation import config_kinds, services
from activation.decisions.models import Offer
from activation.decisions.services import offer_create, placement_create
from activation.experiments.models import Experiment, Exposure
from activation.experiments.services import experiment_create, experiment_start, metric_create
from activation.models import Destination, Stream, Sync
from activation.secrets import decrypt
from activation.streams.services import stream_create
from activation.syncs.services import sync_create
from cdp import config_code
from cdp.errors import ValidationFailed
from cdp.models import AuditLog
from consent.services import purposes_install_defaults
from profiles.models import Source
from segments.models import Segment
from segments.services import segment_create
from tests.fixtures import Tenant

pytestmark = pytest.mark.django_db

AUTHORIZATION = "Bearer tok_live_51f0c2d9e8"  # noqa: S105 - a test value
SIGNING = "whsec_" + "B" * 44
AUTH_VAR = "CDP_SECRET_CRM_HOOK_AUTHORIZATION"
SIGNING_VAR = "CDP_SECRET_CRM_HOOK_SIGNING_SECRET"


def _configure(tenant: Tenant) -> None:
    """One of each activation definition, made through the services as the API would."""
    ws = tenant.workspace
    purposes_install_defaults(workspace=ws)
    segment = segment_create(
        workspace=ws, name="Pro plan", rule={"trait": "plan", "op": "eq", "value": "pro"},
        publish=True,
    )  # fmt: skip
    destination, _ = services.destination_create(
        workspace=ws,
        data={
            "name": "CRM hook",
            "kind": "webhook",
            "purpose": "analytics",
            "config": {
                "url": "https://hooks.example.com/cdp",
                "headers": {"X-Team": "growth"},
                "authorization": AUTHORIZATION,
                "signing_secret": SIGNING,
            },
            "batch_size": 50,
            "rate_per_second": 5,
        },
    )
    metric_create(
        workspace=ws, actor=None,
        data={"key": "purchase", "name": "Purchase", "kind": "conversion",
              "event": "Order Completed", "window_days": 14},
    )  # fmt: skip
    sync_create(
        workspace=ws,
        data={"name": "Pros to CRM", "segment": segment.pk, "destination": destination.pk,
              "schedule": "interval", "interval_minutes": 30,
              "holdout": {"percent": 10, "metric": "purchase"}},
    )  # fmt: skip
    stream_create(
        workspace=ws,
        data={"name": "Orders to CRM", "source": tenant.source.pk, "destination": destination.pk,
              "filters": {"types": ["track"], "events": ["Order Completed"]},
              "transform": {"drop": ["email"]}},
    )  # fmt: skip
    running = experiment_create(
        workspace=ws, actor=None,
        data={"key": "new_checkout", "name": "New checkout",
              "variants": [{"key": "control"}, {"key": "one_page", "payload": {"x": 1}}],
              "primary_metric": "purchase", "targeting": {"segment": segment.pk}},
    )  # fmt: skip
    experiment_start(experiment=running, actor=None)
    experiment_create(
        workspace=ws, actor=None,
        data={"key": "banner", "name": "Banner", "variants": [{"key": "a"}, {"key": "b"}],
              "primary_metric": "purchase", "coverage": 0.5},
    )  # fmt: skip
    placement_create(
        workspace=ws, actor=None,
        data={"key": "home_hero", "name": "Home hero",
              "content_schema": {"type": "object", "required": ["title"],
                                 "properties": {"title": {"type": "string"}}},
              "default_content": {"title": "Welcome"}},
    )  # fmt: skip
    offer_create(
        workspace=ws, actor=None,
        data={"key": "spring_sale", "name": "Spring sale", "placement": "home_hero",
              "content": {"title": "20 % off"}, "eligibility": {"segment": segment.pk},
              "starts_at": "2026-03-01T00:00:00Z", "priority": 5, "cap_day": 3},
    )  # fmt: skip


def _env(monkeypatch: pytest.MonkeyPatch, authorization: str = AUTHORIZATION) -> None:
    monkeypatch.setenv(AUTH_VAR, authorization)
    monkeypatch.setenv(SIGNING_VAR, SIGNING)


def _secrets(tenant: Tenant, name: str = "CRM hook") -> dict[str, str]:
    destination = Destination.objects.get(workspace=tenant.workspace, name=name)
    return decrypt(destination.secrets_encrypted)


def _item(doc: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(i for i in doc[section] if name in (i.get("name"), i.get("key")))
    return found


def test_export_apply_on_an_empty_workspace_export_again_is_identical(
    tenant_a: Tenant, tenant_b: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(tenant_a)
    doc = config_code.export(tenant_a.workspace)
    hook = _item(doc, "destinations", "CRM hook")
    assert hook["secrets"] == {
        "authorization": f"env:{AUTH_VAR}",
        "signing_secret": f"env:{SIGNING_VAR}",
    }
    assert hook["config"] == {
        "url": "https://hooks.example.com/cdp",
        "headers": {"X-Team": "growth"},
    }
    assert "circuit_state" not in hook and "paused_until" not in hook
    sync = _item(doc, "syncs", "Pros to CRM")
    assert (sync["segment"], sync["destination"]) == ("pro-plan", "CRM hook")
    assert sync["holdout"] == {"percent": 10.0, "metric": "purchase"}
    assert _item(doc, "streams", "Orders to CRM")["source"] == "Alpha app"
    # ids become keys; a sync's holdout experiment belongs to its sync
    assert _item(doc, "experiments", "new_checkout")["targeting"] == {"segment": "pro-plan"}
    assert {e["key"]: e["status"] for e in doc["experiments"]} == {
        "banner": "draft", "new_checkout": "running",
    }  # fmt: skip
    assert _item(doc, "offers", "spring_sale")["eligibility"] == {"segment": "pro-plan"}

    _env(monkeypatch)
    changes = config_code.apply(tenant_b.workspace, config_code.loads(config_code.dumps(doc)))
    made = {(c.kind, c.name) for c in changes if c.action == "create"}
    assert {k for k, _ in made} >= {
        "destinations", "syncs", "streams", "metrics", "experiments", "placements", "offers",
    }  # fmt: skip
    again = config_code.export(tenant_b.workspace)
    again["sources"] = [s for s in again["sources"] if s["name"] != "Bravo app"]
    assert again == doc
    assert _secrets(tenant_b) == {"authorization": AUTHORIZATION, "signing_secret": SIGNING}
    synced = Sync.objects.get(workspace=tenant_b.workspace, name="Pros to CRM")
    assert synced.holdout_experiment is not None
    assert synced.holdout_experiment.status == "running"
    assert Experiment.objects.get(workspace=tenant_b.workspace, key="new_checkout").status == (
        "running"
    )


def test_applying_twice_changes_nothing(
    tenant_a: Tenant, tenant_b: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(tenant_a)
    _env(monkeypatch)
    doc = config_code.export(tenant_a.workspace)
    config_code.apply(tenant_b.workspace, doc)
    audits = AuditLog.objects.filter(workspace=tenant_b.workspace)
    before = (audits.count(), audits.filter(action="config.apply").count())
    second = config_code.apply(tenant_b.workspace, doc)
    assert [c for c in second if c.action != "extra"] == []
    assert (audits.count(), audits.filter(action="config.apply").count()) == before


def test_a_changed_field_is_an_update_that_takes_effect(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(tenant_a)
    doc = config_code.export(tenant_a.workspace)
    _item(doc, "destinations", "CRM hook")["batch_size"] = 200
    _item(doc, "syncs", "Pros to CRM")["interval_minutes"] = 15
    _item(doc, "streams", "Orders to CRM")["enabled"] = False
    _item(doc, "offers", "spring_sale")["priority"] = 9
    _item(doc, "placements", "home_hero")["name"] = "Hero"
    _item(doc, "experiments", "banner")["coverage"] = 1.0
    _item(doc, "experiments", "new_checkout")["status"] = "stopped"
    texts = [c.text() for c in config_code.diff(tenant_a.workspace, doc)]
    assert "~ destinations CRM hook: batch_size" in texts
    assert "~ syncs Pros to CRM: interval_minutes" in texts
    assert "~ experiments new_checkout: status" in texts
    # the secrets stay as they are: unresolvable references keep the stored values
    config_code.apply(tenant_a.workspace, doc)
    ws = tenant_a.workspace
    assert Destination.objects.get(workspace=ws, name="CRM hook").batch_size == 200
    assert _secrets(tenant_a) == {"authorization": AUTHORIZATION, "signing_secret": SIGNING}
    assert Sync.objects.get(workspace=ws, name="Pros to CRM").interval_minutes == 15
    assert Stream.objects.get(workspace=ws, name="Orders to CRM").enabled is False
    assert Offer.objects.get(workspace=ws, key="spring_sale").priority == 9
    assert Experiment.objects.get(workspace=ws, key="banner").coverage == 1.0
    assert Experiment.objects.get(workspace=ws, key="new_checkout").status == "stopped"
    assert AuditLog.objects.filter(workspace=ws, action="experiment.stopped").exists()
    assert AuditLog.objects.filter(workspace=ws, action="destination.update").exists()
    assert config_code.diff(ws, doc) == []


def test_a_missing_variable_on_create_is_an_error_at_the_secret_and_nothing_is_made(
    tenant_a: Tenant, tenant_b: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(tenant_a)
    doc = config_code.export(tenant_a.workspace)
    monkeypatch.setenv(SIGNING_VAR, SIGNING)
    monkeypatch.delenv(AUTH_VAR, raising=False)
    with pytest.raises(ValidationFailed) as failed:
        config_code.apply(tenant_b.workspace, doc)
    assert failed.value.fields == {
        "destinations[0].secrets.authorization": [f"environment variable {AUTH_VAR} is not set"]
    }
    ws = tenant_b.workspace
    assert not Destination.objects.filter(workspace=ws).exists()
    assert not Segment.objects.filter(workspace=ws).exists()  # applied before: rolled back
    assert not Source.objects.filter(workspace=ws, name="Alpha app").exists()


def test_a_secret_rotates_through_its_reference(
    tenant_a: Tenant, tenant_b: Tenant, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _configure(tenant_a)
    _env(monkeypatch)
    doc = config_code.export(tenant_a.workspace)
    config_code.apply(tenant_b.workspace, doc)
    hook = _item(doc, "destinations", "CRM hook")
    # a changed value under the same variable: the diff shows it, apply stores it, and a
    # second apply changes nothing
    monkeypatch.setenv(AUTH_VAR, "Bearer rotated-0")

    def made(changes: list[config_code.Change]) -> list[str]:
        return [c.text() for c in changes if c.action != "extra"]

    assert made(config_code.diff(tenant_b.workspace, doc)) == [
        "~ destinations CRM hook: secrets.authorization"
    ]
    config_code.apply(tenant_b.workspace, doc)
    assert _secrets(tenant_b)["authorization"] == "Bearer rotated-0"
    assert made(config_code.diff(tenant_b.workspace, doc)) == []
    assert made(config_code.apply(tenant_b.workspace, doc)) == []
    # with another field changed at the same time
    monkeypatch.setenv(AUTH_VAR, "Bearer rotated-1")
    hook["timeout_seconds"] = 5
    changes = config_code.apply(tenant_b.workspace, doc)
    assert [c.text() for c in changes if c.action == "update"] == [
        "~ destinations CRM hook: timeout_seconds"
    ]
    assert _secrets(tenant_b)["authorization"] == "Bearer rotated-1"
    # another reference: a file's content, stripped; recorded and exported from then on
    monkeypatch.setattr(config_kinds, "SECRET_FILE_DIRS", (tmp_path,))
    secret_file = tmp_path / "crm-token"
    secret_file.write_text("Bearer rotated-2\n")
    hook["secrets"]["authorization"] = f"file:{secret_file}"
    config_code.apply(tenant_b.workspace, doc)
    assert _secrets(tenant_b) == {"authorization": "Bearer rotated-2", "signing_secret": SIGNING}
    exported = _item(config_code.export(tenant_b.workspace), "destinations", "CRM hook")
    assert exported["secrets"]["authorization"] == f"file:{secret_file}"
    rotations = AuditLog.objects.filter(workspace=tenant_b.workspace, action="destination.update")
    assert rotations.count() == 3
    # a reference that does not resolve on update keeps the stored secret
    hook["secrets"]["authorization"] = "env:CDP_SECRET_NOT_SET_ANYWHERE"
    config_code.apply(tenant_b.workspace, doc)
    assert _secrets(tenant_b)["authorization"] == "Bearer rotated-2"
    # an item without `secrets` leaves them as they are
    del hook["secrets"]
    hook["timeout_seconds"] = 7
    config_code.apply(tenant_b.workspace, doc)
    assert _secrets(tenant_b) == {"authorization": "Bearer rotated-2", "signing_secret": SIGNING}
    hook["secrets"] = {
        "authorization": "env:CDP_SECRET_NOT_SET_ANYWHERE",
        "signing_secret": f"env:{SIGNING_VAR}",
    }
    assert [c for c in config_code.diff(tenant_b.workspace, doc) if c.action != "extra"] == []


def test_bad_references_are_errors_by_path_and_never_echo_the_value(
    tenant_a: Tenant, tenant_b: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(tenant_a)
    _env(monkeypatch)
    doc = config_code.export(tenant_a.workspace)
    hook = _item(doc, "destinations", "CRM hook")
    for secrets, config_extra, path in [
        ({"authorization": AUTHORIZATION}, {}, "destinations[0].secrets.authorization"),
        ({"authorization": "file:relative/path"}, {}, "destinations[0].secrets.authorization"),
        # never the platform's own settings: only CDP_SECRET_* variables, secrets folders
        ({"authorization": "env:SECRET_KEY"}, {}, "destinations[0].secrets.authorization"),
        ({"authorization": "env:CDP_SECRETS_KEY"}, {}, "destinations[0].secrets.authorization"),
        ({"authorization": "file:/proc/self/environ"}, {}, "destinations[0].secrets.authorization"),
        (
            {"authorization": "file:/run/secrets/../../proc/self/environ"},
            {},
            "destinations[0].secrets.authorization",
        ),
        ({"password": "env:X"}, {}, "destinations[0].secrets.password"),
        ({}, {"authorization": AUTHORIZATION}, "destinations[0].config.authorization"),
    ]:
        bad = {**doc, "destinations": [{**hook, "secrets": secrets,
                                        "config": {**hook["config"], **config_extra}}]}  # fmt: skip
        with pytest.raises(ValidationFailed) as failed:
            config_code.apply(tenant_b.workspace, bad)
        assert path in failed.value.fields, failed.value.fields
        assert AUTHORIZATION not in str(failed.value.detail)
    # a webhook's signing secret would be generated, and shown to nobody: a reference is needed
    unsigned = {**hook, "secrets": {"authorization": f"env:{AUTH_VAR}"}}
    with pytest.raises(ValidationFailed) as failed:
        config_code.apply(tenant_b.workspace, {**doc, "destinations": [unsigned]})
    assert "destinations[0].secrets.signing_secret" in failed.value.fields
    assert not Destination.objects.filter(workspace=tenant_b.workspace).exists()


def test_unknown_segments_destinations_and_sources_are_errors_by_path(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(tenant_a)
    doc = config_code.export(tenant_a.workspace)
    doc["syncs"].append(
        {**_item(doc, "syncs", "Pros to CRM"), "name": "Other", "segment": "nope",
         "destination": "Nowhere", "holdout": None}
    )  # fmt: skip
    doc["streams"].append(
        {**_item(doc, "streams", "Orders to CRM"), "name": "Other", "source": "Gone"}
    )
    with pytest.raises(ValidationFailed) as failed:
        config_code.apply(tenant_a.workspace, doc)
    assert set(failed.value.fields) == {"streams[1].source"}  # streams come before syncs
    doc["streams"].pop()
    with pytest.raises(ValidationFailed) as failed:
        config_code.apply(tenant_a.workspace, doc)
    assert set(failed.value.fields) == {"syncs[1].segment", "syncs[1].destination"}
    assert "'nope'" in failed.value.fields["syncs[1].segment"][0]
    doc["syncs"].pop()
    doc["offers"][0]["placement"] = "sidebar"
    with pytest.raises(ValidationFailed) as failed:
        config_code.apply(tenant_a.workspace, doc)
    assert "offers[0].placement" in failed.value.fields


def test_experiment_status_moves_forward_through_the_services_only(tenant_a: Tenant) -> None:
    _configure(tenant_a)
    doc = config_code.export(tenant_a.workspace)
    index = next(i for i, e in enumerate(doc["experiments"]) if e["key"] == "new_checkout")
    for status, message in [("draft", "cannot go from running to draft"), ("shipped", "ship")]:
        doc["experiments"][index]["status"] = status
        with pytest.raises(ValidationFailed) as failed:
            config_code.apply(tenant_a.workspace, doc)
        assert message in failed.value.fields[f"experiments[{index}].status"][0]
    doc["experiments"][index]["status"] = "running"
    doc["experiments"][index]["variants"][1]["weight"] = 3.0  # fixed once it runs
    with pytest.raises(ValidationFailed) as failed:
        config_code.apply(tenant_a.workspace, doc)
    assert f"experiments[{index}].variants" in failed.value.fields
    doc = config_code.export(tenant_a.workspace)
    # a new one may be made stopped: started and stopped in the apply's transaction
    doc["experiments"].append(
        {**doc["experiments"][index], "key": "old_test", "status": "stopped", "targeting": None}
    )
    config_code.apply(tenant_a.workspace, doc)
    old = Experiment.objects.get(workspace=tenant_a.workspace, key="old_test")
    assert old.status == "stopped" and old.started_at is not None
    assert not Exposure.objects.filter(experiment=old).exists()
    doc["metrics"][0]["window_days"] = 30  # the metric library has no update
    with pytest.raises(ValidationFailed) as failed:
        config_code.apply(tenant_a.workspace, doc)
    assert "metrics[0].window_days" in failed.value.fields


def test_no_secret_value_is_exported(
    tenant_a: Tenant, tenant_b: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(tenant_a)
    _env(monkeypatch)
    config_code.apply(tenant_b.workspace, config_code.export(tenant_a.workspace))
    for tenant in (tenant_a, tenant_b):
        for fmt in ("yaml", "json"):
            text = config_code.dumps(config_code.export(tenant.workspace), fmt)
            assert AUTHORIZATION not in text and SIGNING not in text and "tok_live" not in text
    stored = Destination.objects.get(workspace=tenant_b.workspace, name="CRM hook").secret_refs
    assert AUTHORIZATION not in str(stored)


def test_the_command_exports_the_activation_sections(tenant_a: Tenant) -> None:
    _configure(tenant_a)
    out = io.StringIO()
    call_command("cdp_config", "export", "--workspace", "Alpha", stdout=out)
    text = out.getvalue()
    for section in (
        "destinations", "syncs", "streams", "metrics", "experiments", "placements", "offers",
    ):  # fmt: skip
        assert f"\n{section}:\n" in text, section
    assert f"authorization: env:{AUTH_VAR}" in text and AUTHORIZATION not in text
