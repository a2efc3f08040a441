"""Celery tasks of the ML jobs (queue `ml`, routed by the `segments.ml.*` names)."""

from __future__ import annotations

import logging

from celery import shared_task

from segments.ml import jobs, services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, name="segments.ml.tasks.train")
def train(run_id: int) -> str:
    """Execute a training run. Safe to deliver twice: the run's model lock lets one worker
    execute it, and a run whose worker died is taken over."""
    return jobs.execute(run_id)


@shared_task(acks_late=True, name="segments.ml.tasks.score")
def score(model_id: int) -> int:
    """Score every consenting profile with the model's champion (beat, after a promotion)."""
    return jobs.score(model_id)


@shared_task(acks_late=True, name="segments.ml.tasks.schedule")
def schedule() -> int:
    """Beat: retrain the models whose schedule is due or whose features drifted; fail runs
    whose worker died."""
    return services.ml_schedule_due()
