"""A Celery worker killed (SIGKILL) in the middle of a training run leaves the registry
consistent: no half-saved version, the run marked failed by the sweeper once its worker's
Postgres session is gone (so the model can train again), and the next run makes exactly one
whole version and scores with it."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from django.test import Client
from django.utils import timezone

from consent.services import purposes_install_defaults
from profiles.demo.movielens import load_movielens, movielens_batches
from profiles.models import PendingEvent, Profile
from segments.ml import jobs, services
from segments.ml.models import MLModel, ModelVersion, RunStatus, TrainingRun, VersionStatus
from tests.fixtures import Tenant, post_collector
from tests.test_processing_worker import wait_for, worker  # noqa: F401 - fixture

KILL_AT = ("evaluating", "fitting")


def test_a_worker_killed_mid_run_leaves_one_consistent_version(
    tenant_a: Tenant,
    worker: Any,  # noqa: F811
) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    ratings, films = load_movielens()
    client = Client()
    for batch in movielens_batches(ratings, films, now=timezone.now(), users=400):
        response = post_collector(
            client, "/v1/batch", {"batch": batch}, write_key=tenant_a.write_key
        )
        assert response.status_code == 200
    # the worker processes the events (ingest queue) …
    assert wait_for(lambda: not PendingEvent.objects.exists(), timeout=120)
    model = services.ml_model_create(
        workspace=tenant_a.workspace, actor=None,
        data={"key": "next_films", "name": "Next films", "kind": "recommendations"},
    )  # fmt: skip
    # … and takes the training run (ml queue)
    run = services.ml_train(model=model, actor=None)
    assert wait_for(lambda: TrainingRun.objects.get(pk=run.pk).stage in KILL_AT, timeout=120), (
        TrainingRun.objects.get(pk=run.pk).log
    )
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    killed = TrainingRun.objects.get(pk=run.pk)
    assert killed.status == RunStatus.RUNNING and killed.stage in KILL_AT
    assert not ModelVersion.objects.filter(model=model).exists()  # nothing half-saved

    # beat's sweeper fails it once the worker's session is gone (a redelivered message
    # would find the run over and do nothing)
    assert wait_for(lambda: jobs.sweep_dead_runs() == 1, timeout=30)
    killed.refresh_from_db()
    assert killed.status == RunStatus.FAILED and killed.error == "the worker running it died"
    assert jobs.execute(run.pk) == RunStatus.FAILED

    # the model trains again: one whole version, the champion, everyone scored
    again = services.ml_train(model=model, actor=None, queue=False)
    started = time.monotonic()
    assert jobs.execute(again.pk) == RunStatus.SUCCEEDED
    print(f"retrained in {time.monotonic() - started:.1f} s")
    versions = list(ModelVersion.objects.filter(model=model))
    assert len(versions) == 1 and versions[0].status == VersionStatus.CHAMPION
    assert versions[0].run_id == again.pk
    model = MLModel.objects.get(pk=model.pk)
    assert model.champion_id == versions[0].pk
    scored = Profile.objects.filter(
        workspace=tenant_a.workspace, computed__has_key="next_films"
    ).count()
    assert scored == model.scored_count == 400
