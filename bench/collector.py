"""Collector benchmark: drives a real web server + Postgres collector with concurrent clients.

Run it with `bin/bench` (or `.venv/bin/python bench/collector.py --help`). It sets up
everything itself:

1. a fresh database `cdp_bench` on 127.0.0.1:5432 (BENCH_DATABASE_URL overrides), migrated,
   with a bootstrapped workspace and write key; Redis db 2 (BENCH_REDIS_URL overrides);
2. the web server as `bin/start` runs it (`python -m cdp.web`: granian, 3 processes x 16
   Python threads, keep-alive) on 127.0.0.1, a free port in 18200-18299; `--worker-class
   gthread` (or sync) runs gunicorn instead, the server we ran before granian, to compare;
3. warm-up, then the scenarios, each bounded by time and by a request budget:
   - batch:  POST /v1/batch, 100 events per request, closed loop, concurrency 8;
   - paced:  POST /v1/batch at a fixed 10,000 events/s (open loop: latency is measured from
             the scheduled send time, so a slow server cannot hide its queueing);
   - single: POST /v1/track, one event per request, closed loop, concurrency 32 (enough
             clients to load the server: at 12 the answer time, not the server, bounds them);
             the most the server answers, with latencies inflated by the queue of a
             saturated closed loop (32 clients / throughput is the mean, by Little's law);
   - single paced: POST /v1/track at a fixed 1,500 requests/s (open loop, latency from the
             scheduled send time): the target's own terms, p99 at 1,500 requests/s offered;
4. a raw psycopg COPY of the batch scenario's events into `bench_copy`
   (`LIKE profiles_event INCLUDING ALL`, so the same columns and indexes), and the ratio;
5. a check that profiles_event holds exactly the events acknowledged with 200;
6. below the aims (batch < 20,000 events/s or single < 1,500 req/s; `--phases always|never`),
   bench/collector_phases.py times each phase of one request in-process.

The database is left in place for inspection and dropped by the next run. On a shared machine
each scenario first waits (at most `--wait-quiet` seconds) for other processes to leave the
CPUs idle, and the CPU table shows what else ran during the scenario.

The load generator is one OS process per concurrent client, each sending pre-built request
bytes over a plain socket (keep-alive when the server allows it — gthread does; sync workers close
the connection after every response, so they reconnect per request, as any client of them
would). CPU use of the server, Postgres, the load generator and everything else on the
machine is sampled from /proc for every scenario, so a saturated load generator would show.

`--profile` runs the same traffic against ONE cProfile'd gunicorn worker and prints where a
request's time goes. Figures are printed as a table and written as JSON to
bench/results/collector-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import array
import base64
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import pstats
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
from session import SharedSession, Spawned

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"
PORT_RANGE = range(18200, 18300)
HOST = "127.0.0.1"
# As `bin/start` runs the web server (cdp_run, cdp/web.py): granian, 3 processes (cores + 1), 16
# Python threads each (keep-alive; concurrent collector requests share one INSERT and commit).
# On 2026-12-05, single events alone, granian 3 x 16 gave 1,464-1,487 req/s against gunicorn
# gthread 3 x 16 at 939-1,070 (alternated runs). Measured earlier with gunicorn on the
# 2-core machine with the pipeline worker running, single events: 3 sync workers 467 req/s,
# 8 sync 918, 2 x 8 threads 1,297 (16 clients), 2 x 16 threads 1,383-1,547 (32 clients),
# 3 x 16 threads 1,710 (32 clients; the GIL holds one process to about one core's half).
DEFAULT_WORKERS = "3"
DEFAULT_THREADS = 16
GRANIAN = "granian"

TARGET_BATCH_EVENTS_PER_S = 10_000
AIM_BATCH_EVENTS_PER_S = 20_000
TARGET_SINGLE_REQUESTS_PER_S = 1_500
TARGET_P99_MS = 50.0

EVENT_COLUMNS = (
    "workspace_id",
    "source_id",
    "message_id",
    "type",
    "event",
    "name",
    "user_id",
    "anonymous_id",
    "group_id",
    "previous_id",
    "timestamp",
    "original_timestamp",
    "sent_at",
    "received_at",
    "properties",
    "traits",
    "context",
    "integrations",
    "extra",
)
JSON_COLUMNS = {"properties", "traits", "context", "integrations", "extra"}


# --------------------------------------------------------------------------------------------
# Realistic Segment events
# --------------------------------------------------------------------------------------------

_PRODUCTS = [
    ("sku-1001", "Trail Running Shoe", "Shoes", 129.0),
    ("sku-1002", "Merino Base Layer", "Apparel", 79.5),
    ("sku-1003", "Insulated Bottle 750 ml", "Accessories", 34.9),
    ("sku-1004", "Headlamp 400 lm", "Gear", 49.99),
    ("sku-1005", "Rain Shell Jacket", "Apparel", 219.0),
    ("sku-1006", "Hiking Poles (pair)", "Gear", 89.0),
    ("sku-1007", "Wool Socks 3-pack", "Apparel", 24.0),
    ("sku-1008", "Daypack 22 L", "Bags", 99.0),
]
_TRACK_EVENTS = [
    "Product Viewed",
    "Product Added",
    "Cart Viewed",
    "Checkout Started",
    "Order Completed",
    "Products Searched",
    "Signed In",
    "Newsletter Subscribed",
]
_PAGES = [
    ("/", "Home", "Outdoor gear for every trail"),
    ("/collections/shoes", "Collection", "Shoes - Example Outdoor"),
    ("/products/trail-running-shoe", "Product", "Trail Running Shoe - Example Outdoor"),
    ("/cart", "Cart", "Your cart - Example Outdoor"),
    ("/checkout", "Checkout", "Checkout - Example Outdoor"),
    ("/blog/layering-guide", "Blog", "How to layer for winter hikes"),
]
_USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
]
_LOCALES = [("en-US", "America/New_York"), ("de-DE", "Europe/Berlin"), ("fr-FR", "Europe/Paris")]
_LIBRARIES = [
    {"name": "analytics.js", "version": "next-1.76.0"},
    {"name": "@segment/analytics-node", "version": "2.2.1"},
    {"name": "analytics-python", "version": "2.4.0"},
]
_REFERRERS = ["https://www.google.com/", "https://duckduckgo.com/", "", "https://t.co/x1y2z3"]
USER_POOL = 50_000


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _anonymous_id(n: int) -> str:
    return f"{n:08x}-7c1e-4b5a-9d3f-{n * 2654435761 % 16**12:012x}"


def make_event(
    rng: random.Random, event_type: str, message_id: str, library: dict[str, str], now: datetime
) -> dict[str, Any]:
    """One event as Segment's SDKs send it: ids, properties/traits, context.library (plus page,
    userAgent, locale for the browser library), integrations, timestamp."""
    person = rng.randrange(USER_POOL)
    browser = library["name"] == "analytics.js"
    created = now - timedelta(milliseconds=rng.randrange(5, 2_000))
    event: dict[str, Any] = {
        "type": event_type,
        "messageId": message_id,
        "anonymousId": _anonymous_id(person) if browser or rng.random() < 0.3 else None,
        "userId": f"user-{person:06d}" if not browser or rng.random() < 0.6 else None,
        "timestamp": _iso(created),
        "integrations": {},
    }
    if event["userId"] is None and event["anonymousId"] is None:
        event["anonymousId"] = _anonymous_id(person)
    context: dict[str, Any] = {"library": library}
    if browser:
        path, category, title = rng.choice(_PAGES)
        locale, zone = rng.choice(_LOCALES)
        context.update(
            {
                "page": {
                    "path": path,
                    "referrer": rng.choice(_REFERRERS),
                    "search": "",
                    "title": title,
                    "url": f"https://shop.example.com{path}",
                },
                "userAgent": rng.choice(_USER_AGENTS),
                "locale": locale,
                "timezone": zone,
                "ip": f"203.0.113.{rng.randrange(1, 255)}",
            }
        )
    else:
        context["ip"] = f"198.51.100.{rng.randrange(1, 255)}"
    event["context"] = context
    if event_type == "track":
        sku, name, category, price = rng.choice(_PRODUCTS)
        quantity = rng.randrange(1, 4)
        event["event"] = rng.choice(_TRACK_EVENTS)
        event["properties"] = {
            "product_id": sku,
            "name": name,
            "category": category,
            "price": price,
            "quantity": quantity,
            "revenue": round(price * quantity, 2),
            "currency": "USD",
        }
    elif event_type == "page":
        path, category, title = rng.choice(_PAGES)
        event["name"] = category
        event["properties"] = {
            "path": path,
            "title": title,
            "url": f"https://shop.example.com{path}",
            "referrer": rng.choice(_REFERRERS),
        }
    else:  # identify
        event["userId"] = f"user-{person:06d}"
        event["traits"] = {
            "email": f"customer{person}@example.com",
            "first_name": rng.choice(["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken"]),
            "plan": rng.choice(["free", "pro", "enterprise"]),
            "created_at": _iso(now - timedelta(days=person % 900)),
        }
    return event


def _event_type(rng: random.Random) -> str:
    roll = rng.random()
    return "track" if roll < 0.6 else "page" if roll < 0.85 else "identify"


# --------------------------------------------------------------------------------------------
# Load generator (runs in child processes)
# --------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    path: str
    events_per_request: int
    concurrency: int
    seconds: float
    max_requests: int  # total request budget over all clients (the loop's second bound)
    rate: float | None = None  # requests/s over all clients: open loop when set
    method: str = "POST"  # OPTIONS: a browser's CORS preflight, no body


@dataclass
class ClientSpec:
    scenario: Scenario
    index: int
    port: int
    write_key: str
    tag: str
    seed: int


def build_requests(spec: ClientSpec) -> list[bytes]:
    """All of this client's requests as raw HTTP bytes, every event with a unique messageId."""
    sc = spec.scenario
    rng = random.Random(spec.seed)
    count = math.ceil(sc.max_requests / sc.concurrency)
    auth = base64.b64encode(f"{spec.write_key}:".encode()).decode()
    head = (
        f"POST {sc.path} HTTP/1.1\r\nHost: {HOST}:{spec.port}\r\n"
        f"Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
        "User-Agent: cdp-bench/1\r\nAccept: */*\r\n"
    )
    if sc.method == "OPTIONS":
        # what Chromium sends before analytics.js's first call from another origin
        preflight = (
            f"OPTIONS {sc.path} HTTP/1.1\r\nHost: {HOST}:{spec.port}\r\n"
            "Origin: https://shop.example.com\r\nAccess-Control-Request-Method: POST\r\n"
            "Access-Control-Request-Headers: authorization\r\nAccept: */*\r\n\r\n"
        ).encode()
        return [preflight] * count
    now = datetime.now(tz=UTC)
    sent_at = _iso(now)
    out: list[bytes] = []
    seq = 0
    code = sc.name.replace(" ", "_")
    for _ in range(count):
        library = rng.choice(_LIBRARIES)
        events = []
        for _ in range(sc.events_per_request):
            message_id = f"bench-{spec.tag}-{code}-{spec.index:02d}-{seq:09d}"
            seq += 1
            kind = "track" if sc.path.endswith("/track") else _event_type(rng)
            events.append(make_event(rng, kind, message_id, library, now))
        if sc.path.endswith("/batch"):
            body = orjson.dumps({"batch": events, "sentAt": sent_at})
        else:
            events[0]["sentAt"] = sent_at
            body = orjson.dumps(events[0])
        out.append(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


class Connection:
    """A minimal HTTP/1.1 client on a blocking socket: keep-alive when the server allows it,
    otherwise reconnect. Reads exactly Content-Length bytes of the body."""

    def __init__(self, port: int) -> None:
        self.address = (HOST, port)
        self.sock: socket.socket | None = None
        self.connects = 0

    def roundtrip(self, request: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connects += 1
        sock = self.sock
        try:
            sock.sendall(request)
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection before answering")
                buffer += chunk
            head, _, body = buffer.partition(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            keep = True
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    keep = False
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection mid-body")
                body += chunk
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return status, body

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None


def client_main(spec: ClientSpec, barrier: Any, results: Any) -> None:
    """One concurrent client: build, wait for the start, send until the time or the requests
    run out, report latencies and counts."""
    requests = build_requests(spec)
    sc = spec.scenario
    conn = Connection(spec.port)
    latencies = array.array("d")
    statuses: Counter[str] = Counter()
    ok_events = accepted = duplicates = failed = 0
    barrier.wait(timeout=600)
    started = time.monotonic()
    deadline = started + sc.seconds
    interval = sc.concurrency / sc.rate if sc.rate else 0.0
    next_send = started + interval * spec.index / sc.concurrency
    exhausted = True
    for request in requests:
        now = time.monotonic()
        if now >= deadline:
            exhausted = False
            break
        if interval:
            if next_send >= deadline:
                exhausted = False
                break
            if next_send > now:
                time.sleep(next_send - now)
            # Open loop: latency counts from the scheduled send time, so time a request
            # waited because the previous one was slow is not hidden (coordinated omission).
            t0 = next_send
            next_send += interval
        else:
            t0 = now
        try:
            status, body = conn.roundtrip(request)
        except OSError as exc:
            statuses[type(exc).__name__] += 1
            continue
        latencies.append(time.monotonic() - t0)
        statuses[str(status)] += 1
        if status == 200 and sc.method == "POST":
            ok_events += sc.events_per_request
            answer = orjson.loads(body)
            accepted += int(answer.get("accepted", 0))
            duplicates += int(answer.get("duplicates", 0))
            failed += int(answer.get("failed", 0))
    finished = time.monotonic()
    conn.close()
    results.put(
        {
            "index": spec.index,
            "started": started,
            "finished": finished,
            "latencies": latencies.tobytes(),
            "statuses": dict(statuses),
            "ok_events": ok_events,
            "accepted": accepted,
            "duplicates": duplicates,
            "failed": failed,
            "connects": conn.connects,
            "budget_exhausted": exhausted and len(requests) > 0,
        }
    )


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc (who used the two cores during a scenario)
# --------------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_ticks(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = text.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def _machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def wait_until_quiet(max_seconds: float, busy_percent: float = 30.0) -> float:
    """On a shared machine, wait (bounded) until other work leaves the CPUs mostly idle;
    returns the machine's busy percent (of all cores) in the last one-second sample."""
    deadline = time.monotonic() + max_seconds
    quiet_samples = 0
    share = 100.0
    while True:
        busy0, total0 = _machine_ticks()
        time.sleep(1.0)
        busy1, total1 = _machine_ticks()
        share = 100.0 * (busy1 - busy0) / max(total1 - total0, 1)
        quiet_samples = quiet_samples + 1 if share < busy_percent else 0
        if quiet_samples >= 2 or time.monotonic() >= deadline:
            return round(share, 1)


@dataclass
class CpuSnapshot:
    groups: dict[str, dict[int, int]]
    machine_busy: int
    machine_total: int
    at: float


def cpu_snapshot(groups: dict[str, Any]) -> CpuSnapshot:
    busy, total = _machine_ticks()
    return CpuSnapshot(
        groups={name: {pid: _proc_ticks(pid) for pid in pids} for name, pids in groups.items()},
        machine_busy=busy,
        machine_total=total,
        at=time.monotonic(),
    )


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """Percent of ONE core per group (200 % = both cores of a 2-core machine)."""
    seconds = max(after.at - before.at, 1e-9)
    usage: dict[str, float] = {}
    ours = 0.0
    for name, start in before.groups.items():
        end = after.groups.get(name, {})
        ticks = sum(max(end.get(pid, 0) - t, 0) for pid, t in start.items())
        usage[name] = 100.0 * ticks / CLOCK_TICKS / seconds
        ours += usage[name]
    cores = os.cpu_count() or 1
    total = after.machine_total - before.machine_total
    busy_share = (after.machine_busy - before.machine_busy) / total if total else 0.0
    usage["machine busy"] = 100.0 * cores * busy_share
    usage["other processes"] = max(usage["machine busy"] - ours, 0.0)
    return {k: round(v, 1) for k, v in usage.items()}


# --------------------------------------------------------------------------------------------
# Setup: database, server
# --------------------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def create_fresh_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to recreate database {name!r}")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def flush_redis(url: str) -> None:
    import redis

    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(url, socket_timeout=2).flushdb()


def free_port() -> int:
    for port in PORT_RANGE:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port in 18200-18299")


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _start(
    command: list[str], env: dict[str, str], log_path: Path, session: SharedSession | None
) -> subprocess.Popen[bytes] | Spawned:
    """A platform process, in the platform's shared session (bench/session.py: as bin/start
    runs it), else in a session of its own; in its own process group either way."""
    if session is not None:
        return session.spawn(command, cwd=REPO, env=env, log=log_path)
    log = log_path.open("ab")
    try:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True
        )
    finally:
        log.close()


class Server:
    """The web server on 127.0.0.1, always stopped by stop(): `python -m cdp.web` (granian, as
    bin/start runs it) for worker_class "granian", else gunicorn with that worker class."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int,
        worker_class: str,
        log: Path,
        profile_dir: Path | None = None,
        threads: int = DEFAULT_THREADS,
        session: SharedSession | None = None,
    ) -> None:
        self.env = env
        self.workers = workers
        self.worker_class = worker_class
        self.threads = threads
        self.log_path = log
        self.profile_dir = profile_dir
        self.session = session
        self.port = 0
        self.proc: subprocess.Popen[bytes] | Spawned | None = None

    def start(self) -> None:
        self.port = free_port()
        env = dict(self.env)
        command = self._granian() if self.worker_class == GRANIAN else self._gunicorn(env)
        self.proc = _start(command, env, self.log_path, self.session)
        self._wait_healthy(timeout=90)

    def _granian(self) -> list[str]:
        """As `bin/start` runs the web server (cdp_run)."""
        return [sys.executable, "-m", "cdp.web", "--bind", f"{HOST}:{self.port}",
                "--workers", str(self.workers), "--threads", str(self.threads)]  # fmt: skip

    def _gunicorn(self, env: dict[str, str]) -> list[str]:
        """gunicorn with this worker class (the server before granian), to compare; with a
        profile folder, one cProfile'd sync worker (`--profile`)."""
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "cdp.wsgi:application",
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--backlog",
            "2048",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ]
        if self.worker_class == "gthread":  # as `bin/start` ran it before granian
            command += ["--threads", str(self.threads), "--keep-alive", "5"]
        if self.profile_dir is not None:
            command += ["--config", str(REPO / "bench" / "gunicorn_profile.py")]
            env["BENCH_PROFILE_DIR"] = str(self.profile_dir)
        else:
            command += ["--config", "/dev/null"]  # never pick up a stray gunicorn.conf.py
        return command

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"the web server exited early; see {self.log_path}")
            try:
                status, _ = Connection(self.port).roundtrip(
                    f"GET /v1/batch HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
                )
            except OSError:
                time.sleep(0.2)
                continue
            if status == 405:  # routed through Django: the collector is up
                return
            time.sleep(0.2)
        raise SystemExit(
            f"the web server did not become healthy in {timeout:.0f}s; see {self.log_path}"
        )

    def worker_pids(self) -> list[int]:
        return _children(self.proc.pid) if self.proc else []

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


