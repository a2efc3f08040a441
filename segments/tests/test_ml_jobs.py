"""ML training runs as jobs: one at a time per model, a second delivery does nothing, a
cancellation stops at the next stage, a run whose worker died is taken over (or failed by
the sweeper) and leaves one whole version; a worse version stays a challenger, promotion and
roll-back by hand; stored models refuse to load when they do not match; scores follow
consent; the API with its role checks and errors."""

from __future__ import annotations

import hashlib
import io
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import joblib
import numpy as np
import pytest
from django.db import connections

from cdp.errors import Conflict
from cdp.models import Role
from consent.models import ConsentState
from consent.services import purposes_install_defaults
from profiles.models import Profile, ProfileEvent
from segments.ml import jobs, propensity, services, views
from segments.ml.models import MLModel, ModelVersion, RunStatus, TrainingRun, VersionStatus
from segments.selectors import builder_suggestions
from tests.fixtures import Tenant

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
_ids = iter(range(30_000_000, 40_000_000))


@pytest.fixture
def shop(tenant_a: Tenant) -> Tenant:
    """240 customers over a year: loyal ones buy every 2–4 weeks until the end, the others
    stop at a random point — so who has lately bought predicts who buys next quarter."""
    purposes_install_defaults(workspace=tenant_a.workspace)
    rng = random.Random(11)
    rows = []
    for i in range(240):
        profile = Profile.objects.create(workspace=tenant_a.workspace)
        stop = 0 if i % 3 == 0 else rng.uniform(30, 330)  # days before NOW they stop
        day = 365 - rng.uniform(0, 30)
        while day > stop:
            rows.append(
                ProfileEvent(
                    event_id=next(_ids), workspace_id=tenant_a.workspace.pk,
                    profile_id=profile.pk, origin_profile_id=profile.pk,
                    timestamp=NOW - timedelta(days=day), type="track", event="Order Completed",
                    properties={"revenue": rng.choice([10, 25, "40"])},
                )
            )  # fmt: skip
            day -= rng.uniform(10, 30)
    ProfileEvent.objects.bulk_create(rows)
    return tenant_a


def churn_model(tenant: Tenant, key: str = "churn_risk") -> MLModel:
    return services.ml_model_create(
        workspace=tenant.workspace,
        actor=None,
        data={"key": key, "name": "Churn", "kind": "churn",
              "config": {"event": "Order Completed", "horizon_days": 60}},
    )  # fmt: skip


def train(model: MLModel, capture: Any) -> TrainingRun:
    with capture(execute=False):
        run = services.ml_train(model=model, actor=None)
    assert jobs.execute(run.pk) == RunStatus.SUCCEEDED, TrainingRun.objects.get(pk=run.pk).error
    run.refresh_from_db()
    return run


def test_one_run_at_a_time_and_a_second_delivery_does_nothing(
    shop: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    model = churn_model(shop)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = services.ml_train(model=model, actor=None)
    assert len(queued) == 1  # the task is sent once the run row is committed
    with pytest.raises(Conflict) as refused:
        services.ml_train(model=model, actor=None)
    assert refused.value.code == "run_in_progress" and refused.value.detail == {"run": run.pk}
    # another worker holds the model's lock: this delivery leaves the run to it
    other = connections.create_connection("default")
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [jobs.LOCK_NAMESPACE, model.pk])
    try:
        assert jobs.execute(run.pk) == "busy"
        assert TrainingRun.objects.get(pk=run.pk).status == RunStatus.QUEUED
    finally:
        other.close()
    assert jobs.execute(run.pk) == RunStatus.SUCCEEDED
    assert jobs.execute(run.pk) == RunStatus.SUCCEEDED  # delivered again: nothing more
    assert ModelVersion.objects.filter(model=model).count() == 1
    run.refresh_from_db()
    assert run.percent == 100 and "features" in run.log and "succeeded" in run.log


