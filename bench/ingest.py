"""Batch and single-event ingest measured both ways: without the pipeline worker (the
collector alone, events wait in the queue) and with a real Celery pipeline worker processing
them on the same cores — the situation in production, and what the targets are about
(/v1/batch of 100 >= 20,000 events/s; single events >= 1,500 requests/s with p99 <= 50 ms).

Runs bench/collector.py twice (`--only batch --only single --only single-paced`, each with a
fresh database) and prints the two side by side, with what the pipeline processed meanwhile
and its backlog at the end. Single events are measured two ways: a saturated closed loop (32
clients: the most the server answers; its latencies are those of a full queue) and an open
loop paced at 1,500 requests/s, latency counted from each request's scheduled send time —
the target's own terms. Figures also go to bench/results/ingest-<timestamp>.json.

    bin/bench ingest [--seconds 15] [--pipeline-processes 2] [--workers 3]
                     [--worker-class granian|gthread|sync]

`--worker-class gthread` runs gunicorn's threaded workers instead of granian (bin/start's
server), to compare the two servers on the same machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import collector  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def run(extra: list[str]) -> dict:
    before = set(RESULTS_DIR.glob("collector-*.json"))
    code = collector.main(
        [
            "--only",
            "batch",
            "--only",
            "single",
            "--only",
            "single-paced",
            "--paced-rate",
            "0",
            *extra,
        ]  # fmt: skip
    )
    if code != 0:
        raise SystemExit(f"bench/collector.py failed its verification (exit {code})")
    new = sorted(set(RESULTS_DIR.glob("collector-*.json")) - before)
    return json.loads(new[-1].read_text())


def crash_recovery() -> dict:
    before = set(RESULTS_DIR.glob("pipeline-*.json"))
    subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(Path(__file__).with_name("pipeline.py")), "--only", "recovery"],
        check=True,
    )
    new = sorted(set(RESULTS_DIR.glob("pipeline-*.json")) - before)
    return json.loads(new[-1].read_text())["recovery"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=15.0, help="per scenario (default 15)")
    p.add_argument("--workers", default="3", help="web server processes (default 3, as bin/start)")
    p.add_argument(
        "--pipeline-processes", type=int, default=2, help="Celery worker processes (default 2)"
    )
    p.add_argument(
        "--worker-class",
        default=collector.GRANIAN,
        choices=[collector.GRANIAN, "gthread", "sync"],
        help="granian (default, as bin/start) or a gunicorn worker class to compare",
    )
    args = p.parse_args(argv)
    common = ["--seconds", str(args.seconds), "--workers", args.workers, "--phases", "never",
              "--worker-class", args.worker_class]  # fmt: skip
    print("== without the pipeline worker ==")
    alone = run([*common, "--no-copy"])
    print("== with a pipeline worker ==")
    busy = run([*common, "--with-worker", str(args.pipeline_processes)])

    def row(report: dict, name: str) -> dict:
        return next(s for s in report["scenarios"] if s["name"] == name)

    lines = [
        "",
        f"ingest, {args.workers} web server processes ({args.worker_class}); pipeline worker: "
        f"{args.pipeline_processes} processes on the same cores",
        f"{'scenario':<28}{'without worker':>26}{'with worker':>26}{'pipeline meanwhile':>30}",
    ]
    summary = {}
    for name, label in (
        ("batch", "/v1/batch, 100 events"),
        ("single", "/v1/track, single"),
        ("single paced", "/v1/track, 1,500/s paced"),
    ):
        a, b = row(alone, name), row(busy, name)
        if name == "batch":
            cells = [
                f"{a['events_per_s']:,.0f} ev/s p99 {a['p99_ms']:.0f} ms",
                f"{b['events_per_s']:,.0f} ev/s p99 {b['p99_ms']:.0f} ms",
            ]
        else:
            cells = [
                f"{a['requests_per_s']:,.0f} req/s p99 {a['p99_ms']:.0f} ms",
                f"{b['requests_per_s']:,.0f} req/s p99 {b['p99_ms']:.0f} ms",
            ]
        meanwhile = f"{b['pipeline_events_per_s']:,.0f} ev/s, backlog {b['pipeline_backlog']:,}"
        lines.append(f"{label:<28}{cells[0]:>26}{cells[1]:>26}{meanwhile:>30}")
        summary[name] = {"without_worker": a, "with_worker": b}
    print("== crash recovery (bench/pipeline.py --only recovery) ==")
    recovery = crash_recovery()
    lines.append(
        f"crash recovery: a pipeline pool process SIGKILLed under 2,000 events/s; every probe"
        f" back within 1 s of being sent {recovery['recovery_s']} s later (target <= 15 s);"
        f" worst probe around the kill {recovery['worst_latency_around_kill_s']} s"
    )
    summary["recovery"] = recovery
    print("\n".join(lines))
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"ingest-{stamp}.json"
    out.write_text(json.dumps({"args": vars(args), "summary": summary}, indent=2, default=str))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
