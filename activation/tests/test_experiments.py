"""Experiments end to end on real Postgres: definitions checked with clear errors, the life
of an experiment, sticky first exposures (once, even under concurrent calls; kept through
a merge; never moved by a ramp), one Experiment Viewed event per exposure, results read from
the per-profile events (lift, CUPED, SRM, guardrails, Holm), privacy, the API and roles."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from activation import privacy as activation_privacy
from activation.experiments import analysis, services
from activation.experiments.models import Experiment, ExperimentStatus, Exposure
from cdp.errors import Conflict, ValidationFailed
from profiles.models import Event, Profile, ProfileEvent
from profiles.pipeline import queue
from profiles.privacy import Subject
from tests.fixtures import Tenant, post_collector


def metrics(tenant: Tenant) -> None:
    for data in (
        {"key": "purchase", "name": "Purchase", "kind": "conversion", "event": "Order Completed",
         "window_days": 14},
        {"key": "revenue", "name": "Revenue", "kind": "sum", "event": "Order Completed",
         "property": "revenue", "window_days": 14, "winsorize_percentile": 99},
        {"key": "refunds", "name": "Refunds", "kind": "count", "event": "Refund Issued",
         "window_days": 14, "higher_is_better": False},
    ):  # fmt: skip
        services.metric_create(workspace=tenant.workspace, actor=None, data=data)


def experiment(tenant: Tenant, **extra: Any) -> Experiment:
    data = {
        "key": "new_checkout", "name": "New checkout", "hypothesis": "One page converts more",
        "variants": [{"key": "control", "weight": 1}, {"key": "one_page", "weight": 1,
                                                       "payload": {"layout": "single"}}],
        "primary_metric": "purchase", "secondary_metrics": ["revenue"],
        "guardrail_metrics": ["refunds"], **extra,
    }  # fmt: skip
    return services.experiment_create(workspace=tenant.workspace, actor=None, data=data)


@pytest.mark.django_db
def test_definitions_are_checked_with_clear_errors(tenant_a: Tenant) -> None:
    metrics(tenant_a)
    with pytest.raises(ValidationFailed) as bad:
        services.experiment_create(
            workspace=tenant_a.workspace, actor=None,
            data={"key": "X", "name": "", "variants": [{"key": "a"}], "primary_metric": "nope",
                  "coverage": 1.5, "targeting": {"trait": "plan", "op": "gt", "value": "x"},
                  "colour": "red"},
        )  # fmt: skip
    fields = bad.value.detail["fields"]
    assert "starting with a letter" in str(fields["key"])
    assert "a name of 1 to 200 characters" in str(fields["name"])
    assert "2 to 10 variants" in str(fields["variants"])
    assert "no metric 'nope' (metrics: purchase, refunds, revenue)" in str(fields["primary_metric"])
    assert "at most 1" in str(fields["coverage"])
    assert any(path.startswith("targeting") for path in fields)
    assert fields["colour"] == ["unknown field"]
    with pytest.raises(ValidationFailed) as bad_metric:
        services.metric_create(
            workspace=tenant_a.workspace, actor=None,
            data={"key": "avg", "name": "Avg", "kind": "sum", "event": "Order Completed",
                  "property": "a..b", "window_days": 0},
        )  # fmt: skip
    assert set(bad_metric.value.detail["fields"]) == {"property", "window_days"}


@pytest.mark.django_db
def test_life_of_an_experiment_and_sticky_ramp_safe_assignment(tenant_a: Tenant) -> None:
    metrics(tenant_a)
    exp = experiment(tenant_a, coverage=0.2)
    people = [Profile.objects.create(workspace=tenant_a.workspace) for _ in range(400)]
    assert services.assign(experiment=exp, profile_id=people[0].pk) is None  # a draft
    exp = services.experiment_start(experiment=exp, actor=None)
    with pytest.raises(Conflict) as twice:
        services.experiment_start(experiment=exp, actor=None)
    assert twice.value.code == "experiment_state"
    with pytest.raises(ValidationFailed, match="cannot change once the experiment has started"):
        services.experiment_update(experiment=exp, actor=None, data={"variants": []})
    early = {p.pk: services.assign(experiment=exp, profile_id=p.pk) for p in people}
    entered = {pid: a.variant for pid, a in early.items() if a is not None}
    assert 0.12 < len(entered) / len(people) < 0.28
    assert Exposure.objects.filter(experiment=exp).count() == len(entered)
    assert all(a.first_exposure for a in early.values() if a is not None)
    # ramp to 60 %: nobody moves, more come in
    exp = services.experiment_update(experiment=exp, actor=None, data={"coverage": 0.6})
    later = {p.pk: services.assign(experiment=exp, profile_id=p.pk) for p in people}
    kept = {pid: later[pid] for pid in entered}
    assert all(a is not None and a.variant == entered[pid] for pid, a in kept.items())
    assert all(a is not None and not a.first_exposure for a in kept.values())
    assert 0.5 < sum(a is not None for a in later.values()) / len(people) < 0.7
    chosen = [a for a in later.values() if a is not None and a.variant == "one_page"]
    assert chosen and chosen[0].payload == {"layout": "single"}
    # shipped: the winner for everyone, nothing recorded
    exp = services.experiment_ship(experiment=exp, actor=None, variant="one_page")
    newcomer = Profile.objects.create(workspace=tenant_a.workspace)
    shipped = services.assign(experiment=exp, profile_id=newcomer.pk)
    assert shipped is not None and shipped.variant == "one_page" and shipped.reason == "shipped"
    assert not Exposure.objects.filter(profile_id=newcomer.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_one_exposure_and_one_event_under_concurrent_calls_and_through_a_merge(
    tenant_a: Tenant,
) -> None:
    metrics(tenant_a)
    exp = services.experiment_start(experiment=experiment(tenant_a), actor=None)
    client = Client()

    def send(*events: dict[str, Any]) -> None:
        batch = [{"type": "track", "event": "Page", "messageId": f"m-{random.random()}", **e}
                 for e in events]  # fmt: skip
        assert post_collector(client, "/v1/batch", {"batch": batch},
                              write_key=tenant_a.write_key).status_code == 200  # fmt: skip
        while queue.drain(batch_size=500)[1]:
            pass

    send({"anonymousId": "anon-1"})
    visitor = Profile.objects.get(workspace=tenant_a.workspace, identities__value="anon-1")
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: services.assign(experiment=exp, profile_id=visitor.pk),
                                range(12)))  # fmt: skip
    connection.close()
    assert len({a.variant for a in answers if a is not None}) == 1
    assert sum(a.first_exposure for a in answers if a is not None) == 1
    assert Exposure.objects.filter(experiment=exp).count() == 1
    variant = answers[0].variant if answers[0] else None
    while queue.drain(batch_size=500)[1]:
        pass
    viewed = Event.objects.filter(workspace=tenant_a.workspace, event="Experiment Viewed")
    assert viewed.count() == 1
    assert viewed.get().properties == {
        "experiment_id": "new_checkout", "experiment_name": "New checkout",
        "variation_id": variant, "variation_name": variant,
    }  # fmt: skip
    # the visitor signs up on another device first, then logs in here: the profiles merge and
    # the person keeps the variant the visitor saw
    send({"userId": "u-1"})
    send({"userId": "u-1", "anonymousId": "anon-1"})
    person = Profile.objects.get(workspace=tenant_a.workspace, merged_into__isnull=True,
                                 identities__value="u-1")  # fmt: skip
    again = services.assign(experiment=exp, profile_id=person.pk)
    assert again is not None and again.variant == variant and not again.first_exposure
    assert Exposure.objects.filter(experiment=exp).count() == 1


@pytest.mark.django_db
def test_results_show_the_lift_cuped_srm_and_guardrails(tenant_a: Tenant) -> None:
    metrics(tenant_a)
    exp = services.experiment_start(experiment=experiment(tenant_a), actor=None)
    Experiment.objects.filter(pk=exp.pk).update(started_at=timezone.now() - timedelta(days=30))
    exp.refresh_from_db()
    rng = random.Random(5)
    now = timezone.now()
    exposures, events, event_id = [], [], 800_000_000
    for i in range(3_000):
        profile = Profile.objects.create(workspace=tenant_a.workspace)
        variant = "control" if i % 2 == 0 else "one_page"
        exposed = now - timedelta(days=20, minutes=i)
        exposures.append(Exposure(
            experiment=exp, workspace_id=tenant_a.workspace.pk, profile_id=profile.pk,
            variant=variant, exposed_at=exposed,
        ))  # fmt: skip
        loyal = rng.random() < 0.3  # buys before and after: what CUPED uses
        rate = (0.35 if loyal else 0.05) * (1.5 if variant == "one_page" else 1.0)
        for when, chance in ((-3, 0.6 if loyal else 0.05), (3, rate)):
            if rng.random() < chance:
                event_id += 1
                events.append(ProfileEvent(
                    event_id=event_id, workspace_id=tenant_a.workspace.pk, profile_id=profile.pk,
                    origin_profile_id=profile.pk, timestamp=exposed + timedelta(days=when),
                    type="track", event="Order Completed",
                    properties={"revenue": str(rng.choice([20, 40, 60, 5000]))},
                ))  # fmt: skip
        if variant == "one_page" and rng.random() < 0.08:
            event_id += 1
            events.append(ProfileEvent(
                event_id=event_id, workspace_id=tenant_a.workspace.pk, profile_id=profile.pk,
                origin_profile_id=profile.pk, timestamp=exposed + timedelta(days=1),
                type="track", event="Refund Issued", properties={},
            ))  # fmt: skip
    Exposure.objects.bulk_create(exposures)
    ProfileEvent.objects.bulk_create(events)
    results = analysis.analyse(exp)
    primary, revenue, refunds = results["metrics"]
    assert primary["role"] == "primary" and primary["metric"] == "purchase"
    assert [v["n"] for v in primary["variants"]] == [1_500, 1_500]
    lift = primary["comparisons"][0]
    assert lift["variant"] == "one_page" and lift["relative"] > 0.2
    assert lift["significant_adjusted"] and lift["p_value_adjusted"] >= lift["p_value"]
    assert primary["cuped"]["variance_reduction"] > 0.05
    assert results["srm"]["flagged"] is False and results["can_ship"]
    assert results["method"] == "sequential (always valid)"
    # revenue sent as text, summed and winsorised at the 99th percentile
    assert revenue["variants"][0]["mean"] < 0.4 * 5000
    # the refunds guardrail: only the treatment has them, and more refunds is worse
    assert refunds["comparisons"][0]["absolute"] > 0
    assert results["guardrails_failed"] == [{"metric": "refunds", "variant": "one_page"}]
    analysis.record_history(exp, results)
    exp.refresh_from_db()
    assert exp.history[-1]["lifts"]["one_page"]["relative"] == pytest.approx(lift["relative"])
    # a broken split: 55/45 over 3,000 units is a sample-ratio mismatch
    Exposure.objects.filter(experiment=exp, variant="control", profile_id__in=list(
        Exposure.objects.filter(experiment=exp, variant="control")
        .values_list("profile_id", flat=True)[:150])).update(variant="one_page")  # fmt: skip
    broken = analysis.analyse(exp)
    assert broken["srm"]["flagged"] and not broken["can_ship"]
    # and shipping is refused on it, unless forced
    with pytest.raises(Conflict) as refused:
        services.experiment_ship(experiment=exp, actor=None, variant="one_page")
    assert refused.value.code == "sample_ratio_mismatch"
    assert refused.value.detail["units"] == {"control": 1_350, "one_page": 1_650}
    shipped = services.experiment_ship(experiment=exp, actor=None, variant="one_page", force=True)
    assert shipped.status == ExperimentStatus.SHIPPED


@pytest.mark.django_db
def test_privacy_export_and_deletion_cover_exposures(tenant_a: Tenant) -> None:
    metrics(tenant_a)
    exp = services.experiment_start(experiment=experiment(tenant_a), actor=None)
    person = Profile.objects.create(workspace=tenant_a.workspace)
    other = Profile.objects.create(workspace=tenant_a.workspace)
    for p in (person, other):
        Exposure.objects.create(experiment=exp, workspace_id=tenant_a.workspace.pk,
                                profile_id=p.pk, variant="control")  # fmt: skip
    subject = Subject(workspace_id=tenant_a.workspace.pk, profile_ids=[person.pk])
    exported = activation_privacy.export(subject)
    assert [e["experiment"] for e in exported["experiments"]] == ["new_checkout"]
    counts = activation_privacy.delete(subject)
    assert counts["exposures"] == 1
    assert list(Exposure.objects.values_list("profile_id", flat=True)) == [other.pk]


@pytest.mark.django_db
def test_experiments_api_and_roles(tenant_a: Tenant) -> None:
    api = tenant_a.api("marketer")
    made = api.post("/api/v1/metrics/", {"key": "purchase", "name": "Purchase",
                    "kind": "conversion", "event": "Order Completed"},
                    content_type="application/json")  # fmt: skip
    assert made.status_code == 201, made.content
    body = {"key": "hero", "name": "Hero banner", "primary_metric": "purchase",
            "variants": [{"key": "a"}, {"key": "b", "payload": {"title": "Hi"}}]}  # fmt: skip
    created = api.post("/api/v1/experiments/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    eid = created.json()["id"]
    assert api.post(f"/api/v1/experiments/{eid}/start/").json()["status"] == "running"
    again = api.post(f"/api/v1/experiments/{eid}/start/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "experiment_state"
    person = Profile.objects.create(workspace=tenant_a.workspace)
    assigned = api.post(f"/api/v1/experiments/{eid}/assign/", {"profile_id": person.pk},
                        content_type="application/json").json()  # fmt: skip
    assert assigned["variant"] in ("a", "b") and assigned["first_exposure"]
    shown = api.get(f"/api/v1/experiments/{eid}/").json()
    assert shown["exposures"] == {assigned["variant"]: 1}
    results = api.get(f"/api/v1/experiments/{eid}/results/")
    assert results.status_code == 200
    assert results.json()["metrics"][0]["error"] == "each variant needs at least 2 units"
    analyst = tenant_a.api("analyst")
    assert analyst.get(f"/api/v1/experiments/{eid}/results/").status_code == 200
    assert analyst.post("/api/v1/experiments/", body,
                        content_type="application/json").status_code == 403  # fmt: skip
    assert api.get("/api/v1/experiments/99999/").status_code == 404
    ship = api.post(f"/api/v1/experiments/{eid}/ship/", {"variant": "zzz"},
                    content_type="application/json")  # fmt: skip
    assert ship.status_code == 400
    shipped = api.post(f"/api/v1/experiments/{eid}/ship/", {"variant": "b"},
                       content_type="application/json").json()  # fmt: skip
    assert shipped["status"] == ExperimentStatus.SHIPPED and shipped["winner"] == "b"


@pytest.mark.django_db
def test_experiment_pages_follow_the_roles(tenant_a: Tenant) -> None:
    metrics(tenant_a)
    exp = experiment(tenant_a)
    marketer = tenant_a.session("marketer")
    listing = marketer.get("/experiments/").content.decode()
    assert 'id="experiment-form"' in listing and 'id="metric-form"' in listing
    assert "New checkout" in listing and 'id="metrics-table"' in listing
    page = marketer.get(f"/experiments/{exp.pk}/")
    assert page.status_code == 200 and b'id="experiment-config"' in page.content
    analyst = tenant_a.session("analyst").get("/experiments/").content.decode()
    assert 'id="experiment-form"' not in analyst and 'id="metric-form"' not in analyst
    assert tenant_a.session("privacy_officer").get("/experiments/").status_code in (403, 404)
    assert marketer.get("/experiments/999999/").status_code == 404
