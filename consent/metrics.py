"""Privacy requests as Prometheus gauges, read at scrape time (registered with
`cdp.metrics.register_scrape_collector` in ConsentConfig.ready): per workspace, the open
requests and those of them past their due date — one grouped query."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from consent import selectors

STATES = ("open", "overdue")


def collect() -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "cdp_privacy_requests",
        "Privacy requests not completed yet (open) and those of them past their due date "
        "(overdue), by workspace.",
        labels=["workspace", "state"],
    )
    for workspace_id, counts in selectors.privacy_open_counts_by_workspace().items():
        for state in STATES:
            family.add_metric([str(workspace_id), state], counts[state])
    yield family
