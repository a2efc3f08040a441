"""Prometheus metrics: the metric objects every app increments, and `GET /metrics`.

`/metrics` answers the text exposition format to a scraper that sends `Authorization: Bearer
<CDP_METRICS_TOKEN>`; without that setting the endpoint does not exist (404), and a missing or
wrong token gets 401. No session, no CSRF: a scraper is not a browser.

Processes: the web server runs several workers and each keeps its own counters. When the
environment names PROMETHEUS_MULTIPROC_DIR (the launcher sets <data>/prometheus and empties it
at start), every process writes its values to files there and `/metrics` sums them
(`MultiProcessCollector`). A process that has exited keeps its counters there (they must keep
counting) and has its live gauges marked dead: Celery's prefork children on their way out
(cdp/celery.py), web workers at the next scrape (`sweep_dead_processes`: a killed process
cannot mark itself). Without it (tests, `runserver`) the values live in this process's default
registry.

Values measured at scrape time (the pipeline's backlog) come from the apps that own the data:
they register a function in `AppConfig.ready()` with `register_scrape_collector`, which yields
metric families (`GaugeMetricFamily`) from one cheap query — the core imports none of them.

Labels stay bounded: route names, HTTP status codes, outcomes, source and workspace ids; never
a user id or anything a caller chooses."""

from __future__ import annotations

import hmac
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client's file of a live gauge: gauge_livesum_<pid>.db, gauge_liveall_<pid>.db, ...
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]*_(\d+)\.db$")

# HTTP latencies: 5 ms .. 10 s
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# ---- the metrics ------------------------------------------------------------------------------

