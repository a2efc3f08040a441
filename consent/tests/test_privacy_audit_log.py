"""The privacy audit log reads as text: each entry's detail as "label: value" lines, changes
as "before → after", with the raw JSON one click further (a <details>)."""

from __future__ import annotations

import html as html_lib
import re

from cdp.models import AuditLog, Role
from consent import retention
from consent.audit_display import DetailLine, detail_json, detail_lines, value_text
from tests.fixtures import Tenant


def test_detail_lines_read_as_text() -> None:
    assert detail_lines({"role": {"before": "marketer", "after": "admin"}}) == [
        DetailLine("role", "marketer → admin")
    ]
    assert detail_lines({"before": {"event_days": None, "failed_event_days": 7},
                         "after": {"event_days": 30, "failed_event_days": 7}}) == [
        DetailLine("event days", "none → 30")
    ]  # fmt: skip
    assert detail_lines({"two_person_approval": {"before": False, "after": True}}) == [
        DetailLine("two person approval", "no → yes")
    ]
    assert detail_lines({"counts": {"events": 1200, "profiles": 1}, "type": "delete"}) == [
        DetailLine("counts", "events 1,200, profiles 1"),
        DetailLine("type", "delete"),
    ]
    assert detail_lines({"due_at": "2026-03-04T05:06:07.123+00:00"}) == [
        DetailLine("due at", "2026-03-04 05:06 UTC")
    ]
    assert detail_lines({"from": "a", "to": "b"}) == [
        DetailLine("from", "a"),
        DetailLine("to", "b"),
    ]
    assert detail_lines({}) == [] and detail_lines(None) == []
    many = value_text(list(range(20)))
    assert many.endswith("and 12 more") and many.startswith("0, 1, 2")
    assert len(value_text("x" * 5000)) == 300
    assert detail_json({"a": [1, 2]}) == '{\n  "a": [\n    1,\n    2\n  ]\n}'


def test_audit_page_shows_readable_detail_and_the_raw_json(tenant_a: Tenant) -> None:
    retention.retention_policy_set(workspace=tenant_a.workspace, event_days=30, failed_event_days=7)
    retention.retention_policy_set(workspace=tenant_a.workspace, event_days=60, failed_event_days=7)
    AuditLog.objects.create(
        workspace=tenant_a.workspace,
        action="privacy.settings",
        detail={"two_person_approval": {"before": False, "after": True}, "note": "y" * 400},
    )
    page = tenant_a.session(Role.PRIVACY_OFFICER).get("/privacy/audit/")
    assert page.status_code == 200
    html = page.content.decode()
    text = html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))
    assert "event days: 30 → 60" in text
    assert "two person approval: no → yes" in text
    assert "y" * 299 + "…" in text  # long values are cut in the text...
    # ...and whole in the raw JSON, folded in a <details>
    raw = re.findall(r"<details class=\"audit-raw\"><summary>Raw JSON</summary><pre>(.*?)</pre>",
                     html, re.DOTALL)  # fmt: skip
    assert len(raw) == 3
    assert any('"note": "' + "y" * 400 + '"' in html_lib.unescape(r) for r in raw)
    assert '"two_person_approval": {' in html_lib.unescape(raw[0])
    assert "consent/audit.css" in html
