"""Where a collector request's time goes, without a profiler's overhead.

Run by `bench/collector.py --phases` (or by hand with DATABASE_URL/REDIS_URL pointing at the
benchmark database): times, in this process and with the real functions, each phase of one
/v1/batch request of 100 events and of one /v1/track request, then the whole request through
the WSGI application (middleware included, no HTTP server). Every call stores real rows, each
event with a unique messageId, in its own workspace so the main benchmark's count check is not
disturbed. Prints a table and one JSON line (prefixed `PHASES_JSON `).
"""

from __future__ import annotations

import base64
import io
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

import django  # noqa: E402

django.setup()

from collector import make_event  # noqa: E402
from django.core.handlers.wsgi import WSGIRequest  # noqa: E402
from django.db import connection  # noqa: E402

from cdp.services import workspace_bootstrap  # noqa: E402
from cdp.wsgi import application  # noqa: E402
from profiles.collector import gate, keys, service, storage, views  # noqa: E402
from profiles.collector.decoding import parse_json  # noqa: E402
from profiles.collector.normalize import event_size, normalize_event, now_utc  # noqa: E402
from profiles.collector.service import batch_meta  # noqa: E402

ITERATIONS = int(os.environ.get("BENCH_PHASE_ITERATIONS", "200"))
_counter = 0


def unique_body(rng: random.Random, size: int, library: dict[str, str]) -> bytes:
    global _counter
    now = datetime.now(tz=UTC)
    events = []
    for _ in range(size):
        _counter += 1
        kind = "track" if size == 1 else rng.choice(["track", "track", "page", "identify"])
        events.append(make_event(rng, kind, f"phase-{os.getpid()}-{_counter}", library, now))
    if size == 1:
        return orjson.dumps(events[0])
    return orjson.dumps({"batch": events, "sentAt": now.isoformat()})


def timed(fn: Callable[[], Any], iterations: int = ITERATIONS) -> dict[str, float]:
    samples = []
    cpu = 0.0
    for _ in range(iterations):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p90_ms": round(samples[int(len(samples) * 0.9)] * 1000, 3),
        "cpu_ms": round(cpu / iterations * 1000, 3),
    }


def wsgi_environ(path: str, body: bytes, auth: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "18200",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:18200",
        "HTTP_AUTHORIZATION": auth,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def wsgi_call(path: str, body: bytes, auth: str) -> int:
    environ = wsgi_environ(path, body, auth)
    status: list[str] = []
    result = application(environ, lambda s, h, *a: status.append(s))
    b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return int(status[0][:3])


def phases_for(size: int, source: keys.SourceInfo, auth: str) -> dict[str, dict[str, float]]:
    rng = random.Random(size)
    library = {"name": "analytics.js", "version": "next-1.76.0"}
    path = "/v1/batch" if size > 1 else "/v1/track"
    route_type = None if size > 1 else "track"
    pool = [unique_body(rng, size, library) for _ in range(ITERATIONS * 6 + 10)]
    bodies = iter(pool)
    sample = next(bodies)
    parsed = orjson.loads(sample)
    raw_events = parsed["batch"] if size > 1 else [parsed]
    meta = batch_meta(parsed if size > 1 else {}, now_utc())
    normalized = [normalize_event(e, meta, forced_type=route_type) for e in raw_events]

    def normalized_batch() -> list[Any]:
        data = orjson.loads(next(bodies))
        events = data["batch"] if size > 1 else [data]
        return [normalize_event(e, meta, forced_type=route_type) for e in events]

    to_insert = iter([normalized_batch() for _ in range(ITERATIONS)])

    def insert() -> None:
        storage.insert_events(
            workspace_id=source.workspace_id, source_id=source.source_id, events=next(to_insert)
        )

    def build_rows() -> str:
        return storage.build_rows([(source.workspace_id, source.source_id, normalized)])

    def normalize_all() -> None:
        for e in raw_events:
            event_size(e)
            normalize_event(e, meta, forced_type=route_type)

    def gate_check() -> None:
        gate.check(
            source_id=source.source_id,
            workspace_id=source.workspace_id,
            events=size,
            limit=10**9,
        )

    def health_check() -> None:
        connection.is_usable()

    def kick() -> None:
        service.kick_processing(source.workspace_id)

    def whole() -> None:
        status = wsgi_call(path, next(bodies), auth)
        if status != 200:
            raise RuntimeError(f"WSGI call answered {status}")

    view = views.batch if size > 1 else views.track

    def view_only() -> None:
        response = view(WSGIRequest(wsgi_environ(path, next(bodies), auth)))
        if response.status_code != 200:
            raise RuntimeError(f"view answered {response.status_code}")

    parsed_bodies = iter([orjson.loads(next(bodies)) for _ in range(ITERATIONS)])

    def ingest() -> None:
        data = next(parsed_bodies)
        events = data["batch"] if size > 1 else [data]
        service.collector_ingest(
            source=source,
            raw_events=events,
            body=data if size > 1 else {},
            route_type=route_type,
            received_at=now_utc(),
            door_size=0,
            kick=False,
        )

    whole()  # warm: imports, key cache, connection
    phases = {
        "whole request via WSGI app (middleware+view+DB+Redis)": timed(whole),
        "  view only (no Django handler/middleware/signals)": timed(view_only),
        "    parse_json (orjson.loads)": timed(lambda: parse_json(sample)),
        "    write-key lookup (in-process cache)": timed(lambda: keys.lookup(source_key)),
        "    gate.check (Redis pipeline round trip)": timed(gate_check),
        "    collector_ingest (normalise + INSERT)": timed(ingest),
        "      normalise (event_size + normalize_event)": timed(normalize_all),
        "      insert_events (build params + INSERT round trip)": timed(insert),
        "    kick_processing (Celery apply_async; <= 5/s)": timed(kick, 20),
        "  DB health check (SELECT 1; only if DB_CONN_HEALTH_CHECKS=1)": timed(health_check),
    }
    insert_label = "      insert_events (build params + INSERT round trip)"
    ordered = {}
    for label, value in phases.items():
        ordered[label] = value
        if label == insert_label:
            ordered["        build rows (orjson.dumps: one JSON parameter)"] = timed(build_rows)
    return ordered


def main() -> int:
    global source_key
    boot = workspace_bootstrap(name="bench-phases", email=None, password=None).as_dict()
    source_key = boot["write_key"]
    source = keys.lookup(source_key)
    assert source is not None

    auth = "Basic " + base64.b64encode(f"{source_key}:".encode()).decode()
    report = {"batch_100": phases_for(100, source, auth), "single": phases_for(1, source, auth)}
    for name, phases in report.items():
        print(f"\n{name}: per request, {ITERATIONS} iterations, in-process (no HTTP server)")
        print(f"  {'phase':<62}{'median ms':>10}{'p90 ms':>9}{'cpu ms':>9}")
        for label, t in phases.items():
            print(f"  {label:<62}{t['median_ms']:>10.3f}{t['p90_ms']:>9.3f}{t['cpu_ms']:>9.3f}")
    print("PHASES_JSON " + orjson.dumps(report).decode())
    return 0


source_key = ""

if __name__ == "__main__":
    sys.exit(main())
