"""The metrics of the pipeline's stages, segments, privacy requests, destinations, ML runs and
experiments, moved by the real code paths and read through GET /metrics; and the Grafana
dashboard (ops/grafana/cdp-dashboard.json) asks only for metrics that /metrics exposes."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from activation.experiments import analysis
from activation.experiments.models import ExperimentStatus
from activation.models import Delivery, DeliveryStatus, Destination
from activation.tests.helpers import people, pro_segment
from activation.tests.helpers import webhook as webhook_destination
from activation.tests.test_experiments import experiment, metrics
from consent.models import PrivacyRequest
from consent.privacy import privacy_request_create
from consent.services import purposes_install_defaults
from profiles.pipeline import queue, stages
from segments.ml import jobs
from segments.ml import services as ml_services
from segments.ml.models import MLModel, RunStatus
from segments.services import segments_refresh_all
from tests.fixtures import Tenant, post_collector
from tests.test_metrics_flow import TOKEN, scrape, track, value

DASHBOARD = Path(django_settings.BASE_DIR) / "ops" / "grafana" / "cdp-dashboard.json"


@pytest.fixture(autouse=True)
def _metrics_on(settings: Any) -> None:
    settings.CDP_METRICS_TOKEN = TOKEN


def moved(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_a_processed_batch_observes_event_to_profile_latency_and_each_stage(
    tenant_a: Tenant,
) -> None:
    response = post_collector(
        Client(), "/v1/batch", {"batch": track(5)}, write_key=tenant_a.write_key
    )
    assert response.status_code == 200
    before = scrape()
    assert queue.drain() == (5, False)
    after = scrape()
    assert moved(before, after, "cdp_pipeline_event_to_profile_seconds_count") == 5
    assert moved(before, after, "cdp_pipeline_event_to_profile_seconds_sum") > 0
    names = [stage.name for stage in stages.stages()]
    assert {"identity", "segments", "counters"} <= set(names)
    for name in names:
        assert moved(before, after, "cdp_pipeline_stage_seconds_count", stage=name) == 1, name


def test_publishing_and_a_member_entering_move_the_segment_counters(tenant_a: Tenant) -> None:
    people(tenant_a, 3)
    before = scrape()
    segment = pro_segment(tenant_a)
    published = scrape()
    assert moved(before, published, "cdp_segment_evaluations_total", kind="publish") == 1
    assert moved(before, published, "cdp_segment_membership_changes_total", change="entered") == 3
    assert moved(before, published, "cdp_segment_evaluation_seconds_count", kind="publish") == 1
    assert moved(before, published, "cdp_segment_evaluation_seconds_sum", kind="publish") > 0
    segment.refresh_from_db()
    assert segment.evaluation_ms is not None  # the System page's slowest segments

    people(tenant_a, 1, start=3)  # a new pro member, processed by the pipeline
    entered = scrape()
    assert moved(published, entered, "cdp_segment_evaluations_total", kind="realtime") >= 1
    assert moved(published, entered, "cdp_segment_evaluation_seconds_count", kind="realtime") >= 1
    assert moved(published, entered, "cdp_segment_membership_changes_total", change="entered") == 1

    people(tenant_a, 1, plan="free")  # user-0 leaves the plan: an exit
    exited = scrape()
    assert moved(entered, exited, "cdp_segment_membership_changes_total", change="exited") == 1
    segment.refresh_from_db()
    assert segment.member_count == 3

    segments_refresh_all()  # the scheduled full evaluation: nothing left to change
    refreshed = scrape()
    assert moved(exited, refreshed, "cdp_segment_evaluations_total", kind="full") == 1
    assert moved(exited, refreshed, "cdp_segment_membership_changes_total", change="entered") == 0


def test_privacy_requests_open_and_overdue_per_workspace(
    tenant_a: Tenant, tenant_b: Tenant
) -> None:
    ws = str(tenant_a.workspace.pk)
    for identifier in ("email:a@example.com", "email:b@example.com"):
        privacy_request_create(workspace=tenant_a.workspace, type="delete", identifier=identifier)
    samples = scrape()
    assert value(samples, "cdp_privacy_requests", workspace=ws, state="open") == 2
    assert value(samples, "cdp_privacy_requests", workspace=ws, state="overdue") == 0

    late = PrivacyRequest.objects.filter(workspace=tenant_a.workspace).first()
    assert late is not None
    PrivacyRequest.objects.filter(pk=late.pk).update(due_at=timezone.now() - timedelta(days=1))
    late.refresh_from_db()
    assert late.overdue
    samples = scrape()
    assert value(samples, "cdp_privacy_requests", workspace=ws, state="open") == 2
    assert value(samples, "cdp_privacy_requests", workspace=ws, state="overdue") == 1
    other = str(tenant_b.workspace.pk)
    assert value(samples, "cdp_privacy_requests", workspace=other, state="open") == 0


def test_circuit_and_dead_letters_per_destination(tenant_a: Tenant) -> None:
    destination = webhook_destination(tenant_a, "http://127.0.0.1:9/unused", name="probe")
    label = str(destination.pk)
    samples = scrape()
    assert ("cdp_destination_circuit_open", frozenset({("destination", label)})) in samples
    assert value(samples, "cdp_destination_circuit_open", destination=label) == 0
    assert value(samples, "cdp_deliveries_dead", destination=label) == 0

    Destination.objects.filter(pk=destination.pk).update(circuit_state="open")
    for _ in range(2):
        Delivery.objects.create(
            workspace_id=tenant_a.workspace.pk,
            destination=destination,
            kind="event",
            payload={},
            status=DeliveryStatus.DEAD,
        )
    samples = scrape()
    assert value(samples, "cdp_destination_circuit_open", destination=label) == 1
    assert value(samples, "cdp_deliveries_dead", destination=label) == 2


def test_srm_flag_of_the_last_stored_analysis(tenant_a: Tenant) -> None:
    metrics(tenant_a)
    exp = experiment(tenant_a)
    exp.status = ExperimentStatus.RUNNING
    exp.save(update_fields=["status"])
    label = str(exp.pk)
    assert value(scrape(), "cdp_experiment_srm_flagged", experiment=label) == 0
    for flagged in (False, True):
        results = {
            "at": timezone.now().isoformat(),
            "units": {"control": 10, "one_page": 90},
            "srm": {"flagged": flagged, "p_value": 1e-9 if flagged else 0.5},
            "metrics": [],
        }
        analysis.record_history(exp, results)
        exp.refresh_from_db()
    assert value(scrape(), "cdp_experiment_srm_flagged", experiment=label) == 1


def _failed_training_run(tenant: Tenant, django_capture_on_commit_callbacks: Any) -> MLModel:
    """A churn model of a workspace without events: its run fails fast (too few rows)."""
    purposes_install_defaults(workspace=tenant.workspace)
    model = ml_services.ml_model_create(
        workspace=tenant.workspace,
        actor=None,
        data={
            "key": "churn_risk",
            "name": "Churn",
            "kind": "churn",
            "config": {"event": "Order Completed", "horizon_days": 60},
        },
    )
    with django_capture_on_commit_callbacks(execute=False):
        run = ml_services.ml_train(model=model, actor=None)
    assert jobs.execute(run.pk) == RunStatus.FAILED
    return model


def test_a_training_run_is_counted_and_timed_and_drift_flags_are_read(
    tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    before = scrape()
    model = _failed_training_run(tenant_a, django_capture_on_commit_callbacks)
    after = scrape()
    assert moved(before, after, "cdp_ml_runs_total", kind="churn", outcome="failed") == 1
    assert moved(before, after, "cdp_ml_run_seconds_count", kind="churn") == 1
    label = str(model.pk)
    assert value(after, "cdp_ml_drift_flags", model=label) == 0
    psi = {"recency": 0.5, "frequency": 0.3, "monetary": 0.05}
    MLModel.objects.filter(pk=model.pk).update(
        drift=[{"at": "2026-01-01", "version": 1, "psi": {"recency": 0.9}},
               {"at": "2026-01-02", "version": 1, "psi": psi}]
    )  # fmt: skip
    assert value(scrape(), "cdp_ml_drift_flags", model=label) == 2


# ---- the dashboard ----------------------------------------------------------------------------

_SUFFIXES = re.compile(r"_(bucket|sum|count|created)$")


def exposed_names() -> set[str]:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        names.add(family.name)
        names |= {_SUFFIXES.sub("", sample.name) for sample in family.samples}
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert any(v["name"] == "DS_PROMETHEUS" for v in dashboard["templating"]["list"])
    queries = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        queries += [(panel["title"], target["expr"]) for target in panel["targets"]]
    return queries


def test_the_dashboard_queries_only_exposed_metrics(
    tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    from activation.tests.helpers import drain, run, sync_of
    from activation.tests.receiver import receiver

    # exercise the paths whose labelled metrics appear once used
    people(tenant_a, 2)
    segment = pro_segment(tenant_a)
    people(tenant_a, 1, start=2)
    assert Client().put("/v1/decide").status_code == 405
    with receiver() as accepting:
        destination = webhook_destination(tenant_a, accepting.url, name="dash")
        run(sync_of(tenant_a, segment, destination))
        drain(destination)
    _failed_training_run(tenant_a, django_capture_on_commit_callbacks)
    metrics(tenant_a)
    experiment(tenant_a)
    privacy_request_create(
        workspace=tenant_a.workspace, type="delete", identifier="email:x@example.com"
    )

    exposed = exposed_names()
    queries = dashboard_queries()
    referenced = set()
    for title, expr in queries:
        names = {_SUFFIXES.sub("", name) for name in re.findall(r"\bcdp_[a-z0-9_]+", expr)}
        assert names, (title, expr)
        missing = names - exposed
        assert not missing, f"panel {title!r} asks for {sorted(missing)}, not in /metrics"
        referenced |= names
    # every panel of the brief is there
    for name in (
        "cdp_collector_requests_total",
        "cdp_collector_request_seconds",
        "cdp_events_total",
        "cdp_pipeline_lag_seconds",
        "cdp_pipeline_queue_depth",
        "cdp_pipeline_event_to_profile_seconds",
        "cdp_pipeline_stage_seconds",
        "cdp_segment_evaluations_total",
        "cdp_segment_membership_changes_total",
        "cdp_segment_evaluation_seconds",
        "cdp_deliveries_total",
        "cdp_destination_circuit_open",
        "cdp_deliveries_dead",
        "cdp_decide_request_seconds",
        "cdp_decide_degraded_total",
        "cdp_privacy_requests",
        "cdp_ml_runs_total",
        "cdp_ml_drift_flags",
        "cdp_experiment_srm_flagged",
    ):
        assert name in referenced, name
