"""Retention: whole days of arrival past a workspace's period are deleted — raw events, the
profile-event rows derived from them, dead letters — and nothing else: not newer days, not
another workspace's events, not the profiles and traits they built."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from cdp.models import AuditLog, Role
from consent import retention, tasks
from consent.models import RetentionPolicy
from profiles.models import Event, FailedEvent, Profile, ProfileEvent
from profiles.tests.test_identity_resolution import process, profile_of, send
from tests.fixtures import Tenant, post_collector

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CUTOFF = datetime(2026, 10, 21, tzinfo=UTC)  # 30 days before NOW, at the start of that day


def at(moment: datetime, client: Client, tenant: Tenant, *events: dict[str, Any]) -> None:
    with time_machine.travel(moment, tick=False):
        send(client, tenant, *events)
        process()


def lost(moment: datetime, client: Client, tenant: Tenant) -> None:
    """A dead letter: neither userId nor anonymousId (the request is answered 400, the
    event kept in failed events)."""
    with time_machine.travel(moment, tick=False):
        body = {"batch": [{"type": "track", "event": "Lost"}]}
        assert post_collector(client, "/v1/batch", body, write_key=tenant.write_key).status_code
    assert FailedEvent.objects.filter(workspace=tenant.workspace, received_at=moment).exists()


def order(user: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Order Completed", **extra}


def raw_count(tenant: Tenant, user: str) -> int:
    return Event.objects.filter(workspace=tenant.workspace, user_id=user).count()


def profile_event_count(tenant: Tenant, user: str) -> int:
    return ProfileEvent.objects.filter(profile=profile_of(tenant, "user_id", user)).count()


@pytest.fixture
def history(tenant_a: Tenant, tenant_b: Tenant, client: Client) -> None:
    retention.retention_policy_set(workspace=tenant_a.workspace, event_days=30, failed_event_days=7)
    identify = {"type": "identify", "userId": "old", "traits": {"plan": "pro"}}
    at(CUTOFF - timedelta(days=9), client, tenant_a, identify, order("old"), order("old"))
    at(CUTOFF - timedelta(microseconds=1), client, tenant_a, order("edge-out"))
    at(CUTOFF, client, tenant_a, order("edge-in"))
    at(NOW - timedelta(days=2), client, tenant_a, order("old"), order("recent"))
    # dead letters (neither userId nor anonymousId): one 8 days old, one 6 days old
    lost(NOW - timedelta(days=8), client, tenant_a)
    lost(NOW - timedelta(days=6), client, tenant_a)
    # the other workspace keeps the defaults (365 days, dead letters 30 days)
    at(CUTOFF - timedelta(days=9), client, tenant_b, order("b-old"))
    lost(NOW - timedelta(days=8), client, tenant_b)


@pytest.mark.usefixtures("history")
def test_whole_days_past_the_period_are_deleted_and_nothing_else(
    tenant_a: Tenant, tenant_b: Tenant
) -> None:
    assert raw_count(tenant_a, "old") == 4 and profile_event_count(tenant_a, "old") == 4
    with time_machine.travel(NOW, tick=False):
        reports = {r.workspace_id: r for r in retention.retention_enforce_all()}

    a = reports[tenant_a.workspace.pk]
    assert a.event_cutoff == CUTOFF.isoformat()
    assert (a.events, a.profile_events, a.failed_events) == (4, 4, 1)
    assert a.day_counts == {"2026-10-12": 3, "2026-10-20": 1}
    # the old events are gone from both tables; the profile and its traits stay
    assert raw_count(tenant_a, "old") == 1 and profile_event_count(tenant_a, "old") == 1
    assert profile_of(tenant_a, "user_id", "old").traits["plan"] == "pro"
    # the day boundary: one microsecond before the cut-off's midnight goes, midnight stays
    assert raw_count(tenant_a, "edge-out") == 0 and profile_event_count(tenant_a, "edge-out") == 0
    assert raw_count(tenant_a, "edge-in") == 1 and profile_event_count(tenant_a, "edge-in") == 1
    assert raw_count(tenant_a, "recent") == 1
    assert FailedEvent.objects.filter(workspace=tenant_a.workspace).count() == 1

    # the other workspace's own (longer) periods: nothing of it is past them
    b = reports[tenant_b.workspace.pk]
    assert (b.events, b.failed_events) == (0, 0)
    assert raw_count(tenant_b, "b-old") == 1 and profile_event_count(tenant_b, "b-old") == 1
    assert FailedEvent.objects.filter(workspace=tenant_b.workspace).count() == 1
    assert Profile.objects.filter(workspace=tenant_b.workspace).count() == 1

    # recorded on the policy and in the audit log (only where something was deleted)
    policy = RetentionPolicy.objects.get(workspace=tenant_a.workspace)
    assert policy.last_run_at == NOW and policy.last_run["events"] == 4
    assert AuditLog.objects.filter(
        workspace=tenant_a.workspace, action="retention.enforce"
    ).exists()
    assert not AuditLog.objects.filter(
        workspace=tenant_b.workspace, action="retention.enforce"
    ).exists()
    assert RetentionPolicy.objects.get(workspace=tenant_b.workspace).event_days == 365

    # a second run (or one that overlapped a crash) finds nothing more
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        again = retention.retention_enforce(workspace=tenant_a.workspace)
    assert (again.events, again.failed_events, again.days) == (0, 0, 0)


@pytest.mark.usefixtures("history")
def test_keep_forever(tenant_a: Tenant) -> None:
    retention.retention_policy_set(
        workspace=tenant_a.workspace, event_days=None, failed_event_days=None
    )
    with time_machine.travel(NOW, tick=False):
        report = retention.retention_enforce(workspace=tenant_a.workspace)
    assert report.deleted == 0 and report.event_cutoff is None
    assert raw_count(tenant_a, "old") == 4
    with time_machine.travel(NOW, tick=False):  # the beat task, as the worker runs it
        assert tasks.retention_enforce_all.apply().get() == 0


def test_retention_api(tenant_a: Tenant, tenant_b: Tenant) -> None:
    url = "/api/v1/privacy/retention/"
    owner = tenant_a.api(Role.OWNER)
    body = owner.get(url).json()
    assert (body["event_days"], body["failed_event_days"]) == (365, 30)
    assert body["last_run_at"] is None

    changed = owner.patch(url, {"event_days": 90}, content_type="application/json")
    assert changed.status_code == 200, changed.content
    # shorter: pending for the grace period (test_a_shorter_period_waits_out_its_grace_period)
    assert (changed.json()["event_days"], changed.json()["failed_event_days"]) == (365, 30)
    assert changed.json()["pending"]["event_days"] == 90
    assert tenant_b.api(Role.OWNER).get(url).json()["event_days"] == 365
    forever = tenant_a.api(Role.PRIVACY_OFFICER).patch(
        url, {"failed_event_days": None}, content_type="application/json"
    )
    assert forever.json()["failed_event_days"] is None
    assert AuditLog.objects.filter(workspace=tenant_a.workspace, action="retention.update").count()

    for bad, message in [
        ({"event_days": 0}, "event_days: expected 1 to 36,500 days"),
        ({"event_days": "30"}, "event_days: expected a whole number of days"),
        ({"event_days": True}, "event_days: expected a whole number of days"),
        ({"failed_event_days": 40000}, "failed_event_days: expected 1 to 36,500 days"),
        ({"keep": 3}, "keep: not a retention setting"),
    ]:
        response = owner.patch(url, bad, content_type="application/json")
        assert response.status_code == 400, bad
        assert response.json()["error"]["message"].startswith(message), response.json()
    assert owner.get(url).json()["event_days"] == 365  # bad input changed nothing

    for role in (Role.MARKETER, Role.ANALYST):
        assert tenant_a.api(role).get(url).status_code == 403
        patched = tenant_a.api(role).patch(url, {"event_days": 1}, content_type="application/json")
        assert patched.status_code == 403


def test_a_shorter_period_waits_out_its_grace_period(tenant_a: Tenant, settings: Any) -> None:
    """Shortening retention deletes in bulk: an owner asks, it is shown as pending for
    CDP_RETENTION_GRACE_DAYS (anyone managing privacy may cancel it), then the job applies it."""
    settings.CDP_RETENTION_GRACE_DAYS = 7
    owner, officer = tenant_a.users[Role.OWNER], tenant_a.users[Role.PRIVACY_OFFICER]
    ws = tenant_a.workspace
    asked = datetime(2026, 6, 1, 12, tzinfo=UTC)
    with time_machine.travel(asked, tick=False):
        policy = retention.retention_policy_set(
            workspace=ws, event_days=30, failed_event_days=7, actor=owner
        )
    assert (policy.event_days, policy.failed_event_days) == (365, 30)  # unchanged for now
    assert policy.pending is not None
    assert policy.pending["effective_at"] == (asked + timedelta(days=7)).isoformat()

    with time_machine.travel(asked + timedelta(days=6), tick=False):
        retention.retention_enforce(workspace=ws)
    assert RetentionPolicy.objects.get(workspace=ws).event_days == 365  # still waiting
    with time_machine.travel(asked + timedelta(days=7, minutes=1), tick=False):
        retention.retention_enforce(workspace=ws)
    applied = RetentionPolicy.objects.get(workspace=ws)
    assert (applied.event_days, applied.failed_event_days, applied.pending) == (30, 7, None)
    actions = list(
        AuditLog.objects.filter(workspace=ws, action__startswith="retention.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions[:2] == ["retention.cut_scheduled", "retention.cut_applied"]

    # a second shortening, cancelled by an officer before it takes effect
    retention.retention_policy_set(workspace=ws, event_days=10, failed_event_days=7, actor=owner)
    retention.retention_cut_cancel(workspace=ws, actor=officer)
    cancelled = RetentionPolicy.objects.get(workspace=ws)
    assert (cancelled.event_days, cancelled.pending) == (30, None)
    with pytest.raises(Exception, match="No shortening"):
        retention.retention_cut_cancel(workspace=ws, actor=officer)
    # a longer period applies at once and replaces a waiting shortening
    retention.retention_policy_set(workspace=ws, event_days=5, failed_event_days=7, actor=owner)
    longer = retention.retention_policy_set(
        workspace=ws, event_days=60, failed_event_days=7, actor=officer
    )
    assert (longer.event_days, longer.pending) == (60, None)


def test_the_retention_api_shows_and_cancels_a_pending_cut(tenant_a: Tenant) -> None:
    owner, officer = tenant_a.api(Role.OWNER), tenant_a.api(Role.PRIVACY_OFFICER)
    url = "/api/v1/privacy/retention/"
    cut = owner.patch(url, {"event_days": 30}, content_type="application/json").json()
    assert cut["event_days"] == 365 and cut["pending"]["event_days"] == 30
    assert officer.delete(url + "pending/").json()["pending"] is None
    again = officer.delete(url + "pending/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "no_pending_cut"
