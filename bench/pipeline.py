"""Processing-pipeline benchmark: identity resolution + profiles + computed traits + counters.

Run it with `bin/bench pipeline` (or `.venv/bin/python bench/pipeline.py --help`). It sets up
a fresh database `cdp_bench_pipeline` (BENCH_PIPELINE_DATABASE_URL overrides) and Redis db 3,
then measures three things:

1. throughput: N stored, pending events (a realistic mix: anonymous browsing, identifies with
   email, orders, second devices that merge) drained by 2 worker processes, events/s;
2. scale: the same shape of traffic (70 % of events from people who already have a profile,
   30 % from new people) processed by one worker in a workspace holding 10k profiles and in
   one holding 1M profiles (seeded with SQL); the ratio of events/s shows whether the cost
   per event grows with the size of the workspace;
3. latency: gunicorn + a real Celery worker (2 processes) while the collector is loaded at a
   steady 2,000 events/s (open loop); each request carries one probe event with a fresh
   anonymousId, and a poller records when its identity appears in a profile. p50/p95/max of
   "request sent → profile updated".

Events are put in the queue through the collector's own service layer (same normalisation
and storage as HTTP) so that (1) and (2) time the pipeline alone. Figures are printed and
written as JSON to bench/results/pipeline-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector import (  # noqa: E402 - the sibling benchmark's helpers
    HOST,
    REPO,
    RESULTS_DIR,
    Server,
    create_fresh_database,
    flush_redis,
    manage,
    redact,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_pipeline"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
TARGET_EVENTS_PER_S = 5_000
TARGET_P95_S = 1.0
BATCH = 100


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Traffic:
    """Segment-spec events of a population of people: anonymous browsing before login,
    identify with email, orders, and a second device for some people."""

    PAGES = ["Home", "Pricing", "Product", "Checkout", "Blog"]
    TRACKS = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed"]

    def __init__(self, *, seed: int, prefix: str, people: int, offset: int = 0) -> None:
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.people = people
        self.offset = offset
        self.n = 0
        self.now = datetime.now(UTC)

    def person(self) -> int:
        return self.offset + self.rng.randrange(self.people)

    def event(self, person: int | None = None) -> dict[str, Any]:
        rng = self.rng
        p = self.person() if person is None else person
        self.n += 1
        device = 1 if rng.random() < 0.25 else 0  # a quarter of activity on a second device
        event: dict[str, Any] = {
            "messageId": f"{self.prefix}-{self.n}",
            "anonymousId": f"a-{p}-{device}",
            "timestamp": _iso(self.now - timedelta(seconds=rng.randrange(0, 86400 * 30))),
            "context": {
                "library": {"name": "analytics.js", "version": "2.11.1"},
                "ip": "203.0.113.9",
            },
        }
        roll = rng.random()
        if roll < 0.15:
            event |= {
                "type": "identify",
                "userId": f"u-{p}",
                "traits": {
                    "email": f"person{p}@example.com",
                    "plan": rng.choice(["free", "pro", "team"]),
                    "visits": rng.randrange(100),
                },
            }
        elif roll < 0.55:
            name = rng.choice(self.TRACKS)
            event |= {
                "type": "track",
                "event": name,
                "properties": {"revenue": round(rng.uniform(5, 300), 2), "sku": "SKU-1"}
                if name == "Order Completed"
                else {"sku": f"SKU-{rng.randrange(50)}"},
            }
            if rng.random() < 0.5:
                event["userId"] = f"u-{p}"
        else:
            event |= {"type": "page", "name": rng.choice(self.PAGES), "properties": {"path": "/x"}}
        return event


# --------------------------------------------------------------------------------------------
# In-process Django (for ingest through the service layer and for seeding)
# --------------------------------------------------------------------------------------------


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def ingest(write_key: str, events: list[dict[str, Any]]) -> int:
    from profiles.collector import keys
    from profiles.collector.service import collector_ingest

    source = keys.lookup(write_key)
    assert source is not None, "unknown write key"
    stored = 0
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]
        result = collector_ingest(
            source=source,
            raw_events=chunk,
            body={"batch": chunk},
            route_type=None,
            received_at=datetime.now(UTC),
            door_size=0,
            kick=False,
        )
        stored += result.accepted
    return stored


def _worker(
    env: dict[str, str], workspace_id: int | None, batch_size: int, partition: Any, out: Any
) -> None:
    _django(env)
    from profiles.pipeline import queue

    done, idle = 0, 0
    while idle < 3:
        processed = queue.process_batch(
            workspace_id=workspace_id, batch_size=batch_size, partition=partition
        )
        done += processed
        idle = idle + 1 if processed == 0 else 0
        if processed == 0:
            time.sleep(0.05)
    out.put((done, queue.counters["races"], queue.counters["savepoint_retries"]))


def drain_with_workers(
    env: dict[str, str],
    workers: int,
    workspace_id: int | None,
    batch_size: int,
    partitioned: bool = True,
) -> dict[str, Any]:
    """`workers` processes drain the queue; partitioned, each takes one partition of it (as
    the Celery task does with CDP_DRAINS_PER_WORKSPACE = workers), else all share it."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(env, workspace_id, batch_size, (n, workers) if partitioned else None, out),
        )
        for n in range(workers)
    ]
    started = time.monotonic()
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    seconds = time.monotonic() - started - 3 * 0.05  # the idle polls that end each worker
    processed = sum(r[0] for r in results)
    return {
        "workers": workers,
        "partitioned": partitioned,
        "processed": processed,
        "seconds": round(seconds, 2),
        "events_per_s": round(processed / seconds) if seconds > 0 else None,
        "exclusive_reruns": sum(r[1] for r in results),
        "savepoint_retries": sum(r[2] for r in results),
    }


