"""The activation app's cards on the overview (registered in ActivationConfig.ready()):
deliveries of the last 24 hours and their failures, and running experiments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from activation.experiments.models import Experiment, ExperimentStatus
from activation.models import Delivery, DeliveryStatus, Destination
from cdp import overview
from cdp.models import Workspace


def delivery_cards(workspace: Workspace) -> dict[str, Any]:
    if not Destination.objects.filter(workspace=workspace).exists():
        return {"cards": []}
    since = timezone.now() - timedelta(hours=24)
    counts = Delivery.objects.filter(workspace_id=workspace.pk).aggregate(
        delivered=Count("id", filter=Q(status=DeliveryStatus.DELIVERED, finished_at__gte=since)),
        dead=Count("id", filter=Q(status=DeliveryStatus.DEAD, finished_at__gte=since)),
        open=Count("id", filter=Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING])),
    )
    delivered, dead, pending = (int(counts[k] or 0) for k in ("delivered", "dead", "open"))
    return {
        "cards": [
            {
                "label": "Deliveries, last 24 h",
                "value": delivered,
                "format": "num",
                "hint": f"{pending:,} waiting",
                "href": reverse("ui-deliveries"),
            },
            {
                "label": "Failed deliveries, last 24 h",
                "value": dead,
                "format": "num",
                "hint": "dead-lettered, can be replayed" if dead else "none dead-lettered",
                "tone": "bad" if dead else "ok",
                "href": reverse("ui-deliveries") + ("?status=dead" if dead else ""),
            },
        ]
    }


def experiment_cards(workspace: Workspace) -> dict[str, Any]:
    counts = Experiment.objects.filter(workspace=workspace).aggregate(
        running=Count("id", filter=Q(status=ExperimentStatus.RUNNING)),
        total=Count("id"),
    )
    if not counts["total"]:
        return {"cards": []}
    running = int(counts["running"] or 0)
    return {
        "cards": [
            {
                "label": "Running experiments",
                "value": running,
                "format": "num",
                "hint": f"of {int(counts['total']):,} in all",
                "href": reverse("ui-experiments") + ("?status=running" if running else ""),
            }
        ]
    }


def register() -> None:
    overview.register(
        key="deliveries",
        title="Deliveries",
        kind="cards",
        order=80,
        capability="deliveries.view",
        compute=delivery_cards,
    )
    overview.register(
        key="experiments",
        title="Experiments",
        kind="cards",
        order=85,
        capability="experiments.view",
        compute=experiment_cards,
    )
