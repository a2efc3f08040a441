"""Train the demo models on what the demo data loaded: customer types (clusters), churn risk
and recommendations — so a new user opens real clusters, scores and recommendations.

Each is created when missing and trained here, in this process (a Celery worker may not be
running yet), exactly as a "Train now" run would be. Safe to run again: existing models are
retrained and keep their history."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from cdp.models import Workspace
from segments.ml import jobs, services
from segments.ml.models import MLModel, ModelVersion, RunStatus

DEMO_MODELS: list[dict[str, Any]] = [
    {"key": "customer_type", "name": "Customer types", "kind": "clusters",
     "description": "Which kinds of customers the shop has, from recency, frequency and spend.",
     "config": {"seed": 7}},
    {"key": "churn_risk", "name": "Churn risk", "kind": "churn",
     "description": "Customers likely to place no order in the next 90 days.",
     "config": {"event": "Order Completed", "horizon_days": 90, "seed": 7}},
    {"key": "recommended", "name": "Recommended for you", "kind": "recommendations",
     "description": "Albums and films each customer should see next.",
     "config": {"seed": 7, "top_n": 10, "exclude": "purchased"}},
]  # fmt: skip


class Command(BaseCommand):
    help = (
        "Create and train the demo models (customer types, churn risk, recommendations) on "
        "the workspace's events; run after cdp_demo_data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", default="Demo", help="workspace name")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = Workspace.objects.filter(name=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"no workspace {options['workspace']!r}; load demo data first")
        for spec in DEMO_MODELS:
            model = MLModel.objects.filter(workspace=workspace, key=spec["key"]).first()
            if model is None:
                model = services.ml_model_create(workspace=workspace, actor=None, data=spec)
            self._train(model)

    def _train(self, model: MLModel) -> None:
        started = time.monotonic()
        # the run executes here, not through the queue (whose task would find it done)
        with transaction.atomic():
            run = services.ml_train(model=model, actor=None, trigger="manual", queue=False)
        status = jobs.execute(run.pk)
        run.refresh_from_db()
        version = ModelVersion.objects.filter(run=run).first()
        if status != RunStatus.SUCCEEDED or version is None:
            self.stdout.write(self.style.WARNING(f"  {model.name}: {status} — {run.error}"))
            return
        summary = version.metrics.get("summary", "")
        self.stdout.write(
            f"  {model.name}: v{version.number} in {time.monotonic() - started:.1f} s — {summary}"
        )