def bootstrap(env: dict[str, str], name: str) -> dict[str, Any]:
    out = manage(env, "cdp_bootstrap", "--workspace", name)
    return json.loads(out[out.index("{") :])


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


def scenario_throughput(env: dict[str, str], events: int, workers: int) -> dict[str, Any]:
    boot = bootstrap(env, "Throughput")
    traffic = Traffic(seed=1, prefix="tp", people=max(events // 6, 100))
    stored = ingest(boot["write_key"], [traffic.event() for _ in range(events)])
    result = drain_with_workers(env, workers, boot["workspace"]["id"], batch_size=1000)
    result["stored"] = stored
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE merged_into_id IS NULL), count(*) "
            "FROM profiles_profile WHERE workspace_id = %s",
            [boot["workspace"]["id"]],
        ).fetchone()
        assert row is not None
        result["profiles"], result["profiles_including_merged"] = row
    return result


_SEED = """
WITH p AS (
    INSERT INTO profiles_profile (workspace_id, created_at, updated_at, traits, trait_times,
        group_ids, first_seen, last_seen, event_count, event_counts, order_count, revenue,
        computed)
    SELECT %(ws)s, now(), now(), jsonb_build_object('plan', 'free'), '{}', '[]',
           now() - interval '60 days', now() - interval '1 day', 3, '{"page": 3}', 0, 0, '{}'
    FROM generate_series(1, %(n)s)
    RETURNING id
), numbered AS (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM p
)
INSERT INTO profiles_identity (workspace_id, profile_id, origin_profile_id, type, value,
                               first_seen)
SELECT %(ws)s, id, id, t.type, t.prefix || k, now() - interval '60 days'
FROM numbered, (VALUES ('user_id', 'u-'), ('anonymous_id', 'a-')) AS t(type, prefix)
"""


def seed_profiles(env: dict[str, str], workspace_id: int, count: int) -> float:
    """`count` people already known: profile + user_id u-<k> + anonymous_id a-<k>."""
    started = time.monotonic()
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(_SEED, {"ws": workspace_id, "n": count})
        conn.execute("ANALYZE profiles_profile")
        conn.execute("ANALYZE profiles_identity")
    return time.monotonic() - started


