"""GET /metrics: a bearer token from CDP_METRICS_TOKEN, 404 while none is configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from cdp import launcher, metrics

TOKEN = "metrics-test-token"  # noqa: S105 - test value


@pytest.fixture
def metrics_token(settings: Any) -> str:
    settings.CDP_METRICS_TOKEN = TOKEN
    return TOKEN


def test_metrics_is_not_found_without_a_configured_token(settings: Any) -> None:
    settings.CDP_METRICS_TOKEN = ""
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "],
)
def test_metrics_refuses_a_missing_or_wrong_token(
    metrics_token: str, authorization: str | None
) -> None:
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    response = Client().get("/metrics", **extra)  # type: ignore[arg-type]
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"cdp_" not in response.content


def test_metrics_answers_the_exposition_with_the_right_token(metrics_token: str, db: Any) -> None:
    # no session, no CSRF token: a scraper is not a browser (and is never sent to /login/)
    response = Client(enforce_csrf_checks=True).get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    # counters are named without _total by the parser
    assert {
        "cdp_collector_requests",
        "cdp_collector_request_seconds",
        "cdp_events",
        "cdp_decide_request_seconds",
        "cdp_decide_degraded",
        "cdp_pipeline_lag_seconds",
        "cdp_pipeline_queue_depth",
    } <= names


def test_metrics_accepts_get_only(metrics_token: str) -> None:
    response = Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}")
    assert response.status_code == 405


def test_launcher_empties_the_metrics_folder_of_value_files_only(tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"x")
    (folder / "keep.txt").write_text("not ours")
    launcher.reset_metrics_dir(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    launcher.reset_metrics_dir(tmp_path / "new")
    assert (tmp_path / "new").is_dir()


def test_multiprocess_mode_sums_the_processes(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (the web server's workers), each process writes its own files
    and the exposition adds them up."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = (
        "from cdp import metrics; "
        "metrics.events_count(source_id=5, accepted=3, duplicates=1, failed=0, suppressed=0)"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True)  # noqa: S603
    shown = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "from cdp import metrics; print(metrics.exposition().decode())"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    samples = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(shown)
        if family.name == "cdp_events"
        for sample in family.samples
        if sample.labels.get("source") == "5"
    }
    assert samples == {"accepted": 6.0, "duplicate": 2.0}


def test_a_prefork_child_marks_its_live_gauges_dead_and_keeps_its_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Celery's worker_process_shutdown (a recycled or stopping prefork child) marks its own
    live gauges dead."""
    from celery.signals import worker_process_shutdown

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("gauge_livesum_4242.db", "gauge_liveall_4242.db", "counter_4242.db"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "gauge_livesum_77.db").write_bytes(b"")  # another, living process
    worker_process_shutdown.send(sender=None, pid=4242, exitcode=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4242.db", "gauge_livesum_77.db"]


def test_a_scrape_marks_the_live_gauges_of_exited_processes_dead(tmp_path: Path) -> None:
    """A web worker that was killed cannot mark its own files: the next exposition does, for
    every process that no longer exists, and keeps their counters and living processes'
    gauges."""
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],  # noqa: S603
                            check=True, capture_output=True, text=True)  # fmt: skip
    gone = int(exited.stdout)
    for name in (f"gauge_livesum_{gone}.db", f"gauge_liveall_{gone}.db", f"counter_{gone}.db"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / f"gauge_livemax_{os.getpid()}.db").write_bytes(b"")  # this process: alive
    (tmp_path / "histogram_1.db").write_bytes(b"")  # not a live gauge: left alone
    assert metrics.sweep_dead_processes(tmp_path) == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{gone}.db", f"gauge_livemax_{os.getpid()}.db", "histogram_1.db"]
    )
    assert metrics.sweep_dead_processes(tmp_path) == []
    assert metrics.sweep_dead_processes(tmp_path / "missing") == []