def test_cancellation(
    shop: Tenant, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    model = churn_model(shop)
    with django_capture_on_commit_callbacks(execute=False):
        queued = services.ml_train(model=model, actor=None)
    assert services.ml_run_cancel(run=queued, actor=None).status == RunStatus.CANCELLED
    assert jobs.execute(queued.pk) == RunStatus.CANCELLED  # its task arrives later: a no-op
    with pytest.raises(Conflict):
        services.ml_run_cancel(run=queued, actor=None)
    with django_capture_on_commit_callbacks(execute=False):
        running = services.ml_train(model=model, actor=None)
    # asked while the first features are being built: honoured at the next stage
    build = jobs.feats.build_features

    def build_then_cancel(**kwargs: Any) -> Any:
        services.ml_run_cancel(run=TrainingRun.objects.get(pk=running.pk), actor=None)
        return build(**kwargs)

    monkeypatch.setattr(jobs.feats, "build_features", build_then_cancel)
    assert jobs.execute(running.pk) == RunStatus.CANCELLED
    assert not ModelVersion.objects.filter(model=model).exists()
    assert "cancelled on request" in TrainingRun.objects.get(pk=running.pk).log


def test_a_run_whose_worker_died_is_taken_over_or_failed(
    shop: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    model = churn_model(shop)
    with django_capture_on_commit_callbacks(execute=False):
        run = services.ml_train(model=model, actor=None)
    # the worker died mid-run (its session is gone: no lock held, a pid nobody has)
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, stage="training", percent=45, worker_pid=2_000_000_000
    )
    assert jobs.execute(run.pk) == RunStatus.SUCCEEDED  # the task delivered again
    run.refresh_from_db()
    assert "restarted" in run.log
    assert ModelVersion.objects.filter(model=model).count() == 1
    # with no redelivery, the sweeper fails it so the model can train again
    with django_capture_on_commit_callbacks(execute=False):
        stuck = services.ml_train(model=model, actor=None)
    TrainingRun.objects.filter(pk=stuck.pk).update(
        status=RunStatus.RUNNING, worker_pid=2_000_000_000
    )
    assert jobs.sweep_dead_runs() == 1
    stuck.refresh_from_db()
    assert stuck.status == RunStatus.FAILED and stuck.error == "the worker running it died"
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_champion_rule_promotion_and_rollback(
    shop: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    model = churn_model(shop)
    first = train(model, django_capture_on_commit_callbacks).version
    assert first.status == VersionStatus.CHAMPION and first.number == 1
    assert first.metrics["roc_auc"] > 0.75  # recency predicts the synthetic shop well
    scored = {p.pk for p in Profile.objects.all() if "churn_risk" in p.computed}
    assert scored
    # a retrain on the same data: at least as good, so it replaces the champion
    second = train(model, django_capture_on_commit_callbacks).version
    assert second.status == VersionStatus.CHAMPION
    first.refresh_from_db()
    assert first.status == VersionStatus.RETIRED
    assert second.score == pytest.approx(first.score)  # the same seed: the same model
    # against a champion that scored higher, a new version stays a challenger
    ModelVersion.objects.filter(pk=second.pk).update(score=0.999)
    third = train(model, django_capture_on_commit_callbacks).version
    assert third.status == VersionStatus.CHALLENGER
    assert "below the champion v2" in third.reason
    model.refresh_from_db()
    assert model.champion_id == second.pk
    services.ml_promote(version=third, actor=None)
    model.refresh_from_db()
    assert model.champion_id == third.pk
    services.ml_promote(version=first, actor=None)  # a roll-back to v1
    model.refresh_from_db()
    assert model.champion_id == first.pk
    assert set(model.versions.values_list("number", "status")) == {
        (1, "champion"),
        (2, "retired"),
        (3, "retired"),
    }
    with pytest.raises(Conflict):
        services.ml_promote(version=first, actor=None)


def test_stored_models_are_checked_when_loaded(
    shop: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    version = train(churn_model(shop), django_capture_on_commit_callbacks).version
    data, names = bytes(version.artefact), version.feature_names
    propensity.load(data, sha256=version.artefact_sha256, names=names)
    with pytest.raises(propensity.ArtefactMismatch, match="checksum"):
        propensity.load(data[:-1] + b"x", sha256=version.artefact_sha256, names=names)
    with pytest.raises(propensity.ArtefactMismatch, match="other features"):
        propensity.load(data, sha256=version.artefact_sha256, names=[*names, "trait:age"])
    stale, digest = propensity.dump(object(), names)
    stored = joblib.load(io.BytesIO(stale))
    stored["sklearn"] = "0.24.2"
    buffer = io.BytesIO()
    joblib.dump(stored, buffer)
    old = buffer.getvalue()
    with pytest.raises(propensity.ArtefactMismatch, match="scikit-learn 0.24.2"):
        propensity.load(old, sha256=hashlib.sha256(old).hexdigest(), names=names)


def test_scores_follow_consent_and_leave_with_the_model(
    shop: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    model = churn_model(shop)
    train(model, django_capture_on_commit_callbacks)
    scored = [p for p in Profile.objects.all() if "churn_risk" in p.computed]
    leaver = scored[0]
    ConsentState.objects.create(
        workspace_id=shop.workspace.pk, profile_id=leaver.pk, purpose="analytics",
        status="withdrawn", decided_at=NOW, record_id=0,
    )  # fmt: skip
    assert jobs.score(model.pk) == len(scored) - 1
    leaver.refresh_from_db()
    assert "churn_risk" not in leaver.computed and "churn_risk_decile" not in leaver.computed
    assert "churn_risk" not in leaver.computed.get("_updated", {})
    services.ml_model_delete(model=model, actor=None)
    assert not [p for p in Profile.objects.all() if "churn_risk" in p.computed]


def test_drift_is_measured_against_the_training_data() -> None:
    rng = np.random.default_rng(3)
    train_X = rng.exponential(10, size=(5000, 1)).astype(np.float32)
    reference = propensity.bins(train_X, ["orders"])["orders"]
    same = rng.exponential(10, size=5000).astype(np.float32)
    shifted = rng.exponential(25, size=5000).astype(np.float32)
    assert propensity.psi(reference, same) < 0.05
    assert propensity.psi(reference, shifted) > 0.2


# ---- the API ---------------------------------------------------------------------------------


def api(tenant: Tenant, method: str, path: str, body: Any = None, role: str = Role.OWNER) -> Any:
    client = tenant.api(role)
    call = getattr(client, method)
    if body is None:
        return call(path)
    return call(path, body, content_type="application/json")


def test_models_api(shop: Tenant, django_capture_on_commit_callbacks: Any) -> None:
    body = {"key": "buyer", "name": "Will buy", "kind": "propensity",
            "config": {"event": "Order Completed", "horizon_days": 30}}  # fmt: skip
    assert api(shop, "post", "/api/v1/models/", body, Role.ANALYST).status_code == 403
    made = api(shop, "post", "/api/v1/models/", body, Role.MARKETER)
    assert made.status_code == 201, made.content
    model_id = made.json()["id"]
    assert made.json()["traits"] == ["buyer", "buyer_decile"]
    again = api(shop, "post", "/api/v1/models/", body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate"
    assert list(again.json()["error"]["detail"]["fields"]) == ["key"]
    # a model's scores may not take a computed trait's name
    taken = api(shop, "post", "/api/v1/models/", {**body, "key": "rfm_segment"})
    assert taken.status_code == 409
    bad = api(shop, "post", "/api/v1/models/", {
        "key": "Bad Key", "name": "", "kind": "magic",
        "config": {"horizon_days": 0, "colour": "red"},
    })  # fmt: skip
    assert bad.status_code == 400
    assert set(bad.json()["error"]["detail"]["fields"]) == {
        "key",
        "name",
        "kind",
        "config.horizon_days",
        "config.colour",
    }
    with django_capture_on_commit_callbacks(execute=False):
        started = api(shop, "post", f"/api/v1/models/{model_id}/train/", None, Role.MARKETER)
    assert started.status_code == 202 and started.json()["status"] == "queued"
    busy = api(shop, "post", f"/api/v1/models/{model_id}/train/")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "run_in_progress"
    assert jobs.execute(started.json()["id"]) == RunStatus.SUCCEEDED
    runs = api(shop, "get", f"/api/v1/models/{model_id}/runs/", None, Role.ANALYST).json()
    assert runs["results"][0]["status"] == "succeeded" and runs["results"][0]["version"] == 1
    versions = api(shop, "get", f"/api/v1/models/{model_id}/versions/").json()["results"]
    assert versions[0]["status"] == "champion" and "roc" in versions[0]["charts"]
    detail = api(shop, "get", f"/api/v1/models/{model_id}/").json()
    assert detail["champion"]["number"] == 1 and detail["scored_count"] > 0
    assert (
        api(shop, "post", f"/api/v1/models/{model_id}/promote/", {"version": 1}).status_code == 409
    )
    assert (
        api(shop, "post", f"/api/v1/models/{model_id}/promote/", {"version": 9}).status_code == 404
    )
    ended = api(shop, "post", f"/api/v1/models/{model_id}/runs/{started.json()['id']}/cancel/")
    assert ended.status_code == 409 and ended.json()["error"]["code"] == "run_ended"
    fixed = api(shop, "patch", f"/api/v1/models/{model_id}/", {"kind": "churn"})
    assert fixed.status_code == 400
    renamed = api(shop, "patch", f"/api/v1/models/{model_id}/", {"name": "Buys soon"})
    assert renamed.json()["name"] == "Buys soon"
    # the scores are segment conditions
    top = {"rule": {"trait": "buyer_decile", "op": "gte", "value": 10}}
    count = api(shop, "post", "/api/v1/segments/preview/", top).json()["count"]
    assert count == pytest.approx(detail["scored_count"] / 10, abs=2)
    suggestions = builder_suggestions(workspace=shop.workspace, exclude_segment=None)
    offered = {t["name"]: t for t in suggestions["traits"]}
    assert offered["buyer"]["type"] == "number" and "model score" in offered["buyer"]["label"]
    assert offered["buyer_decile"]["values"][-1] == "10"
    assert api(shop, "get", "/api/v1/models/", None, "privacy_officer").status_code == 403
    assert api(shop, "delete", f"/api/v1/models/{model_id}/").status_code == 204


def test_the_profile_page_shows_its_scores_with_the_model_version(
    shop: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    model = churn_model(shop)
    train(model, django_capture_on_commit_callbacks)
    profile = next(p for p in Profile.objects.all() if "churn_risk" in p.computed)
    page = shop.session(Role.MARKETER).get(f"/profiles/{profile.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="model-scores"' in html and 'data-model="churn_risk"' in html
    assert f"{profile.computed['churn_risk']:.2f}" in html and ">v1<" in html
    # whoever may not see models does not get the panel
    officer = shop.session("privacy_officer").get(f"/profiles/{profile.pk}/")
    assert officer.status_code == 200 and 'id="model-scores"' not in officer.content.decode()
    scores = views.profile_scores(profile)
    assert scores == [
        {
            "model": model.pk, "key": "churn_risk", "name": "Churn", "kind": "churn",
            "score": profile.computed["churn_risk"],
            "decile": profile.computed["churn_risk_decile"], "version": 1,
            "scored_at": profile.computed["_updated"]["churn_risk"],
        }
    ]  # fmt: skip
