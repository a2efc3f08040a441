"""Beat: analyse every running experiment and keep the primary metric's lift over time."""

from __future__ import annotations

import logging

from celery import shared_task

from activation.experiments import analysis
from activation.experiments.models import Experiment, ExperimentStatus

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True, ignore_result=True, name="activation.experiments.tasks.analyse_running"
)
def analyse_running() -> int:
    done = 0
    for experiment in Experiment.objects.filter(status=ExperimentStatus.RUNNING):
        try:
            analysis.record_history(experiment, analysis.analyse(experiment))
            done += 1
        except Exception:
            logger.exception("analysing experiment %s failed", experiment.pk)
    return done
