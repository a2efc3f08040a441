"""The ML models' drift as a Prometheus gauge, read at scrape time (registered with
`cdp.metrics.register_scrape_collector` in SegmentsConfig.ready). Training runs are counted
and timed where they finish (`segments.ml.jobs.execute`)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from segments.ml.jobs import PSI_FLAG
from segments.ml.models import MLModel

# features of the latest scoring (the last `drift` entry) whose PSI is above the flag
_DRIFT_FLAGS = """
SELECT m.id,
       (SELECT count(*) FROM jsonb_each_text(m.drift -> -1 -> 'psi') f
        WHERE f.value::float > %s)
FROM {table} m
ORDER BY m.id"""


def collect() -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "cdp_ml_drift_flags",
        f"Features of the model whose population stability index at its latest scoring is "
        f"above {PSI_FLAG} (drifted from the champion's training data).",
        labels=["model"],
    )
    with connection.cursor() as cursor:
        cursor.execute(_DRIFT_FLAGS.format(table=MLModel._meta.db_table), [PSI_FLAG])
        for pk, flags in cursor.fetchall():
            family.add_metric([str(pk)], int(flags))
    yield family
