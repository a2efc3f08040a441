"""Activation's Prometheus gauges, read at scrape time (registered with
`cdp.metrics.register_scrape_collector` in ActivationConfig.ready): each destination's circuit
breaker and dead letters, and the sample-ratio-mismatch flag of each running experiment's last
stored analysis. Labels are destination and experiment ids (bounded: configuration rows)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from activation.experiments.models import Experiment, ExperimentStatus
from activation.models import CircuitState, Delivery, DeliveryStatus, Destination


def collect_destinations() -> Iterator[Metric]:
    circuit = GaugeMetricFamily(
        "cdp_destination_circuit_open",
        "1 while the destination's circuit breaker is open or half-open (sends held back), else 0.",
        labels=["destination"],
    )
    dead = GaugeMetricFamily(
        "cdp_deliveries_dead",
        "Dead-lettered deliveries of the destination (given up or refused), not yet resent.",
        labels=["destination"],
    )
    dead_counts = dict(
        Delivery.objects.filter(status=DeliveryStatus.DEAD)  # the delivery_dead index
        .values("destination_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("destination_id", "n")
    )
    for pk, state in Destination.objects.order_by("pk").values_list("pk", "circuit_state"):
        circuit.add_metric([str(pk)], 0 if state == CircuitState.CLOSED else 1)
        dead.add_metric([str(pk)], dead_counts.get(pk, 0))
    yield circuit
    yield dead


def collect_experiments() -> Iterator[Metric]:
    srm = GaugeMetricFamily(
        "cdp_experiment_srm_flagged",
        "1 when the running experiment's last stored analysis flagged a sample-ratio mismatch "
        "(a broken assignment), else 0.",
        labels=["experiment"],
    )
    with connection.cursor() as cursor:
        # only the last history point's flag leaves the database, not the history
        cursor.execute(
            f"SELECT id, COALESCE((history -> -1 ->> 'srm_flagged')::boolean, false) "  # noqa: S608
            f"FROM {Experiment._meta.db_table} WHERE status = %s ORDER BY id",
            [ExperimentStatus.RUNNING.value],
        )
        for pk, flagged in cursor.fetchall():
            srm.add_metric([str(pk)], 1 if flagged else 0)
    yield srm
