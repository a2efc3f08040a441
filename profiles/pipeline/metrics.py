"""The pipeline's backlog as Prometheus gauges, read at scrape time (registered with
`cdp.metrics.register_scrape_collector` in ProfilesConfig.ready).

One statement: per workspace, the oldest pending event (the lowest event id, through the
`pending_ws_event` index) and the number pending, counted up to QUEUE_DEPTH_CAP so that a huge
backlog costs a bounded index scan."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

QUEUE_DEPTH_CAP = 100_000

# clock_timestamp(), not now(): now() is the transaction's start, which a test's
# transaction shares with the events it stored
_BACKLOG = """
SELECT w.id,
       COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - (
           SELECT p.enqueued_at FROM profiles_pendingevent p
           WHERE p.workspace_id = w.id ORDER BY p.event_id LIMIT 1)), 0),
       (SELECT count(*) FROM (SELECT 1 FROM profiles_pendingevent p
                              WHERE p.workspace_id = w.id LIMIT %s) c)
FROM cdp_workspace w
ORDER BY w.id"""


def backlog() -> list[tuple[int, float, int]]:
    """(workspace id, age in seconds of its oldest pending event or 0, pending count capped
    at QUEUE_DEPTH_CAP) for every workspace."""
    with connection.cursor() as cursor:
        cursor.execute(_BACKLOG, [QUEUE_DEPTH_CAP])
        return [(int(ws), max(0.0, float(lag)), int(depth)) for ws, lag, depth in cursor]


def collect() -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        "cdp_pipeline_lag_seconds",
        "Age of the oldest event not yet processed by the pipeline (0: none pending).",
        labels=["workspace"],
    )
    depth = GaugeMetricFamily(
        "cdp_pipeline_queue_depth",
        f"Events waiting for the pipeline (counted up to {QUEUE_DEPTH_CAP}).",
        labels=["workspace"],
    )
    for workspace_id, seconds, pending in backlog():
        lag.add_metric([str(workspace_id)], seconds)
        depth.add_metric([str(workspace_id)], pending)
    yield lag
    yield depth