COLLECTOR_REQUESTS = Counter(
    "cdp_collector_requests",
    "Requests to the tracking API (/v1/batch, /v1/track, ...), by route and HTTP status.",
    ["route", "status"],
)
COLLECTOR_REQUEST_SECONDS = Histogram(
    "cdp_collector_request_seconds",
    "Time to answer a tracking API request, by route.",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
EVENTS = Counter(
    "cdp_events",
    "Events received by the collector, by source id and outcome "
    "(accepted, duplicate, failed, suppressed).",
    ["source", "outcome"],
)
DECIDE_REQUEST_SECONDS = Histogram(
    "cdp_decide_request_seconds",
    "Time to answer a decision request (/v1/decide).",
    buckets=_LATENCY_BUCKETS,
)
DECIDE_DEGRADED = Counter(
    "cdp_decide_degraded",
    "Decisions answered with defaults because the store could not be read in time.",
)

DELIVERIES = Counter(
    "cdp_deliveries",
    "Deliveries to destinations, by destination kind and outcome (delivered; failed: to be "
    "retried; dead: given up; cancelled: no consent).",
    ["kind", "outcome"],
)
DELIVERY_SEND_SECONDS = Histogram(
    "cdp_delivery_send_seconds",
    "Time of one request to a destination (a batch of deliveries), by destination kind.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

# pipeline: seconds to minutes (a backlog), and one stage of a batch
PIPELINE_EVENT_TO_PROFILE_SECONDS = Histogram(
    "cdp_pipeline_event_to_profile_seconds",
    "Time from an event's arrival at the collector until the pipeline committed it to its "
    "profile (one observation per processed event).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)
PIPELINE_STAGE_SECONDS = Histogram(
    "cdp_pipeline_stage_seconds",
    "Time of one pipeline stage on one batch, by stage name.",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

SEGMENT_EVALUATIONS = Counter(
    "cdp_segment_evaluations",
    "Segment evaluations, by kind (realtime: a pipeline batch's profiles against one segment; "
    "full: a scheduled re-evaluation; publish: the evaluation when a version goes live).",
    ["kind"],
)
SEGMENT_EVALUATION_SECONDS = Histogram(
    "cdp_segment_evaluation_seconds",
    "Time of segment evaluations, by kind (realtime: one pipeline batch's profiles against "
    "every published segment; full and publish: one segment over the whole workspace).",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
SEGMENT_MEMBERSHIP_CHANGES = Counter(
    "cdp_segment_membership_changes",
    "Profiles that entered or exited a segment, by change (entered, exited).",
    ["change"],
)

ML_RUNS = Counter(
    "cdp_ml_runs",
    "Finished ML training runs, by model kind and outcome (succeeded, failed, cancelled).",
    ["kind", "outcome"],
)
ML_RUN_SECONDS = Histogram(
    "cdp_ml_run_seconds",
    "Time of one ML training run, by model kind.",
    ["kind"],
    buckets=(1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)

EVENT_OUTCOMES = ("accepted", "duplicate", "failed", "suppressed")


def segment_evaluated(
    *, kind: str, evaluations: int = 1, entered: int, exited: int, seconds: float | None = None
) -> None:
    """Count segment evaluations of one kind (realtime, full, publish), what they changed and
    how long they took (`seconds`, observed when anything was evaluated)."""
    if evaluations:
        SEGMENT_EVALUATIONS.labels(kind=kind).inc(evaluations)
        if seconds is not None:
            SEGMENT_EVALUATION_SECONDS.labels(kind=kind).observe(seconds)
    if entered:
        SEGMENT_MEMBERSHIP_CHANGES.labels(change="entered").inc(entered)
    if exited:
        SEGMENT_MEMBERSHIP_CHANGES.labels(change="exited").inc(exited)


def events_count(
    *, source_id: int, accepted: int, duplicates: int, failed: int, suppressed: int
) -> None:
    """Add one collector request's outcome counts for a source."""
    source = str(source_id)
    for outcome, n in zip(EVENT_OUTCOMES, (accepted, duplicates, failed, suppressed), strict=True):
        if n:
            EVENTS.labels(source=source, outcome=outcome).inc(n)


# ---- values read at scrape time ---------------------------------------------------------------

ScrapeFunction = Callable[[], Iterable[Metric]]
_scrape_functions: dict[str, ScrapeFunction] = {}


def register_scrape_collector(name: str, function: ScrapeFunction) -> None:
    """`function` yields metric families, called at each scrape of /metrics (by the process
    that answers it). Registering a name again replaces its function."""
    _scrape_functions[name] = function


class ScrapeTimeCollector(Collector):
    """The registered functions' families; one that fails is logged and left out, so the
    rest of the exposition still goes out."""

    def collect(self) -> Iterable[Metric]:
        for name, function in list(_scrape_functions.items()):
            try:
                families = list(function())
            except Exception:
                logger.warning("metrics: %s failed at scrape time", name, exc_info=True)
                continue
            yield from families


_scrape_collector = ScrapeTimeCollector()
if not os.environ.get(MULTIPROC_ENV):
    REGISTRY.register(_scrape_collector)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_dead_processes(directory: str | Path | None = None) -> list[int]:
    """Mark dead the live-gauge files of processes that no longer exist (their counters stay);
    returns their process ids. Runs before each multiprocess exposition, so a web worker that
    was killed or recycled stops counting in live gauges whatever server ran it."""
    folder = Path(directory or os.environ.get(MULTIPROC_ENV) or "")
    if not str(folder) or not folder.is_dir():
        return []
    dead = set()
    for path in folder.glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(folder))
    return sorted(dead)


def exposition() -> bytes:
    """The text exposition of every metric, summed over processes in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        sweep_dead_processes()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_scrape_collector)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# ---- the endpoint -----------------------------------------------------------------------------


def _bearer(request: HttpRequest) -> str:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@login_not_required
@csrf_exempt
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    expected = settings.CDP_METRICS_TOKEN
    if not expected:
        raise Http404("Metrics are off: set CDP_METRICS_TOKEN.")
    if not hmac.compare_digest(_bearer(request).encode(), expected.encode()):
        response = HttpResponse(
            "Missing or wrong bearer token.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
