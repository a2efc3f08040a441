"""Workspace configuration as code: export → apply on an empty workspace → export is the
same document; applying twice changes nothing; the diff says what would change; bad documents
get errors by path and change nothing; secrets never leave; the command and the API."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from cdp import config_code
from cdp.errors import ValidationFailed
from cdp.models import AuditLog, Role
from consent.models import Purpose
from consent.services import purpose_create, purposes_install_defaults
from profiles.computed.services import computed_trait_create
from profiles.models import Source
from profiles.services import source_create
from segments.models import Segment
from segments.services import segment_create
from tests.fixtures import Tenant

pytestmark = pytest.mark.django_db


def _configure(tenant: Tenant) -> None:
    ws = tenant.workspace
    source_create(
        workspace=ws,
        name="Web shop",
        kind="javascript",
        allowed_origins=["https://shop.example.com"],
        rate_limit_per_second=500,
    )
    purposes_install_defaults(workspace=ws)
    purpose_create(workspace=ws, key="sms", name="SMS", legal_basis="consent")
    computed_trait_create(
        workspace=ws,
        actor=None,
        data={
            "key": "orders_90d",
            "name": "Orders, 90 days",
            "aggregation": "count",
            "event": "Order Completed",
            "window_days": 90,
        },
    )
    big = segment_create(
        workspace=ws,
        name="Big spenders",
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        publish=True,
        tags=["vip"],
    )
    # built on the other by id; its key sorts first, so an apply must create the other first
    segment_create(
        workspace=ws,
        name="Active big spenders",
        rule={"all": [{"segment": big.pk}, {"trait": "orders_90d", "op": "gte", "value": 1}]},
        publish=True,
    )
    segment_create(
        workspace=ws, name="Draft idea", rule={"trait": "orders_90d", "op": "gte", "value": 3}
    )


def test_export_apply_on_an_empty_workspace_export_again_is_identical(
    tenant_a: Tenant, tenant_b: Tenant
) -> None:
    _configure(tenant_a)
    doc = config_code.export(tenant_a.workspace)
    assert [s["name"] for s in doc["sources"]] == ["Alpha app", "Web shop"]
    assert {s["key"]: s["status"] for s in doc["segments"]} == {
        "active-big-spenders": "published",
        "big-spenders": "published",
        "draft-idea": "draft",
    }
    # a segment refers to another by key, never by this workspace's id
    assert doc["segments"][0]["rule"]["all"][0] == {"segment": "big-spenders"}
    # through YAML and back, as a file would go
    text = config_code.dumps(doc)
    changes = config_code.apply(tenant_b.workspace, config_code.loads(text))
    assert {c.action for c in changes} >= {"create"}
    # B had its own source: reported, never deleted
    assert any(c.action == "extra" and c.name == "Bravo app" for c in changes)
    again = config_code.export(tenant_b.workspace)
    again["sources"] = [s for s in again["sources"] if s["name"] != "Bravo app"]
    assert again == doc
    # the published segment is live in B, with members evaluated there
    assert (
        Segment.objects.get(workspace=tenant_b.workspace, key="big-spenders").status == "published"
    )


def test_applying_twice_changes_nothing(tenant_a: Tenant, tenant_b: Tenant) -> None:
    _configure(tenant_a)
    doc = config_code.export(tenant_a.workspace)
    config_code.apply(tenant_b.workspace, doc)
    audits = AuditLog.objects.filter(workspace=tenant_b.workspace).count()
    second = config_code.apply(tenant_b.workspace, doc)
    assert [c for c in second if c.action != "extra"] == []
    assert AuditLog.objects.filter(workspace=tenant_b.workspace).count() == audits


def test_the_diff_names_each_change_and_apply_makes_it(tenant_a: Tenant) -> None:
    _configure(tenant_a)
    doc = config_code.export(tenant_a.workspace)
    shop = next(s for s in doc["sources"] if s["name"] == "Web shop")
    shop["allowed_origins"] = ["https://shop.example.com", "https://m.shop.example.com"]
    seg = next(s for s in doc["segments"] if s["key"] == "big-spenders")
    seg["rule"] = {"trait": "plan", "op": "in", "value": ["pro", "team"]}
    doc["purposes"].append(
        {
            "key": "push",
            "name": "Push",
            "description": "",
            "legal_basis": "consent",
            "default_granted": False,
        }
    )
    texts = [c.text() for c in config_code.diff(tenant_a.workspace, doc)]
    assert "~ sources Web shop: allowed_origins" in texts
    assert "~ segments big-spenders: rule" in texts
    assert "+ purposes push" in texts
    assert (
        Purpose.objects.filter(workspace=tenant_a.workspace, key="push").count() == 0
    )  # diff only
    config_code.apply(tenant_a.workspace, doc)
    assert Source.objects.get(workspace=tenant_a.workspace, name="Web shop").allowed_origins == [
        "https://shop.example.com",
        "https://m.shop.example.com",
    ]
    live = Segment.objects.get(workspace=tenant_a.workspace, key="big-spenders")
    assert live.published_version is not None and live.pending_draft is None
    assert live.published_version.rule["op"] == "in"
    assert config_code.diff(tenant_a.workspace, doc) == []


def test_a_bad_document_changes_nothing_and_names_the_path(tenant_a: Tenant) -> None:
    _configure(tenant_a)
    doc = config_code.export(tenant_a.workspace)
    doc["purposes"].append({"key": "fax", "name": "Fax", "legal_basis": "consent"})
    doc["segments"][0]["rule"] = {"trait": "plan", "op": "bogus", "value": 1}
    with pytest.raises(ValidationFailed) as failed:
        config_code.apply(tenant_a.workspace, doc)
    assert any(path.startswith("segments[0].") for path in failed.value.fields)
    assert not Purpose.objects.filter(
        workspace=tenant_a.workspace, key="fax"
    ).exists()  # rolled back
    for bad, path in [
        ({"version": 2}, "version"),
        ({"version": 1, "widgets": []}, "widgets"),
        ({"version": 1, "sources": [{"name": "A"}, {"name": "A"}]}, "sources[1].name"),
        ({"version": 1, "segments": [{"name": "no key"}]}, "segments[0]"),
    ]:
        with pytest.raises(ValidationFailed) as failed:
            config_code.diff(tenant_a.workspace, bad)
        assert path in failed.value.fields, failed.value.fields


def test_no_secret_is_exported(tenant_a: Tenant) -> None:
    _configure(tenant_a)
    text = config_code.dumps(config_code.export(tenant_a.workspace), "json")
    assert tenant_a.write_key not in text and "wk_" not in text
    assert "key" not in yaml.safe_load(text)["sources"][0]


def test_the_command_exports_diffs_and_applies(
    tenant_a: Tenant, tenant_b: Tenant, tmp_path: Path
) -> None:
    _configure(tenant_a)
    path = tmp_path / "alpha.yaml"
    call_command("cdp_config", "export", "--workspace", "Alpha", "--output", str(path))
    out = io.StringIO()
    call_command(
        "cdp_config", "apply", "--workspace", "Bravo", "--file", str(path), "--dry-run", stdout=out
    )
    assert "+ segments big-spenders" in out.getvalue() and "would change" in out.getvalue()
    assert not Segment.objects.filter(workspace=tenant_b.workspace).exists()
    out = io.StringIO()
    call_command("cdp_config", "apply", "--workspace", "Bravo", "--file", str(path), stdout=out)
    assert "changed" in out.getvalue()
    out = io.StringIO()
    call_command("cdp_config", "apply", "--workspace", "Bravo", "--file", str(path), stdout=out)
    assert "Bravo: 0 definition(s) changed." in out.getvalue()
    path.write_text("version: 1\nsegments: [{key: x, name: X, rule: {trait: a, op: nope}}]\n")
    with pytest.raises(CommandError, match=r"segments\[0\]"):
        call_command("cdp_config", "apply", "--workspace", "Bravo", "--file", str(path))


def test_the_api_is_for_owners(tenant_a: Tenant, tenant_b: Tenant) -> None:
    _configure(tenant_a)
    assert tenant_a.api(Role.MARKETER).get("/api/v1/config/").status_code == 403
    doc = tenant_a.api().get("/api/v1/config/").json()
    assert doc["version"] == 1
    api_b = tenant_b.api()
    diff = api_b.post("/api/v1/config/diff/", doc, content_type="application/json").json()
    assert {
        "kind": "segments",
        "name": "big-spenders",
        "action": "create",
        "fields": [],
        "text": "+ segments big-spenders",
    } in diff["changes"]
    applied = api_b.post("/api/v1/config/apply/", doc, content_type="application/json")
    assert applied.status_code == 200
    assert AuditLog.objects.filter(workspace=tenant_b.workspace, action="config.apply").exists()
    bad = api_b.post("/api/v1/config/apply/", {"version": 7}, content_type="application/json")
    assert bad.status_code == 400 and "version" in bad.json()["error"]["detail"]["fields"]