def scale_traffic(existing: int, events: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    """70 % of events from known people (u-k / a-k as seeded), 30 % from new people."""
    rng = random.Random(seed)
    traffic = Traffic(seed=seed, prefix=prefix, people=existing)
    out = []
    for _ in range(events):
        if rng.random() < 0.7:
            p = rng.randrange(existing)
            event = traffic.event(person=p)
            event["anonymousId"] = f"a-{p}"
        else:
            event = traffic.event(person=existing + 10_000_000 + rng.randrange(events))
        out.append(event)
    return out


def scenario_scale(env: dict[str, str], sizes: list[int], events: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in sizes:
        boot = bootstrap(env, f"Scale {size}")
        workspace_id = boot["workspace"]["id"]
        seeded = seed_profiles(env, workspace_id, size)
        ingest(boot["write_key"], scale_traffic(size, events, seed=size, prefix=f"s{size}"))
        run = drain_with_workers(env, 1, workspace_id, batch_size=1000)
        run["existing_profiles"] = size
        run["seed_seconds"] = round(seeded, 1)
        results[str(size)] = run
        print(f"  scale {size:>9,} profiles: {run['events_per_s']:>6,} events/s (1 worker)")
    low, high = str(min(sizes)), str(max(sizes))
    results["ratio_small_over_large"] = round(
        results[low]["events_per_s"] / results[high]["events_per_s"], 2
    )
    return results


# Segments published in the latency workspace, so the pipeline's real-time segment stage does
# its full work on every batch; the probes qualify for the first one.
LATENCY_SEGMENTS: list[tuple[str, dict[str, Any]]] = [
    ("Probed today", {"event": "Probe", "within": {"days": 1}}),
    ("Pro plan", {"trait": "plan", "op": "eq", "value": "pro"}),
    (
        "Repeat buyers",
        {
            "event": "Order Completed",
            "where": [{"property": "revenue", "op": "gte", "value": 50}],
            "count": {"op": "gte", "value": 2},
            "within": {"days": 30},
        },
    ),
    (
        "Engaged free users",
        {
            "all": [
                {"trait": "plan", "op": "eq", "value": "free"},
                {
                    "any": [
                        {"event": "Product Viewed"},
                        {"trait": "visits", "op": "gte", "value": 50},
                    ]
                },
                {"not": {"event": "Order Completed", "within": {"days": 7}}},
            ]
        },
    ),
]


def publish_segments(workspace_id: int) -> int:
    """Publish LATENCY_SEGMENTS; returns the id of the one the probes enter."""
    from cdp.models import Workspace
    from segments.services import segment_create

    workspace = Workspace.objects.get(pk=workspace_id)
    ids = [
        segment_create(workspace=workspace, name=name, rule=rule, publish=True).pk
        for name, rule in LATENCY_SEGMENTS
    ]
    return ids[0]


class Poller(threading.Thread):
    """Records when each probe's anonymousId first shows up in profiles_identity and when its
    profile first shows up as a member of the probe segment."""

    def __init__(self, url: str, workspace_id: int, segment_id: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.workspace_id = workspace_id
        self.segment_id = segment_id
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.member: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                with self.lock:
                    waiting = [k for k in self.sent if k not in self.member]
                if waiting:
                    rows = conn.execute(
                        "SELECT i.value, m.id IS NOT NULL FROM profiles_identity i "
                        "LEFT JOIN segments_membership m ON m.profile_id = i.profile_id "
                        "AND m.segment_id = %s AND m.exited_at IS NULL "
                        "WHERE i.workspace_id = %s AND i.type = 'anonymous_id' "
                        "AND i.value = ANY(%s)",
                        [self.segment_id, self.workspace_id, waiting],
                    ).fetchall()
                    now = time.monotonic()
                    with self.lock:
                        for value, is_member in rows:
                            self.seen.setdefault(value, now)
                            if is_member:
                                self.member.setdefault(value, now)
                time.sleep(0.01)


def _post(port: int, body: bytes, auth: str) -> int:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(
            "POST",
            "/v1/batch",
            body=body,
            headers={"Content-Type": "application/json", "Authorization": auth},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def scenario_latency(env: dict[str, str], rate: int, seconds: float, logs: Path) -> dict[str, Any]:
    import base64

    import orjson

    boot = bootstrap(env, "Latency")
    workspace_id = boot["workspace"]["id"]
    auth = "Basic " + base64.b64encode(f"{boot['write_key']}:".encode()).decode()
    server = Server(env, workers=2, worker_class="sync", log=logs / "gunicorn.log")
    worker_log = (logs / "celery.log").open("ab")
    celery = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "cdp",
            "worker",
            # the pipeline's queue and the default one (cdp/queues.py)
            "-Q",
            "ingest,celery",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=REPO,
        env=env,
        stdout=worker_log,
        stderr=worker_log,
        start_new_session=True,
    )
    probe_segment = publish_segments(workspace_id)
    poller = Poller(env["DATABASE_URL"], workspace_id, probe_segment)
    statuses: dict[int, int] = {}
    try:
        server.start()
        time.sleep(3)  # the Celery worker connects to the broker
        poller.start()
        traffic = Traffic(seed=3, prefix="lat", people=20_000)
        per_second = rate // BATCH
        interval = 1.0 / per_second
        total = int(seconds * per_second)
        bodies = []
        for n in range(total):
            events = [traffic.event() for _ in range(BATCH - 1)]
            probe = f"probe-{n}"
            events.append(
                {
                    "type": "track",
                    "event": "Probe",
                    "anonymousId": probe,
                    "messageId": f"probe-msg-{n}",
                }
            )
            bodies.append((probe, orjson.dumps({"batch": events})))
        senders: list[threading.Thread] = []
        start = time.monotonic() + 0.5
        for n, (probe, body) in enumerate(bodies):
            due = start + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with poller.lock:
                poller.sent[probe] = due  # open loop: from the scheduled send time

            def send(body: bytes = body) -> None:
                status = _post(server.port, body, auth)
                statuses[status] = statuses.get(status, 0) + 1

            thread = threading.Thread(target=send, daemon=True)
            thread.start()
            senders.append(thread)
        for thread in senders:
            thread.join(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with poller.lock:
                if len(poller.member) == len(poller.sent):
                    break
            time.sleep(0.1)
    finally:
        poller.stop.set()
        server.stop()
        celery.terminate()
        try:
            celery.wait(timeout=20)
        except subprocess.TimeoutExpired:
            celery.kill()
        worker_log.close()
    latencies = sorted(poller.seen[k] - poller.sent[k] for k in poller.seen)
    to_member = sorted(poller.member[k] - poller.sent[k] for k in poller.member)
    missing = len(poller.sent) - len(poller.seen)

    def pct(values: list[float], q: float) -> float | None:
        if not values:
            return None
        return round(values[min(len(values) - 1, int(q * len(values)))], 3)

    return {
        "rate_events_per_s": rate,
        "seconds": seconds,
        "requests": len(poller.sent),
        "statuses": statuses,
        "published_segments": len(LATENCY_SEGMENTS),
        "probes_seen": len(latencies),
        "probes_missing": missing,
        "p50_s": pct(latencies, 0.50),
        "p95_s": pct(latencies, 0.95),
        "max_s": round(latencies[-1], 3) if latencies else None,
        "members_seen": len(to_member),
        "member_p50_s": pct(to_member, 0.50),
        "member_p95_s": pct(to_member, 0.95),
        "member_max_s": round(to_member[-1], 3) if to_member else None,
    }


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000, help="throughput: events")
    parser.add_argument("--workers", type=int, default=2, help="throughput: worker processes")
    parser.add_argument(
        "--scale", default="10000,1000000", help="scale: existing profiles per workspace"
    )
    parser.add_argument("--scale-events", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=2_000, help="latency: collector events/s")
    parser.add_argument("--seconds", type=float, default=30, help="latency: load duration")
    parser.add_argument(
        "--only",
        choices=["throughput", "scale", "latency"],
        action="append",
        help="run only these scenarios (repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db_url = os.environ.get("BENCH_PIPELINE_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_PIPELINE_REDIS_URL", DEFAULT_REDIS_URL)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "DEBUG": "0",
        "CDP_REQUIRE_SECRET_KEY": "0",
    }
    print(f"database {redact(db_url)}, redis {redis_url}")
    create_fresh_database(db_url)
    flush_redis(redis_url)
    manage(env, "migrate", "--noinput")
    _django(env)
    only = set(args.only or ["throughput", "scale", "latency"])
    report: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "cpus": os.cpu_count()}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    logs = RESULTS_DIR / "logs"
    logs.mkdir(exist_ok=True)
    if "throughput" in only:
        print(f"throughput: {args.events:,} events, {args.workers} workers …")
        report["throughput"] = scenario_throughput(env, args.events, args.workers)
        t = report["throughput"]
        print(
            f"  {t['processed']:,} events in {t['seconds']} s = {t['events_per_s']:,} events/s"
            f" (target {TARGET_EVENTS_PER_S:,}); {t['profiles']:,} profiles,"
            f" identity races: {t['savepoint_retries']} savepoint retries,"
            f" {t['exclusive_reruns']} exclusive re-runs"
        )
    if "scale" in only:
        sizes = [int(s) for s in args.scale.split(",")]
        print(f"scale: {args.scale_events:,} events into workspaces of {sizes} profiles …")
        report["scale"] = scenario_scale(env, sizes, args.scale_events)
        print(f"  events/s ratio small/large: {report['scale']['ratio_small_over_large']}")
    if "latency" in only:
        print(f"latency: collector at {args.rate:,} events/s for {args.seconds:.0f} s …")
        report["latency"] = lat = scenario_latency(env, args.rate, args.seconds, logs)
        print(
            f"  event → profile: p50 {lat['p50_s']} s, p95 {lat['p95_s']} s, max {lat['max_s']}"
            f" s (target p95 ≤ {TARGET_P95_S} s); {lat['probes_missing']} probes missing;"
            f" statuses {lat['statuses']}"
        )
        print(
            f"  event → segment membership ({lat['published_segments']} published segments):"
            f" p50 {lat['member_p50_s']} s, p95 {lat['member_p95_s']} s,"
            f" max {lat['member_max_s']} s (target p95 ≤ 1 s);"
            f" {lat['requests'] - lat['members_seen']} probes never entered"
        )
    path = RESULTS_DIR / f"pipeline-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