class PipelineWorker:
    """A real Celery worker on the pipeline's queues (`ingest` and the default one), as in
    production: the collector's kicks start drains that process the events while the load
    runs, on the same cores."""

    def __init__(
        self, env: dict[str, str], log: Path, concurrency: int, session: SharedSession | None
    ) -> None:
        self.env = env
        self.log_path = log
        self.concurrency = concurrency
        self.session = session
        self.proc: subprocess.Popen[bytes] | Spawned | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "celery", "-A", "cdp", "worker",
            "-Q", "ingest,celery", "--concurrency", str(self.concurrency),
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        self.proc = _start(command, self.env, self.log_path, self.session)
        time.sleep(3.0)  # connected to the broker before the load starts
        if self.proc.poll() is not None:
            raise SystemExit(f"the Celery worker exited early; see {self.log_path}")

    def pids(self) -> list[int]:
        """The Celery main process and its pool processes."""
        if self.proc is None:
            return []
        return [self.proc.pid, *_children(self.proc.pid)]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def pending_and_processed(db_url: str, workspace_id: int) -> tuple[int, int]:
    """(events waiting for the pipeline, events it has processed) in the workspace."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        pending = conn.execute(
            "SELECT count(*) FROM profiles_pendingevent WHERE workspace_id = %s", [workspace_id]
        ).fetchone()
        processed = conn.execute(
            "SELECT coalesce(sum(count), 0) FROM profiles_eventcounter WHERE workspace_id = %s",
            [workspace_id],
        ).fetchone()
    return int(pending[0]) if pending else 0, int(processed[0]) if processed else 0


# --------------------------------------------------------------------------------------------
# Running a scenario
# --------------------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    name: str
    path: str
    events_per_request: int
    concurrency: int
    workers: int
    target_rate_events_per_s: float | None
    seconds: float
    requests: int
    events: int
    events_per_s: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    non_200: int
    statuses: dict[str, int]
    accepted: int
    duplicates: int
    failed: int
    connects: int
    budget_exhausted: bool
    cpu_percent_of_one_core: dict[str, float] = field(default_factory=dict)
    # with --with-worker: events the pipeline processed per second during the scenario, and
    # the events still waiting at its end
    pipeline_events_per_s: float | None = None
    pipeline_backlog: int | None = None


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    rank = max(math.ceil(q * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def postgres_pids(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND"
            " (datname = current_database() OR backend_type IN"
            " ('walwriter', 'checkpointer', 'background writer'))"
        ).fetchall()
    return [int(r[0]) for r in rows]


def run_scenario(
    scenario: Scenario,
    server: Server,
    write_key: str,
    tag: str,
    db_url: str,
    pipeline: PipelineWorker | None = None,
) -> ScenarioResult:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(scenario.concurrency + 1)
    results = ctx.Queue()
    procs = []
    for index in range(scenario.concurrency):
        spec = ClientSpec(
            scenario=scenario,
            index=index,
            port=server.port,
            write_key=write_key,
            tag=tag,
            seed=zlib.crc32(f"{tag}/{scenario.name}/{index}".encode()),
        )
        proc = ctx.Process(target=client_main, args=(spec, barrier, results), daemon=True)
        proc.start()
        procs.append(proc)
    pg = postgres_pids(db_url)
    outputs: list[dict[str, Any]] = []
    try:
        barrier.wait(timeout=600)  # every client has built its requests
        before = cpu_snapshot(
            {
                "web server": [server.proc.pid, *server.worker_pids()] if server.proc else [],
                "postgres": pg,
                "load generator": [p.pid for p in procs if p.pid],
                "pipeline worker": pipeline.pids() if pipeline is not None else [],
                "redis": _pids_named("redis-server"),
            }
        )
        for _ in procs:
            outputs.append(results.get(timeout=scenario.seconds + 120))
        after = cpu_snapshot({name: list(pids) for name, pids in before.groups.items()})
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    cpu = cpu_usage(before, after)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    for out in outputs:
        chunk = array.array("d")
        chunk.frombytes(out["latencies"])
        latencies.extend(chunk)
        statuses.update(out["statuses"])
    latencies.sort()
    elapsed = max(o["finished"] for o in outputs) - min(o["started"] for o in outputs)
    requests = sum(statuses.values())
    events = sum(o["ok_events"] for o in outputs)
    return ScenarioResult(
        name=scenario.name,
        path=scenario.path,
        events_per_request=scenario.events_per_request,
        concurrency=scenario.concurrency,
        workers=server.workers,
        target_rate_events_per_s=scenario.rate * scenario.events_per_request
        if scenario.rate
        else None,
        seconds=round(elapsed, 3),
        requests=requests,
        events=events,
        events_per_s=round(events / elapsed, 1),
        requests_per_s=round(requests / elapsed, 1),
        p50_ms=round(_percentile(latencies, 0.50) * 1000, 2),
        p95_ms=round(_percentile(latencies, 0.95) * 1000, 2),
        p99_ms=round(_percentile(latencies, 0.99) * 1000, 2),
        max_ms=round((latencies[-1] if latencies else float("nan")) * 1000, 2),
        # a preflight's success is 204
        non_200=requests - statuses.get("204" if scenario.method == "OPTIONS" else "200", 0),
        statuses=dict(statuses),
        accepted=sum(o["accepted"] for o in outputs),
        duplicates=sum(o["duplicates"] for o in outputs),
        failed=sum(o["failed"] for o in outputs),
        connects=sum(o["connects"] for o in outputs),
        budget_exhausted=any(o["budget_exhausted"] for o in outputs),
        cpu_percent_of_one_core=cpu,
    )


# --------------------------------------------------------------------------------------------
# Raw COPY reference
# --------------------------------------------------------------------------------------------


def max_event_id(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM profiles_event").fetchone()
    return int(row[0]) if row else 0


def raw_copy(url: str, first_id: int, last_id: int) -> dict[str, Any]:
    """COPY the rows the batch scenario stored (same values, same columns) into a table of
    the same shape, in one COPY and again in COPYs of 100 rows with a commit each."""
    select_list = ", ".join(
        f'"{c}"::text' if c in JSON_COLUMNS else f'"{c}"' for c in EVENT_COLUMNS
    )
    column_list = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    copy_sql = f"COPY bench_copy ({column_list}) FROM STDIN"
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT {select_list} FROM profiles_event WHERE id > %s AND id <= %s ORDER BY id",
            [first_id, last_id],
        ).fetchall()
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (LIKE profiles_event INCLUDING ALL)")
        conn.commit()

        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        one_stream = time.perf_counter() - t0
        stored = conn.execute("SELECT count(*) FROM bench_copy").fetchone()

        conn.execute("TRUNCATE bench_copy")
        conn.commit()
        t0 = time.perf_counter()
        for start in range(0, len(rows), 100):
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows[start : start + 100]:
                    copy.write_row(row)
            conn.commit()
        chunked = time.perf_counter() - t0
        stored_chunked = conn.execute("SELECT count(*) FROM bench_copy").fetchone()
        conn.commit()
    n = len(rows)
    return {
        "events": n,
        "seconds": round(one_stream, 3),
        "events_per_s": round(n / one_stream, 1) if one_stream else 0.0,
        "rows_in_bench_copy": int(stored[0]) if stored else 0,
        "per_100_commit_seconds": round(chunked, 3),
        "per_100_commit_events_per_s": round(n / chunked, 1) if chunked else 0.0,
        "rows_in_bench_copy_per_100": int(stored_chunked[0]) if stored_chunked else 0,
    }


# --------------------------------------------------------------------------------------------
# Profiling (one cProfile'd worker)
# --------------------------------------------------------------------------------------------

# (label, file suffix, function name): the phases of one collector request.
PHASES = [
    ("gunicorn: accept+parse+respond (whole request)", "gunicorn/workers/sync.py", "handle"),
    ("gunicorn: HTTP request parsing", "gunicorn/http/parser.py", "__next__"),
    ("django WSGIHandler (app total)", "django/core/handlers/wsgi.py", "__call__"),
    ("  request_started/finished signals", "django/dispatch/dispatcher.py", "send"),
    ("  collector view (_ingest)", "profiles/collector/views.py", "_ingest"),
    ("    read body (request.read)", "django/core/handlers/wsgi.py", "read"),
    ("    decode_body (gzip/size)", "profiles/collector/decoding.py", "decode_body"),
    ("    parse_json (orjson.loads)", "profiles/collector/decoding.py", "parse_json"),
    ("    write key lookup", "profiles/collector/keys.py", "lookup"),
    ("    gate.check (Redis pipeline)", "profiles/collector/gate.py", "check"),
    ("    collector_ingest", "profiles/collector/service.py", "collector_ingest"),
    ("      event_size (orjson.dumps)", "profiles/collector/normalize.py", "event_size"),
    ("      normalize_event", "profiles/collector/normalize.py", "normalize_event"),
    ("      parse_timestamp", "profiles/collector/normalize.py", "parse_timestamp"),
    ("      storage.insert_events", "profiles/collector/storage.py", "insert_events"),
    ("        _json (orjson.dumps of 5 columns)", "profiles/collector/storage.py", "_json"),
    ("        cursor.execute (INSERT via Django)", "django/db/backends/utils.py", "execute"),
    ("        psycopg execute (all statements)", "psycopg/cursor.py", "execute"),
    ("          array parameter dumping (psycopg, Python)", "psycopg/types/array.py", "_dump_list"),
    ("          psycopg wait loop (dumping + server time)", "psycopg/connection.py", "wait"),
    ("      kick_processing (Celery)", "profiles/collector/service.py", "kick_processing"),
    ("    _json_response", "profiles/collector/views.py", "_json_response"),
    ("  DB health check (SELECT 1)", "django/db/backends/postgresql/base.py", "is_usable"),
    ("  close_old_connections", "django/db/__init__.py", "close_old_connections"),
]


def profile_report(profile_dir: Path, top: int = 25) -> dict[str, Any]:
    files = sorted(str(p) for p in profile_dir.glob("worker-*.prof"))
    if not files:
        return {"error": f"no profile written to {profile_dir}"}
    stats = pstats.Stats(*files)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    requests = 0
    for (filename, _, func), (_, ncalls, *_rest) in raw.items():
        if filename.endswith("profiles/collector/views.py") and func == "_ingest":
            requests += ncalls
    requests = max(requests, 1)
    app_total = 0.0
    phases = []
    for label, suffix, func in PHASES:
        cum = 0.0
        calls = 0
        for (filename, _, name), (_, ncalls, _tt, ct, _callers) in raw.items():
            if name == func and filename.endswith(suffix):
                cum += ct
                calls += ncalls
        if label.startswith("django WSGIHandler"):
            app_total = cum
        phases.append(
            {
                "phase": label,
                "calls_per_request": round(calls / requests, 2),
                "ms_per_request": round(cum / requests * 1000, 3),
            }
        )
    for phase in phases:
        phase["percent_of_app"] = (
            round(100 * phase["ms_per_request"] / (app_total / requests * 1000), 1)
            if app_total
            else None
        )
    idle = sum(
        v[3]
        for (fn, _, name), v in raw.items()
        if fn.endswith("gunicorn/workers/sync.py") and name == "wait"
    )
    busy = [kv for kv in raw.items() if kv[0][2] != "<built-in method select.select>"]
    by_tottime = sorted(busy, key=lambda kv: kv[1][2], reverse=True)[:top]
    self_time = [
        {
            "function": f"{Path(fn).name}:{line}:{name}" if fn != "~" else name,
            "calls_per_request": round(v[1] / requests, 2),
            "self_ms_per_request": round(v[2] / requests * 1000, 3),
            "cum_ms_per_request": round(v[3] / requests * 1000, 3),
        }
        for (fn, line, name), v in by_tottime
    ]
    return {
        "requests": requests,
        "idle_ms_per_request": round(idle / requests * 1000, 3),
        "phases": phases,
        "top_self_time": self_time,
        "files": files,
    }


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def print_results(report: dict[str, Any]) -> None:
    print()
    print(
        f"Collector benchmark {report['started_at']}  ({report['machine']['cpus']} CPUs, "
        f"{report['machine']['postgres']})"
    )
    header = (
        f"{'scenario':<20}{'wk':>3}{'conc':>5}{'requests':>10}{'events':>10}{'events/s':>11}"
        f"{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'non-200':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in report["scenarios"]:
        label = r["name"]
        print(
            f"{label:<20}{r['workers']:>3}{r['concurrency']:>5}{r['requests']:>10,}"
            f"{r['events']:>10,}{_fmt(r['events_per_s']):>11}{_fmt(r['requests_per_s']):>9}"
            f"{_fmt(r['p50_ms'], 1):>9}{_fmt(r['p95_ms'], 1):>9}{_fmt(r['p99_ms'], 1):>9}"
            f"{r['non_200']:>8}"
        )
    copy = report.get("raw_copy")
    if copy:
        print(
            f"{'raw COPY (1 stream)':<20}{'':>3}{1:>5}{'':>10}{copy['events']:>10,}"
            f"{_fmt(copy['events_per_s']):>11}"
        )
        print(
            f"{'raw COPY (100/commit)':<20}{'':>3}{1:>5}{'':>10}{copy['events']:>10,}"
            f"{_fmt(copy['per_100_commit_events_per_s']):>11}"
        )
    print()
    print(
        "CPU during each scenario (% of one core; the machine has "
        f"{report['machine']['cpus']} cores):"
    )
    for r in report["scenarios"]:
        cpu = r["cpu_percent_of_one_core"]
        print(
            f"  {r['name']:<18} wk={r['workers']}  web server {cpu.get('web server', 0):5.1f}  "
            f"postgres {cpu.get('postgres', 0):5.1f}  load generator "
            f"{cpu.get('load generator', 0):5.1f}  "
            + (
                f"pipeline worker {cpu['pipeline worker']:5.1f}  "
                if cpu.get("pipeline worker")
                else ""
            )
            + f"redis {cpu.get('redis', 0):4.1f}  other {cpu.get('other processes', 0):5.1f}  "
            f"machine busy {cpu.get('machine busy', 0):5.1f}"
        )
    print()
    noisy = [
        f"{r['name']} ({r['cpu_percent_of_one_core'].get('other processes', 0):.0f}%)"
        for r in report["scenarios"]
        if r["cpu_percent_of_one_core"].get("other processes", 0) > 20
    ]
    if noisy:
        print(
            "WARNING: other processes on this machine used CPU during: "
            + ", ".join(noisy)
            + " (% of one core); those figures understate the collector."
        )
    for ratio in report.get("ratios", []):
        print(
            f"ratio collector batch / raw COPY (wk={ratio['workers']}): "
            f"{ratio['batch_events_per_s']:,.0f} / {ratio['copy_events_per_s']:,.0f} = "
            f"{ratio['ratio']:.3f}"
        )
    for line in report.get("targets", []):
        print(line)
    check = report["verification"]
    print(
        f"check: rows in profiles_event = {check['rows']:,}; events acknowledged with 200 = "
        f"{check['acknowledged_events']:,}; accepted per responses = {check['accepted']:,}; "
        f"duplicates reported = {check['duplicates']}; pending = {check['pending_rows']:,}  "
        f"=> {'OK' if check['ok'] else 'MISMATCH'}"
    )
    if report.get("phases_text"):
        print(report["phases_text"].rstrip())
    for kind, profile in report.get("profiles", {}).items():
        print_profile(kind, profile)
    print(f"\nJSON: {report['json_path']}")


def print_profile(kind: str, profile: dict[str, Any]) -> None:
    if "error" in profile:
        print(f"profile: {profile['error']}")
        return
    print(
        f"\nProfile of one worker, {kind} traffic, {profile['requests']:,} requests "
        "(cProfile inflates "
        "Python-heavy parts; compare shares, not absolutes):"
    )
    print(f"  {'phase':<50}{'calls/req':>10}{'ms/req':>9}{'% app':>7}")
    for phase in profile["phases"]:
        print(
            f"  {phase['phase']:<50}{phase['calls_per_request']:>10}"
            f"{phase['ms_per_request']:>9.3f}{_fmt(phase['percent_of_app'], 1):>7}"
        )
    print(
        f"  (worker idle in select, pauses between runs included: "
        f"{profile['idle_ms_per_request']:.3f} ms/req; not part of any request)"
    )
    print("\n  top self time (idle excluded):")
    print(f"  {'function':<60}{'calls/req':>10}{'self ms':>9}{'cum ms':>9}")
    for row in profile["top_self_time"]:
        print(
            f"  {row['function'][:60]:<60}{row['calls_per_request']:>10}"
            f"{row['self_ms_per_request']:>9.3f}{row['cum_ms_per_request']:>9.3f}"
        )


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def run_phases(env: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "collector_phases.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    data = None
    lines = []
    for line in done.stdout.splitlines():
        if line.startswith("PHASES_JSON "):
            data = json.loads(line[len("PHASES_JSON ") :])
        else:
            lines.append(line)
    if done.returncode != 0:
        lines.append(f"phase timing failed:\n{done.stderr[-2000:]}")
    return data, "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=15.0, help="per scenario (default 15)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per kind")
    p.add_argument(
        "--workers",
        default=DEFAULT_WORKERS,
        help=f"web server processes, or a comma list to compare (default {DEFAULT_WORKERS})",
    )
    p.add_argument(
        "--worker-class",
        default=GRANIAN,
        choices=[GRANIAN, "gthread", "sync"],
        help="granian (default: cdp.web, as bin/start), or a gunicorn worker class to compare "
        "(--profile uses gunicorn sync: cProfile sees the main thread only)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"threads per gthread worker (default {DEFAULT_THREADS}, as bin/start)",
    )
    p.add_argument("--batch-concurrency", type=int, default=8)
    p.add_argument("--single-concurrency", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument(
        "--paced-rate",
        type=float,
        default=TARGET_BATCH_EVENTS_PER_S,
        help="events/s of the open-loop batch scenario; 0 skips it (default 10000)",
    )
    p.add_argument(
        "--single-paced-rate",
        type=float,
        default=TARGET_SINGLE_REQUESTS_PER_S,
        help="requests/s of the open-loop single-event scenario; 0 skips it (default 1500)",
    )
    p.add_argument(
        "--max-batch-rps", type=float, default=400, help="request budget: batch requests/s cap"
    )
    p.add_argument(
        "--max-single-rps", type=float, default=5000, help="request budget: single requests/s cap"
    )
    p.add_argument(
        "--only",
        choices=["batch", "single", "paced", "single-paced", "preflight"],
        action="append",
        help="run only these",
    )
    p.add_argument("--no-copy", action="store_true", help="skip the raw COPY reference")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="before each scenario wait up to this many seconds for other processes to leave "
        "the CPUs idle (shared machines); 0 = do not wait (default 60)",
    )
    p.add_argument(
        "--phases",
        choices=["auto", "always", "never"],
        default="auto",
        help="time each phase of a request in-process (bench/collector_phases.py); auto = "
        "when batch < 20,000 events/s or single < 1,500 req/s",
    )
    p.add_argument(
        "--with-worker",
        type=int,
        default=0,
        metavar="N",
        help="also run a Celery pipeline worker with N processes on the same machine, as in "
        "production (0: none, the default; the events then wait in the queue)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="one cProfile'd worker, batch then single traffic; prints where the time goes",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = datetime.now(tz=UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    worker_counts = [int(w) for w in str(args.workers).split(",")]
    wanted = set(args.only or ["batch", "paced", "single", "single-paced", "preflight"])
    if args.paced_rate <= 0:
        wanted.discard("paced")
    if args.single_paced_rate <= 0:
        wanted.discard("single-paced")
    tag = secrets.token_hex(4)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "CDP_DEFAULT_RATE_LIMIT": "10000000",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONDONTWRITEBYTECODE": "1",
    }

    print(f"setting up: fresh database {urlsplit(db_url).path.lstrip('/')}, migrations ...")
    create_fresh_database(db_url)
    flush_redis(redis_url)
    manage(env, "migrate", "--noinput")
    boot = json.loads(manage(env, "cdp_bootstrap", "--workspace", "bench").strip().splitlines()[-1])
    write_key = boot["write_key"]
    workspace_id = boot["workspace"]["id"]

    log_path = RESULTS_DIR / f"collector-{stamp}-web.log"
    scenarios: list[ScenarioResult] = []
    warmups: list[ScenarioResult] = []
    batch_ranges: dict[int, tuple[int, int]] = {}
    profiles: dict[str, Any] = {}
    seconds = args.seconds

    def scenario(name: str) -> Scenario:
        if name == "batch":
            return Scenario(
                "batch",
                "/v1/batch",
                args.batch_size,
                args.batch_concurrency,
                seconds,
                max(int(args.max_batch_rps * seconds), args.batch_concurrency),
            )
        if name == "paced":
            rate = args.paced_rate / args.batch_size
            return Scenario(
                "batch paced",
                "/v1/batch",
                args.batch_size,
                args.batch_concurrency,
                seconds,
                math.ceil(rate * seconds) + args.batch_concurrency,
                rate=rate,
            )
        if name == "single-paced":
            return Scenario(
                "single paced",
                "/v1/track",
                1,
                args.single_concurrency,
                seconds,
                math.ceil(args.single_paced_rate * seconds) + args.single_concurrency,
                rate=args.single_paced_rate,
            )
        if name == "preflight":
            return Scenario(
                "preflight",
                "/v1/t",
                0,
                args.single_concurrency,
                seconds,
                max(int(args.max_single_rps * seconds), args.single_concurrency),
                method="OPTIONS",
            )
        return Scenario(
            "single",
            "/v1/track",
            1,
            args.single_concurrency,
            seconds,
            max(int(args.max_single_rps * seconds), args.single_concurrency),
        )

    # One server per run: each worker count to compare, or (--profile) one cProfile'd worker
    # per traffic kind so that each profile holds one kind of request.
    runs: list[tuple[int, list[str], Path | None]] = (
        [
            (1, [kind], Path(tempfile.mkdtemp(prefix=f"cdp-bench-profile-{kind}-")))
            for kind in ("batch", "single")
            if kind in wanted
        ]
        if args.profile
        else [
            (
                w,
                [
                    k
                    for k in ("batch", "paced", "single", "single-paced", "preflight")
                    if k in wanted
                ],
                None,
            )
            for w in worker_counts
        ]
    )
    for run_index, (workers, kinds, profile_dir) in enumerate(runs):
        run_tag = f"{tag}r{run_index}"
        worker_class = "sync" if profile_dir is not None else args.worker_class
        # the web server and the worker in one session, as bin/start runs them
        session = SharedSession()
        server = Server(env, workers, worker_class, log_path, profile_dir, args.threads, session)
        pipeline = (
            PipelineWorker(
                env, log_path.with_name(log_path.stem + "-worker.log"), args.with_worker, session
            )
            if args.with_worker
            else None
        )
        try:
            threads = f" x {args.threads} threads" if worker_class != "sync" else ""
            name = "granian (cdp.web)" if worker_class == GRANIAN else f"gunicorn {worker_class}"
            print(f"starting {name} ({workers} workers{threads}) ...")
            server.start()
            if pipeline is not None:
                print(f"starting a Celery pipeline worker ({args.with_worker} processes) ...")
                pipeline.start()
            print(f"  listening on {HOST}:{server.port}; warming up ...")
            for kind in ("batch", "single") if not args.profile else kinds:
                sc = scenario(kind)
                warm = Scenario(
                    f"warmup-{kind}",
                    sc.path,
                    sc.events_per_request,
                    sc.concurrency,
                    args.warmup,
                    max(int(sc.max_requests * args.warmup / seconds), sc.concurrency),
                )
                warmups.append(run_scenario(warm, server, write_key, run_tag, db_url))
            for kind in kinds:
                sc = scenario(kind)
                if args.wait_quiet > 0:
                    busy = wait_until_quiet(args.wait_quiet)
                    if busy >= 30.0:
                        print(f"  machine still {busy:.0f}% busy with other work; going on")
                print(f"  {sc.name}: {sc.seconds:.0f}s, concurrency {sc.concurrency} ...")
                before_id = max_event_id(db_url)
                _, processed_before = pending_and_processed(db_url, workspace_id)
                result = run_scenario(sc, server, write_key, run_tag, db_url, pipeline)
                backlog, processed_after = pending_and_processed(db_url, workspace_id)
                result.pipeline_events_per_s = round(
                    (processed_after - processed_before) / max(result.seconds, 1e-9), 1
                )
                result.pipeline_backlog = backlog
                if kind == "batch":
                    batch_ranges[workers] = (before_id, max_event_id(db_url))
                scenarios.append(result)
                print(
                    f"    {result.events_per_s:,.0f} events/s, {result.requests_per_s:,.0f} req/s,"
                    f" p99 {result.p99_ms:.1f} ms, non-200 {result.non_200}"
                    + (
                        f"; pipeline processed {result.pipeline_events_per_s:,.0f} events/s,"
                        f" backlog {result.pipeline_backlog:,}"
                        if pipeline is not None
                        else ""
                    )
                )
        finally:
            if pipeline is not None:
                pipeline.stop()
            server.stop()
            session.close()
        if profile_dir is not None:
            profiles[kinds[0]] = profile_report(profile_dir)

    copy: dict[str, Any] | None = None
    ratios = []
    if batch_ranges and not args.no_copy and not args.profile:
        best = max((r for r in scenarios if r.name == "batch"), key=lambda r: r.events_per_s)
        first_id, last_id = batch_ranges[best.workers]
        if args.wait_quiet > 0:
            wait_until_quiet(args.wait_quiet)
        print(f"raw COPY of the {best.events:,} events of the batch run (wk={best.workers}) ...")
        copy = raw_copy(db_url, first_id, last_id)
        for r in scenarios:
            if r.name == "batch" and copy["events_per_s"]:
                ratios.append(
                    {
                        "workers": r.workers,
                        "batch_events_per_s": r.events_per_s,
                        "copy_events_per_s": copy["events_per_s"],
                        "ratio": round(r.events_per_s / copy["events_per_s"], 4),
                    }
                )

    with psycopg.connect(db_url, autocommit=True) as conn:
        rows_row = conn.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM profiles_event"
            " WHERE workspace_id = %s",
            [workspace_id],
        ).fetchone()
        pending_row = conn.execute(
            "SELECT count(*) FROM profiles_pendingevent WHERE workspace_id = %s", [workspace_id]
        ).fetchone()
        pg_version = conn.execute("SHOW server_version").fetchone()
    all_runs = warmups + scenarios
    acknowledged = sum(r.events for r in all_runs)
    accepted = sum(r.accepted for r in all_runs)
    duplicates = sum(r.duplicates for r in all_runs)
    rows = int(rows_row[0]) if rows_row else -1
    verification = {
        "rows": rows,
        "distinct_message_ids": int(rows_row[1]) if rows_row else -1,
        "acknowledged_events": acknowledged,
        "accepted": accepted,
        "duplicates": duplicates,
        "failed": sum(r.failed for r in all_runs),
        "pending_rows": int(pending_row[0]) if pending_row else -1,
        "ok": rows == acknowledged == accepted and duplicates == 0,
    }

    below_aim = any(
        (r.name == "batch" and r.events_per_s < AIM_BATCH_EVENTS_PER_S)
        or (r.name == "single" and r.requests_per_s < TARGET_SINGLE_REQUESTS_PER_S)
        for r in scenarios
    )
    phases: dict[str, Any] | None = None
    phases_text = ""
    if args.phases == "always" or (args.phases == "auto" and below_aim and not args.profile):
        if args.wait_quiet > 0:
            wait_until_quiet(args.wait_quiet)
        print("timing the phases of one request in-process (bench/collector_phases.py) ...")
        phases, phases_text = run_phases(env)
    flush_redis(redis_url)

    targets = []
    for r in scenarios:
        if r.name == "batch":
            targets.append(
                f"target batch >= {TARGET_BATCH_EVENTS_PER_S:,} events/s (aim "
                f"{AIM_BATCH_EVENTS_PER_S:,}), wk={r.workers}: {r.events_per_s:,.0f} -> "
                f"{'MET' if r.events_per_s >= TARGET_BATCH_EVENTS_PER_S else 'MISSED'}"
                f"{' (aim met)' if r.events_per_s >= AIM_BATCH_EVENTS_PER_S else ''}; "
                f"p99 {r.p99_ms:.1f} ms at concurrency {r.concurrency} -> "
                f"{'MET' if r.p99_ms <= TARGET_P99_MS else 'MISSED'}"
            )
        elif r.name == "batch paced":
            targets.append(
                f"target p99 <= {TARGET_P99_MS:.0f} ms at {r.target_rate_events_per_s:,.0f} "
                f"events/s offered, wk={r.workers}: p99 {r.p99_ms:.1f} ms, achieved "
                f"{r.events_per_s:,.0f} events/s -> "
                f"{'MET' if r.p99_ms <= TARGET_P99_MS and r.non_200 == 0 else 'MISSED'}"
            )
        elif r.name == "single":
            targets.append(
                f"target single >= {TARGET_SINGLE_REQUESTS_PER_S:,} req/s, wk={r.workers}: "
                f"{r.requests_per_s:,.0f} -> "
                f"{'MET' if r.requests_per_s >= TARGET_SINGLE_REQUESTS_PER_S else 'MISSED'}; "
                f"p99 {r.p99_ms:.1f} ms at concurrency {r.concurrency} (closed loop, saturated)"
            )
        elif r.name == "single paced":
            targets.append(
                f"target single p99 <= {TARGET_P99_MS:.0f} ms at "
                f"{r.target_rate_events_per_s:,.0f} req/s offered, wk={r.workers}: p99 "
                f"{r.p99_ms:.1f} ms, achieved {r.requests_per_s:,.0f} req/s -> "
                f"{'MET' if r.p99_ms <= TARGET_P99_MS and r.non_200 == 0 else 'MISSED'}"
            )
        elif r.name == "preflight":
            targets.append(
                f"CORS preflight (OPTIONS /v1/t, no database), wk={r.workers}: "
                f"{r.requests_per_s:,.0f} req/s, p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.1f} ms, "
                f"non-204 {r.non_200}"
            )

    json_path = RESULTS_DIR / f"collector-{stamp}{'-profile' if args.profile else ''}.json"
    report = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgres": f"PostgreSQL {pg_version[0] if pg_version else '?'}",
            "host": platform.node(),
        },
        "config": {
            "database": redact(db_url),
            "redis": redis_url,
            "worker_class": args.worker_class,
            "workers": worker_counts,
            "seconds": seconds,
            "warmup_seconds": args.warmup,
            "batch_size": args.batch_size,
            "profile": args.profile,
            "pipeline_worker_processes": args.with_worker,
        },
        "scenarios": [asdict(r) for r in scenarios],
        "warmups": [asdict(r) for r in warmups],
        "raw_copy": copy,
        "ratios": ratios,
        "targets": targets,
        "verification": verification,
        "profiles": profiles,
        "phases": phases,
        "phases_text": phases_text,
        "web_log": str(log_path),
        "json_path": str(json_path),
    }
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print_results(report)
    return 0 if verification["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
