"""Activation benchmark: audience syncs and event streams delivered to a webhook receiver.

Run it with `bin/bench activation` (or `.venv/bin/python bench/activation.py --help`). Every
scenario starts from a fresh database `cdp_bench_activation` (BENCH_ACTIVATION_DATABASE_URL
overrides; cloned from a migrated template, so migrations run once per invocation), Redis
db 9 (BENCH_ACTIVATION_REDIS_URL) and its own Celery queue prefix, and runs the platform's
real processes: the activation worker as the launcher runs it (`--pool threads --concurrency
8` on the `activation` queue) and Celery beat (whose `activation.tasks.tick` plans real-time
deltas and re-kicks due deliveries every 3 s); for the stream, gunicorn and the ingest/default
worker as well. Deliveries go to a receiver in its own process (asyncio, keep-alive HTTP/1.1)
that parses every body, counts items and unique ids and records arrival times; its capacity
is measured first, so it is known not to be the bottleneck.

1. initial: `--profiles` people (1M; SQL: profile, an email and a user_id identity, membership
   of one published segment with its change rows), a webhook destination (batch 1000,
   concurrency 8, purpose analytics) and a sync (email as SHA-256 + user_id) enabled and run
   ("Run now"): planning time, delivery time, run start → last item received, profiles/s
   (target ≥ 20,000), duplicates (must be 0), CPU per part.
2. delta: 1 % changes recorded as the real-time segment path records them (membership rows
   exited / inserted and segments_membershipchange rows, in one transaction): half leave, half
   are new people who enter. The beat's tick plans the delta; time until the receiver has all
   of it. A delta and a full resync right after must send nothing.
3. stream: a stream of the source's track events to the receiver while `/v1/batch` takes an
   open-loop 1,000 events/s (batches of 10-50) for `--stream-seconds`; each event carries its
   scheduled send time, latency = arrival − send time (target p95 ≤ 2 s), nothing lost.
4. outage: three destinations syncing the same `--outage-members` audience, once all healthy
   (baseline) and once with one receiver answering 500 for its first `--outage-seconds`: the
   healthy ones' completion time against the baseline (ratio ≈ 1); the sick one loses
   nothing, each key is accepted once, and the time to drain after it recovers.

Exits non-zero only on a correctness failure (loss, duplicates, a payload that is not an
object, a rerun that sends); speed is reported, never enforced: a sync run still going after
`--sync-timeout` seconds is reported unfinished (its rest waits in the outbox) and the delta is
skipped. `--profile-worker` samples the activation worker with py-spy and Postgres' active
queries during the initial sync. Figures are printed and written as JSON to
bench/results/activation-<timestamp>.json (with the commit and the activation files changed
on top of it); process logs go to bench/results/logs/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import psycopg

# This file is named like the `activation` app: the repository goes first on sys.path, before
# bench/ (for collector.py), so that `import activation` finds the app, not this file.
sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]
from collector import (  # noqa: E402 - the sibling benchmark's helpers
    CLOCK_TICKS,
    HOST,
    REPO,
    RESULTS_DIR,
    Server,
    _machine_ticks,
    _proc_ticks,
    flush_redis,
    free_port,
    manage,
    redact,
    wait_until_quiet,
    with_database,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_activation"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
QUEUE_PREFIX = "benchact-"
TARGET_PROFILES_PER_S = 20_000
TARGET_STREAM_P95_S = 2.0
ACTIVATION_THREADS = 8
MAPPING = {"identifiers": [{"type": "email", "hash": "sha256"}, {"type": "user_id"}]}
POLICY = {"batch_size": 1000, "concurrency": 4}
# the initial sync's destination: as many senders as the activation worker has threads (8),
# for a receiver that takes them (the three outage destinations share those 8 threads)
INITIAL_POLICY = {**POLICY, "concurrency": 8}
SCENARIOS = ("initial", "delta", "stream", "outage")


# --------------------------------------------------------------------------------------------
# The receiver: its own process, asyncio, keep-alive HTTP/1.1; state per path
# --------------------------------------------------------------------------------------------


@dataclass
class Hook:
    fail_until: float = 0.0  # epoch seconds: answer 500 until then
    requests: int = 0
    rejected_requests: int = 0
    items: int = 0  # items of requests answered 200
    rejected_items: int = 0
    ids: set[str] = field(default_factory=set)  # item ids (idempotency keys) accepted
    messages: set[str] = field(default_factory=set)  # forwarded events' messageId
    kinds: Counter[str] = field(default_factory=Counter)
    first_at: float | None = None
    last_at: float | None = None
    latencies: list[float] = field(default_factory=list)  # per first-seen event
    per_second: Counter[int] = field(default_factory=Counter)
    malformed: int = 0  # requests answered 400: not {"items": [objects]}
    bad_data: int = 0  # accepted items whose `data` is not an object

    def take(self, body: bytes, now: float) -> int:
        doc = orjson.loads(body) if body else None
        items = doc.get("items") if isinstance(doc, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            self.malformed += 1
            return 400
        self.requests += 1
        if now < self.fail_until:
            self.rejected_requests += 1
            self.rejected_items += len(items)
            return 500
        self.items += len(items)
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.per_second[int(now)] += len(items)
        for item in items:
            self.ids.add(str(item.get("id")))
            self.kinds[str(item.get("type"))] += 1
            data = item.get("data")
            if not isinstance(data, dict):
                self.bad_data += 1  # a payload that is not a JSON object
                continue
            message = data.get("messageId")
            if message is not None and message not in self.messages:
                self.messages.add(message)
                sent = (data.get("properties") or {}).get("sent_at")
                if isinstance(sent, int | float):
                    self.latencies.append(now - sent)
        return 200

    def summary(self, latencies: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "rejected_requests": self.rejected_requests,
            "items": self.items,
            "rejected_items": self.rejected_items,
            "malformed_requests": self.malformed,
            "bad_data_items": self.bad_data,
            "unique": len(self.ids),
            "messages": len(self.messages),
            "kinds": dict(self.kinds),
            "first_at": self.first_at,
            "last_at": self.last_at,
            "peak_items_per_s": max(self.per_second.values(), default=0),
        }
        if latencies:
            out["latencies"] = self.latencies
        return out


def serve_receiver(port: int) -> None:
    hooks: dict[str, Hook] = {}

    def control(method: str, target: str, body: bytes) -> tuple[int, bytes]:
        parts = urlsplit(target)
        if parts.path == "/_stats":
            with_latencies = "latencies" in parse_qs(parts.query)
            return 200, orjson.dumps({p: h.summary(with_latencies) for p, h in hooks.items()})
        if parts.path == "/_reset" and method == "POST":
            hooks.clear()
            for path, until in (orjson.loads(body or b"{}").get("fail") or {}).items():
                hooks[path] = Hook(fail_until=float(until))
            return 200, b'{"ok":true}'
        path = parts.path
        hook = hooks.get(path)
        if hook is None:
            hook = hooks[path] = Hook()
        status = hook.take(body, time.time())
        return status, b'{"ok":true}' if status == 200 else b'{"error":"%d"}' % status

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                try:
                    status, payload = control(method, target, body)
                except ValueError as exc:  # not JSON: the sender's bug, said as such
                    status, payload = 400, orjson.dumps({"error": str(exc)})
                reason = {200: b"OK", 400: b"Bad Request"}.get(status, b"Internal Server Error")
                writer.write(
                    b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (status, reason, len(payload), payload)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, HOST, port, backlog=256)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Receiver:
    """The receiver process and a client for its control paths."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        out = log.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, __file__, "--serve-receiver", str(self.port)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=out,
            start_new_session=True,
        )
        out.close()
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise SystemExit(f"the receiver did not start; see {log}")

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def _call(self, method: str, path: str, body: bytes = b"") -> Any:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers={"content-length": str(len(body))})
            return orjson.loads(conn.getresponse().read())
        finally:
            conn.close()

    def reset(self, fail: dict[str, float] | None = None) -> None:
        self._call("POST", "/_reset", orjson.dumps({"fail": fail or {}}))

    def stats(self, latencies: bool = False) -> dict[str, dict[str, Any]]:
        return dict(self._call("GET", "/_stats?latencies=1" if latencies else "/_stats"))

    def hook(self, path: str, latencies: bool = False) -> dict[str, Any]:
        empty = Hook().summary(latencies)
        return self.stats(latencies).get(path, empty)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _capacity_client(port: int, body: bytes, seconds: float, out: Any) -> None:
    request = (
        b"POST /_capacity HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    sock = socket.create_connection((HOST, port))
    done = 0
    deadline = time.monotonic() + seconds
    buffer = b""
    while time.monotonic() < deadline:
        sock.sendall(request)
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += sock.recv(65536)
        buffer = rest[length:]
        done += 1
    sock.close()
    out.put(done)


def receiver_capacity(receiver: Receiver, clients: int = 2, seconds: float = 4.0) -> dict[str, Any]:
    """Requests of 1,000 audience items (the initial sync's shape) from `clients` processes
    over keep-alive connections, as fast as the receiver answers. The clients share the
    cores with it, so this is a lower bound of what it can take."""
    items = [
        {
            "id": f"{n:08d}-0000-4000-8000-000000000000",
            "type": "audience.upsert",
            "profile_id": n,
            "data": {
                "sync": 1,
                "audience": {"id": 1, "key": "pro-plan", "name": "Pro plan"},
                "op": "upsert",
                "identifiers": {"email_sha256": ["ab" * 32], "user_id": [f"u-{n}"]},
                "added": {"email_sha256": ["ab" * 32], "user_id": [f"u-{n}"]},
                "removed": {},
                "fields": {},
                "fields_hash": "",
                "state": ["email_sha256:" + "ab" * 32, f"user_id:u-{n}"],
            },
        }
        for n in range(1000)
    ]
    body = orjson.dumps({"id": "msg_capacity", "type": "batch", "items": items})
    receiver.reset()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_capacity_client, args=(receiver.port, body, seconds, out))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    requests = sum(out.get() for _ in procs)
    for proc in procs:
        proc.join()
    receiver.reset()
    return {
        "items_per_s": round(requests * 1000 / seconds),
        "requests_per_s": round(requests / seconds),
        "body_bytes": len(body),
        "clients": clients,
    }


# --------------------------------------------------------------------------------------------
# The platform's processes
# --------------------------------------------------------------------------------------------


def _broker(queue: str) -> str:
    return QUEUE_PREFIX + ("celery" if queue == "default" else queue)


class Platform:
    """The launcher's children, started one by one as a scenario needs them: the activation
    worker (threads), beat, the ingest/default worker (prefork) and gunicorn."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.server: Any = None

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.logs / f"activation-{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "celery", "-A", "cdp.celery:app", *argv],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()

    def start_activation_worker(self) -> None:
        node = f"benchact-activation-{os.getpid()}@{socket.gethostname()}"
        self._spawn(
            "activation-worker",
            [
                "worker", "--queues", _broker("activation"), "--pool", "threads",
                "--concurrency", str(ACTIVATION_THREADS), "--hostname", node,
                "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
            ],
        )  # fmt: skip
        self._wait_ready(node, "activation-worker")

    def start_pipeline_worker(self) -> None:
        node = f"benchact-pipeline-{os.getpid()}@{socket.gethostname()}"
        self._spawn(
            "pipeline-worker",
            [
                "worker", "--queues", f"{_broker('ingest')},{_broker('default')}",
                "--concurrency", "2", "--hostname", node, "--loglevel", "WARNING",
                "--without-mingle", "--without-gossip",
            ],
        )  # fmt: skip
        self._wait_ready(node, "pipeline-worker")

    def start_beat(self) -> None:
        schedule = self.logs / "activation-celerybeat-schedule"
        for stale in self.logs.glob("activation-celerybeat-schedule*"):
            stale.unlink()
        self._spawn("beat", ["beat", "--schedule", str(schedule), "--loglevel", "WARNING"])
        deadline = time.monotonic() + 60
        while not list(self.logs.glob("activation-celerybeat-schedule*")):  # beat is up
            if self.procs["beat"].poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"beat did not start; see {self.logs}/activation-beat.log")
            time.sleep(0.2)

    def start_web(self) -> None:
        self.server = Server(
            self.env, workers=2, worker_class="sync", log=self.logs / "activation-gunicorn.log"
        )
        self.server.start()

    def _wait_ready(self, node: str, name: str, timeout: float = 60) -> None:
        from cdp.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise SystemExit(f"{name} exited; see {self.logs}/activation-{name}.log")
            if app.control.ping(destination=[node], timeout=0.5):
                return
        raise SystemExit(f"{name} did not answer a ping in {timeout:.0f} s")

    def pid(self, name: str) -> int | None:
        if name == "web":
            return self.server.proc.pid if self.server and self.server.proc else None
        proc = self.procs.get(name)
        return proc.pid if proc is not None else None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()


def _tree(pid: int | None) -> list[int]:
    import psutil

    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


class Monitor(threading.Thread):
    """Samples, every 0.25 s, the CPU ticks of each part's processes (the backends of the
    bench database for Postgres: on a shared server, other databases' work is not ours) and,
    with `queries`, what those backends are running (a poor man's pg_stat_statements)."""

    def __init__(
        self, url: str, parts: dict[str, Callable[[], list[int]]], queries: bool = False
    ) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.parts = parts
        self.queries = queries
        self.first: dict[tuple[str, int], int] = {}
        self.last: dict[tuple[str, int], int] = {}
        self.active: Counter[str] = Counter()
        self.samples = 0
        self.halt = threading.Event()
        self.started_at = 0.0
        self.machine0 = (0, 0)

    def run(self) -> None:
        self.started_at = time.monotonic()
        self.machine0 = _machine_ticks()
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.halt.is_set():
                rows = conn.execute(
                    "SELECT pid, state, wait_event_type, left(regexp_replace(query, "
                    "'\\s+', ' ', 'g'), 90) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
                pids = {"postgres": [r[0] for r in rows]}
                if self.queries:
                    self.samples += 1
                    for _, state, wait, query in rows:
                        if state == "active":
                            self.active[f"[{wait or 'CPU'}] {query}"] += 1
                for name, pids_of in self.parts.items():
                    pids[name] = pids_of()
                for name, found in pids.items():
                    for pid in found:
                        ticks = _proc_ticks(pid)
                        self.first.setdefault((name, pid), ticks)
                        self.last[(name, pid)] = ticks
                self.halt.wait(0.25)

    def finish(self) -> dict[str, Any]:
        self.halt.set()
        self.join(timeout=5)
        seconds = max(time.monotonic() - self.started_at, 1e-9)
        usage: Counter[str] = Counter()
        for key, ticks in self.last.items():
            usage[key[0]] += ticks - self.first[key]
        percent = {k: round(100.0 * v / CLOCK_TICKS / seconds, 1) for k, v in usage.items()}
        busy1, total1 = _machine_ticks()
        cores = os.cpu_count() or 1
        share = (busy1 - self.machine0[0]) / max(total1 - self.machine0[1], 1)
        percent["machine busy"] = round(100.0 * cores * share, 1)
        ours = sum(v for k, v in percent.items() if k != "machine busy")
        percent["other processes"] = round(max(percent["machine busy"] - ours, 0.0), 1)
        out: dict[str, Any] = {"cpu_percent_of_one_core": percent}
        if self.queries and self.samples:
            out["postgres_active_share"] = {
                q: round(n / self.samples, 2) for q, n in self.active.most_common(12)
            }
        return out


# --------------------------------------------------------------------------------------------
# Database, workspace and data
# --------------------------------------------------------------------------------------------


class Databases:
    """A migrated template, cloned for each scenario (CREATE DATABASE … TEMPLATE)."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.url = url
        self.name = urlsplit(url).path.lstrip("/")
        if not self.name.replace("_", "").isalnum():
            raise SystemExit(f"refusing to recreate database {self.name!r}")
        self.template = self.name + "_template"
        self.env = env
        self.migrated = False

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(with_database(self.url, "postgres"), autocommit=True)

    def fresh(self) -> None:
        from django.db import connections

        connections.close_all()
        with self._admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            if not self.migrated:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{self.template}"')
        if not self.migrated:
            manage(
                {**self.env, "DATABASE_URL": with_database(self.url, self.template)},
                "migrate",
                "--noinput",
            )
            self.migrated = True
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{self.name}" TEMPLATE "{self.template}"')
        flush_redis(self.env["REDIS_URL"])

    def drop_template(self) -> None:
        if self.migrated:
            with self._admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


@dataclass
class Tenant:
    workspace_id: int
    write_key: str
    segment_id: int = 0
    segment_version: int = 1


def bootstrap(env: dict[str, str], name: str) -> Tenant:
    out = manage(env, "cdp_bootstrap", "--workspace", name)
    boot = json.loads(out[out.index("{") :])
    from cdp.models import Workspace
    from consent.services import purposes_install_defaults

    purposes_install_defaults(workspace=Workspace.objects.get(pk=boot["workspace"]["id"]))
    return Tenant(boot["workspace"]["id"], boot["write_key"])


def publish_segment(tenant: Tenant) -> None:
    from cdp.models import Workspace
    from segments.services import segment_create

    segment = segment_create(
        workspace=Workspace.objects.get(pk=tenant.workspace_id),
        name="Pro plan",
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        publish=True,
    )
    segment.refresh_from_db()
    assert segment.published_version is not None
    tenant.segment_id = segment.pk
    tenant.segment_version = segment.published_version.number


# new members: a profile with traits, an email and a user_id identity, the membership and its
# change row (what the segment's evaluation writes when they qualify)
_MEMBERS = """
WITH p AS (
    INSERT INTO profiles_profile (workspace_id, created_at, updated_at, traits, trait_times,
        group_ids, first_seen, last_seen, event_count, event_counts, order_count, revenue,
        computed)
    SELECT %(ws)s, %(at)s, %(at)s,
           jsonb_build_object('plan', 'pro', 'first_name', 'P' || g, 'country', 'DE'),
           '{}', '[]', %(at)s - interval '30 days', %(at)s, 0, '{}', 0, 0, '{}'
    FROM generate_series(1, %(n)s) AS g
    RETURNING id
), i AS (
    INSERT INTO profiles_identity (workspace_id, profile_id, origin_profile_id, type, value,
        first_seen)
    SELECT %(ws)s, p.id, p.id, t.type,
           CASE t.type WHEN 'user_id' THEN 'u-' || p.id
                       ELSE 'Person.' || p.id || '@Example.com' END, %(at)s
    FROM p, (VALUES ('email'), ('user_id')) AS t(type)
), m AS (
    INSERT INTO segments_membership (segment_id, profile_id, version, entered_at)
    SELECT %(segment)s, p.id, %(version)s, %(at)s FROM p
)
INSERT INTO segments_membershipchange (workspace_id, segment_id, profile_id, kind, version, at)
SELECT %(ws)s, %(segment)s, p.id, 'entered', %(version)s, %(at)s FROM p
"""

# members who no longer qualify: their trait changed, the membership is closed and the exit
# recorded, as segments.services.apply_sql does
_EXITS = """
WITH gone AS (
    SELECT profile_id FROM segments_membership
    WHERE segment_id = %(segment)s AND exited_at IS NULL
    ORDER BY hashint8(profile_id) LIMIT %(n)s
), traits AS (
    UPDATE profiles_profile p SET traits = p.traits || '{"plan": "free"}', updated_at = %(at)s
    FROM gone WHERE p.id = gone.profile_id
), exited AS (
    UPDATE segments_membership m SET exited_at = %(at)s
    FROM gone WHERE m.segment_id = %(segment)s AND m.profile_id = gone.profile_id
      AND m.exited_at IS NULL
    RETURNING m.profile_id
)
INSERT INTO segments_membershipchange (workspace_id, segment_id, profile_id, kind, version, at)
SELECT %(ws)s, %(segment)s, profile_id, 'exited', %(version)s, %(at)s FROM exited
"""


def add_members(url: str, tenant: Tenant, n: int, *, step: int = 200_000) -> float:
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        for offset in range(0, n, step):
            conn.execute(_MEMBERS, _member_params(tenant, min(step, n - offset)))
        conn.execute(
            "UPDATE segments_segment SET member_count = member_count + %s WHERE id = %s",
            [n, tenant.segment_id],
        )
        for table in (
            "profiles_profile",
            "profiles_identity",
            "segments_membership",
            "segments_membershipchange",
        ):
            conn.execute(f"VACUUM ANALYZE {table}")
    return time.monotonic() - started


def _member_params(tenant: Tenant, n: int) -> dict[str, Any]:
    return {
        "ws": tenant.workspace_id,
        "segment": tenant.segment_id,
        "version": tenant.segment_version,
        "n": n,
        "at": datetime.now(UTC),
    }


def webhook(tenant: Tenant, name: str, url: str, policy: dict[str, Any] | None = None) -> int:
    from activation import services
    from cdp.models import Workspace

    destination, _ = services.destination_create(
        workspace=Workspace.objects.get(pk=tenant.workspace_id),
        data={
            "name": name,
            "kind": "webhook",
            "purpose": "analytics",
            "config": {"url": url},
            **(policy or POLICY),
        },
    )
    return destination.pk


def disabled_sync(tenant: Tenant, name: str, destination_id: int) -> int:
    """A sync created paused: nothing is planned until the scenario enables it."""
    from activation.syncs import services
    from cdp.models import Workspace

    sync = services.sync_create(
        workspace=Workspace.objects.get(pk=tenant.workspace_id),
        data={
            "name": name,
            "segment": tenant.segment_id,
            "destination": destination_id,
            "mapping": MAPPING,
            "enabled": False,
        },
    )
    return sync.pk


def start_sync(sync_id: int) -> None:
    """What the Sync page does: enable it, then "Run now" (the initial run, as a task)."""
    from activation.models import Sync
    from activation.syncs import services

    sync = Sync.objects.select_related("workspace").get(pk=sync_id)
    sync = services.sync_update(sync=sync, data={"enabled": True})
    services.sync_run_now(sync=sync)


def deliveries(url: str, destination_id: int) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status, sum(COALESCE(cardinality(profile_ids), 1)) FROM activation_delivery "
            "WHERE destination_id = %s AND reason <> 'split' GROUP BY status",
            [destination_id],
        ).fetchall()
    return {str(status): int(n) for status, n in rows}


def attempts(url: str, destination_id: int) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT outcome, count(*) FROM activation_deliveryattempt WHERE destination_id = %s "
            "GROUP BY outcome",
            [destination_id],
        ).fetchall()
    return {str(outcome): int(n) for outcome, n in rows}


def attempt_timeline(url: str, destination_id: int, t0: float) -> list[str]:
    """Each request to the destination: seconds after `t0`, outcome, items (why a drain took
    as long as it did: backoff, circuit breaker)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM at), outcome, items "
            "FROM activation_deliveryattempt WHERE destination_id = %s ORDER BY at",
            [destination_id],
        ).fetchall()
    return [f"{float(at) - t0:.1f}s {outcome} {n}" for at, outcome, n in rows]


def runs(url: str, sync_id: int) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT kind, extract(epoch FROM started_at), extract(epoch FROM finished_at), "
            "added, updated, removed, unchanged FROM activation_syncrun WHERE sync_id = %s "
            "ORDER BY id",
            [sync_id],
        ).fetchall()
    keys = ("kind", "started_at", "finished_at", "added", "updated", "removed", "unchanged")
    return [
        {k: v if k == "kind" or v is None else float(v) for k, v in zip(keys, row, strict=True)}
        for row in rows
    ]


def wait_for(
    receiver: Receiver,
    path: str,
    expected: int,
    *,
    key: str = "unique",
    stall: float = 90.0,
    deadline: float = 1800.0,
    progress: Callable[[float, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Until the receiver holds `expected` unique items on `path`, nothing new arrived for
    `stall` seconds, or `deadline` seconds passed; `progress` is called every 30 s."""
    started = time.monotonic()
    last, changed, told = -1, started, started
    while True:
        got = receiver.hook(path)
        now = time.monotonic()
        if got[key] >= expected:
            return got
        if got[key] != last:
            last, changed = got[key], now
        if now - changed > stall or now - started > deadline:
            return got
        if progress is not None and now - told >= 30:
            told = now
            progress(now - started, got)
        time.sleep(0.2)


def settle(url: str, destination_ids: list[int], timeout: float = 60.0) -> None:
    """Until no delivery of these destinations is pending or being sent."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM activation_delivery WHERE destination_id = ANY(%s) "
                "AND status IN ('pending', 'sending')",
                [destination_ids],
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.2)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


@dataclass
class Bench:
    env: dict[str, str]
    url: str
    dbs: Databases
    receiver: Receiver
    logs: Path
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            print(f"  FAILED: {what}", flush=True)


@dataclass
class SyncRig:
    tenant: Tenant
    destination_id: int
    sync_id: int
    platform: Platform
    members: int


def scenario_initial(
    bench: Bench, profiles: int, profile_worker: bool, timeout: float
) -> tuple[dict[str, Any], SyncRig]:
    bench.dbs.fresh()
    tenant = bootstrap(bench.env, "Activation bench")
    publish_segment(tenant)
    print(f"  generating {profiles:,} members with SQL …", flush=True)
    generated = add_members(bench.url, tenant, profiles)
    path = "/hook/initial"
    destination = webhook(tenant, "Initial", bench.receiver.url(path), INITIAL_POLICY)
    sync_id = disabled_sync(tenant, "Pro plan → webhook", destination)
    platform = Platform(bench.env, bench.logs)
    try:
        platform.start_activation_worker()
        platform.start_beat()
        rig = SyncRig(tenant, destination, sync_id, platform, profiles)
        return _initial_run(bench, rig, path, generated, profile_worker, timeout)
    except BaseException:
        platform.stop()
        raise


def _initial_run(
    bench: Bench, rig: SyncRig, path: str, generated: float, profile_worker: bool, timeout: float
) -> tuple[dict[str, Any], SyncRig]:
    platform, destination, sync_id, profiles = (
        rig.platform,
        rig.destination_id,
        rig.sync_id,
        rig.members,
    )
    bench.receiver.reset()
    monitor = Monitor(
        bench.url,
        {
            "activation worker": lambda: _tree(platform.pid("activation-worker")),
            "beat": lambda: _tree(platform.pid("beat")),
            "receiver": lambda: [bench.receiver.proc.pid],
        },
        queries=profile_worker,
    )
    monitor.start()
    spy = _py_spy(platform.pid("activation-worker"), bench.logs) if profile_worker else None
    timeline: list[tuple[float, int, int]] = []

    def progress(elapsed: float, got: dict[str, Any]) -> None:
        planned = planned_count(bench.url, sync_id)
        timeline.append((round(elapsed), planned, got["unique"]))
        print(f"    {elapsed:4.0f} s: planned {planned:,}, received {got['unique']:,}", flush=True)

    t0 = time.time()
    start_sync(sync_id)
    got = wait_for(
        bench.receiver, path, profiles, stall=timeout, deadline=timeout, progress=progress
    )
    completed = got["unique"] >= profiles
    if completed:
        settle(bench.url, [destination])
    spied = _py_spy_report(spy) if spy is not None else None
    usage = monitor.finish()
    got = bench.receiver.hook(path)
    planned = [r for r in runs(bench.url, sync_id) if r["kind"] == "initial"]
    run = planned[0] if planned else {}
    started, finished = run.get("started_at"), run.get("finished_at")
    first, last = got["first_at"], got["last_at"]
    e2e = last - t0 if last and completed else None
    result: dict[str, Any] = {
        "profiles": profiles,
        "generate_s": round(generated, 1),
        "completed": completed,
        "timeout_s": timeout,
        "planning_s": _r(finished - started) if started and finished else None,
        "run_started_after_s": _r(started - t0) if started else None,
        "first_item_after_s": _r(first - t0) if first else None,
        "delivery_s": _r(last - first) if first and last else None,
        "after_planning_s": _r(last - finished) if last and finished else None,
        "end_to_end_s": _r(e2e),
        "profiles_per_s": round(profiles / e2e) if e2e else None,
        "target_profiles_per_s": TARGET_PROFILES_PER_S,
        "received": got,
        "duplicates": got["items"] - got["unique"],
        "progress": timeline,
        "deliveries": deliveries(bench.url, destination),
        "attempts": attempts(bench.url, destination),
        "run": run,
        **usage,
    }
    if not completed:  # still in the outbox, not lost: the run was cut short
        elapsed = time.time() - t0
        result["received_per_s_until_timeout"] = round(got["unique"] / elapsed)
        result["planned_at_timeout"] = planned_count(bench.url, sync_id)
        print(
            f"  not finished within {timeout:.0f} s: {got['unique']:,} of {profiles:,} received"
            f" ({result['received_per_s_until_timeout']:,}/s), {result['planned_at_timeout']:,}"
            " planned; the rest waits in the outbox",
            flush=True,
        )
    if spied is not None:
        result["py_spy_activation_worker"] = spied
    bench.check(got["bad_data_items"] == 0, f"initial: {got['bad_data_items']:,} bad payloads")
    bench.check(result["duplicates"] == 0, f"initial: {result['duplicates']:,} duplicates")
    if completed:
        settle(bench.url, [destination])
        lost = profiles - bench.receiver.hook(path)["unique"]
        result["lost"] = lost
        bench.check(lost == 0, f"initial: {lost:,} members never received")
    return result, rig


def planned_count(url: str, sync_id: int) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sum(COALESCE(cardinality(profile_ids), 1)) FROM activation_delivery "
            "WHERE sync_id = %s AND reason <> 'split'",
            [sync_id],
        ).fetchone()
    return int(row[0] or 0) if row else 0


def scenario_delta(bench: Bench, rig: SyncRig, full_resync: bool, timeout: float) -> dict[str, Any]:
    from activation.syncs import planner

    path = "/hook/initial"
    change = max(2, rig.members // 100)
    half = change // 2
    bench.receiver.reset()
    tenant = rig.tenant
    t0 = time.time()
    with psycopg.connect(bench.url) as conn:  # one transaction, like a pipeline batch
        conn.execute(_EXITS, _member_params(tenant, half))
        conn.execute(_MEMBERS, _member_params(tenant, change - half))
    committed = time.time() - t0
    got = wait_for(bench.receiver, path, change, stall=60)
    settle(bench.url, [rig.destination_id])
    got = bench.receiver.hook(path)
    delta_runs = [
        r for r in runs(bench.url, rig.sync_id) if r["kind"] == "delta" and r["started_at"] >= t0
    ]
    run = delta_runs[0] if delta_runs else {}
    last = got["last_at"]
    result: dict[str, Any] = {
        "changed": change,
        "exits": half,
        "entries": change - half,
        "commit_s": round(committed, 3),
        "tick_wait_s": _r(run["started_at"] - t0) if run else None,
        "planning_s": _r(run["finished_at"] - run["started_at"]) if run else None,
        "delivery_s": _r(last - run["finished_at"]) if last and run else None,
        "end_to_end_s": _r(last - t0) if last else None,
        "received": got,
        "duplicates": got["items"] - got["unique"],
        "lost": change - got["unique"],
        "run": run,
        "delta_runs": len(delta_runs),
    }
    bench.check(result["lost"] == 0, f"delta: {result['lost']:,} changes never received")
    bench.check(result["duplicates"] == 0, f"delta: {result['duplicates']:,} duplicates")
    bench.check(got["bad_data_items"] == 0, f"delta: {got['bad_data_items']:,} bad payloads")
    bench.check(
        got["kinds"].get("audience.remove", 0) == half,
        f"delta: {got['kinds'].get('audience.remove', 0)} removals for {half} exits",
    )
    # a rerun right after: a delta, then (optionally) a full resync, must send nothing
    bench.receiver.reset()
    rerun = _plan_when_free(planner, rig.sync_id, "delta")
    result["rerun_delta"] = _run_counts(rerun)
    if full_resync:  # the "Full resync" button: planned by the worker
        result.update(_full_resync(bench, rig, timeout))
    time.sleep(4)  # a tick and a kick later: whatever was planned would have gone out
    settle(bench.url, [rig.destination_id])
    sent = bench.receiver.hook(path)["items"]
    result["rerun_items_sent"] = sent
    bench.check(sent == 0, f"delta: a rerun right after sent {sent} items")
    return result


def _plan_when_free(planner: Any, sync_id: int, kind: str) -> Any:
    """planner.plan, retried while the beat's tick holds the sync's planning lock."""
    from django.db import connection

    deadline = time.monotonic() + 30
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = %s AND objid = %s AND granted)",
                [planner.PLAN_LOCK_NAMESPACE, sync_id],
            )
            held = cursor.fetchone()[0]
        if not held or time.monotonic() > deadline:
            return planner.plan(sync_id, kind=kind)
        time.sleep(0.1)


def _full_resync(bench: Bench, rig: SyncRig, timeout: float) -> dict[str, Any]:
    from activation.models import Sync
    from activation.syncs import services

    t0 = time.time()
    services.sync_run_now(sync=Sync.objects.get(pk=rig.sync_id), full=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [
            r
            for r in runs(bench.url, rig.sync_id)
            if r["kind"] == "full" and r["started_at"] >= t0 and r["finished_at"]
        ]
        if done:
            run = done[0]
            return {
                "rerun_full_s": _r(run["finished_at"] - run["started_at"]),
                "rerun_full": {
                    k: int(run[k]) for k in ("added", "updated", "removed", "unchanged")
                },
            }
        time.sleep(0.5)
    return {"rerun_full_s": None, "rerun_full": f"not finished within {timeout:.0f} s"}


def _run_counts(run: Any) -> dict[str, int] | None:
    if run is None:
        return None  # nothing to look at: no run recorded
    return {k: getattr(run, k) for k in ("added", "updated", "removed", "unchanged")}


def scenario_stream(bench: Bench, rate: int, seconds: float) -> dict[str, Any]:
    from activation.streams import services as streams
    from cdp.models import Workspace
    from profiles.models import Source

    bench.dbs.fresh()
    tenant = bootstrap(bench.env, "Stream bench")
    path = "/hook/stream"
    destination = webhook(tenant, "Stream", bench.receiver.url(path))
    workspace = Workspace.objects.get(pk=tenant.workspace_id)
    source = Source.objects.filter(workspace=workspace).order_by("id").first()
    assert source is not None
    streams.stream_create(
        workspace=workspace,
        data={
            "name": "Track events → webhook",
            "source": source.pk,
            "destination": destination,
            "filters": {"types": ["track"]},
        },
    )
    platform = Platform(bench.env, bench.logs)
    try:
        platform.start_pipeline_worker()
        platform.start_activation_worker()
        platform.start_beat()
        platform.start_web()
        assert platform.server is not None
        bench.receiver.reset()
        monitor = Monitor(
            bench.url,
            {
                "web": lambda: _tree(platform.pid("web")),
                "pipeline worker": lambda: _tree(platform.pid("pipeline-worker")),
                "activation worker": lambda: _tree(platform.pid("activation-worker")),
                "beat": lambda: _tree(platform.pid("beat")),
                "receiver": lambda: [bench.receiver.proc.pid],
                "load generator": lambda: [os.getpid()],
            },
        )
        monitor.start()
        load = open_loop(platform.server.port, tenant.write_key, rate, seconds)
        got = wait_for(bench.receiver, path, load["accepted_events"], key="messages", stall=30)
        usage = monitor.finish()
        settle(bench.url, [destination], timeout=10)
    finally:
        platform.stop()
    got = bench.receiver.hook(path, latencies=True)
    latencies = sorted(got.pop("latencies"))
    result: dict[str, Any] = {
        **load,
        "received": got,
        "lost": load["accepted_events"] - got["messages"],
        "duplicates": got["items"] - got["unique"],
        "latency_p50_s": _pct(latencies, 0.50),
        "latency_p95_s": _pct(latencies, 0.95),
        "latency_p99_s": _pct(latencies, 0.99),
        "latency_max_s": _r(latencies[-1], 3) if latencies else None,
        "target_p95_s": TARGET_STREAM_P95_S,
        "deliveries": deliveries(bench.url, destination),
        **usage,
    }
    bench.check(result["lost"] == 0, f"stream: {result['lost']:,} accepted events never arrived")
    bench.check(result["duplicates"] == 0, f"stream: {result['duplicates']:,} duplicates")
    bench.check(got["bad_data_items"] == 0, f"stream: {got['bad_data_items']:,} bad payloads")
    return result


def _pct(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def open_loop(port: int, write_key: str, rate: int, seconds: float) -> dict[str, Any]:
    """`rate` track events/s into /v1/batch for `seconds`, in batches of 10-50, each request
    sent at its scheduled time by its own thread (open loop: a slow server cannot slow the
    offered load); each event carries that time as properties.sent_at."""
    import base64

    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    rng = random.Random(7)
    statuses: Counter[int] = Counter()
    accepted = 0
    lock = threading.Lock()
    threads: list[threading.Thread] = []

    def send(body: bytes, events: int) -> None:
        nonlocal accepted
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            conn.request(
                "POST",
                "/v1/batch",
                body=body,
                headers={"content-type": "application/json", "authorization": auth},
            )
            status = conn.getresponse().status
            conn.close()
        except OSError:
            status = 0
        with lock:
            statuses[status] += 1
            if status == 200:
                accepted += events

    start = time.time() + 0.5
    due, sent_events, n = start, 0, 0
    total = int(rate * seconds)
    while sent_events < total:
        size = min(rng.randint(10, 50), total - sent_events)
        n += 1
        stamp = datetime.fromtimestamp(due, UTC).isoformat(timespec="milliseconds")
        batch = [
            {
                "type": "track",
                "event": rng.choice(["Product Viewed", "Product Added", "Order Completed"]),
                "userId": f"user-{rng.randrange(20_000)}",
                "messageId": f"stream-{n}-{k}",
                "timestamp": stamp.replace("+00:00", "Z"),
                "properties": {"sku": f"SKU-{rng.randrange(50)}", "sent_at": due},
                "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
            }
            for k in range(size)
        ]
        body = orjson.dumps({"batch": batch})
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=send, args=(body, size), daemon=True)
        thread.start()
        threads.append(thread)
        threads = [t for t in threads if t.is_alive()]
        sent_events += size
        due += size / rate
    for thread in threads:
        thread.join(timeout=30)
    late = time.time() - due
    return {
        "rate_events_per_s": rate,
        "seconds": seconds,
        "requests": n,
        "events": sent_events,
        "accepted_events": accepted,
        "statuses": {str(k): v for k, v in statuses.items()},
        "generator_behind_s_at_end": round(max(late, 0.0), 2),
    }


def scenario_outage(bench: Bench, members: int, outage_seconds: float) -> dict[str, Any]:
    bench.dbs.fresh()
    tenant = bootstrap(bench.env, "Outage bench")
    publish_segment(tenant)
    add_members(bench.url, tenant, members)
    sets: dict[str, dict[str, tuple[int, int]]] = {}
    for phase in ("baseline", "outage"):
        sets[phase] = {}
        for name in ("sick", "healthy-1", "healthy-2"):
            path = f"/hook/{phase}-{name}"
            destination = webhook(tenant, f"{phase} {name}", bench.receiver.url(path))
            sets[phase][path] = (destination, disabled_sync(tenant, f"{phase} {name}", destination))
    platform = Platform(bench.env, bench.logs)
    result: dict[str, Any] = {"members": members, "outage_s": outage_seconds}
    try:
        platform.start_activation_worker()
        platform.start_beat()
        for phase, hooks in sets.items():
            sick = f"/hook/{phase}-sick"
            t0 = time.time()
            recovers = t0 + outage_seconds if phase == "outage" else t0
            bench.receiver.reset({sick: recovers} if phase == "outage" else None)
            for _destination, sync_id in hooks.values():
                start_sync(sync_id)
            per: dict[str, Any] = {}
            for path in sorted(hooks, key=lambda p: p == sick):  # the healthy ones first
                got = wait_for(bench.receiver, path, members, stall=120)
                per[path] = got
            settle(bench.url, [d for d, _ in hooks.values()], timeout=120)
            phase_result: dict[str, Any] = {}
            for path, (destination, _sync) in hooks.items():
                got = bench.receiver.hook(path)
                first, last = got["first_at"], got["last_at"]
                entry: dict[str, Any] = {
                    "completed_s": _r(last - t0) if last else None,
                    "items_per_s": round(members / (last - t0)) if last else None,
                    "received": got,
                    "lost": members - got["unique"],
                    "duplicates": got["items"] - got["unique"],
                    "deliveries": deliveries(bench.url, destination),
                    "attempts": attempts(bench.url, destination),
                    "first_item_s": _r(first - t0) if first else None,
                }
                if path == sick and phase == "outage":
                    entry["drain_after_recovery_s"] = _r(last - recovers) if last else None
                    entry["attempt_timeline"] = attempt_timeline(bench.url, destination, t0)
                phase_result[path.removeprefix(f"/hook/{phase}-")] = entry
                bench.check(entry["lost"] == 0, f"outage/{phase}: {path} lost {entry['lost']}")
                bench.check(
                    got["bad_data_items"] == 0,
                    f"outage/{phase}: {path} got {got['bad_data_items']} bad payloads",
                )
                bench.check(
                    entry["duplicates"] == 0,
                    f"outage/{phase}: {path} accepted {entry['duplicates']} items twice",
                )
            result[phase] = phase_result
    finally:
        platform.stop()
    ratios = {}
    for name in ("healthy-1", "healthy-2"):
        base = result.get("baseline", {}).get(name, {}).get("completed_s")
        out = result.get("outage", {}).get(name, {}).get("completed_s")
        ratios[name] = round(out / base, 2) if base and out else None
    result["healthy_completion_ratio_outage_over_baseline"] = ratios
    return result


# --------------------------------------------------------------------------------------------
# py-spy of the activation worker
# --------------------------------------------------------------------------------------------


@dataclass
class Spy:
    proc: subprocess.Popen[bytes]
    out: Path


def _py_spy(pid: int | None, logs: Path) -> Spy | None:
    spy = Path(sys.executable).parent / "py-spy"
    if pid is None or not spy.exists():
        return None
    out = logs / "activation-worker.pyspy.txt"
    proc = subprocess.Popen(  # noqa: S603 - the venv's py-spy, our arguments
        [str(spy), "record", "--pid", str(pid), "--rate", "50", "--format", "raw",
         "--output", str(out), "--nonblocking", "--idle"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return Spy(proc, out)


def _frame_file(frame: str) -> str:
    """ "claim (engine.py:145)" -> "engine.py" (py-spy's raw format)."""
    return frame.rpartition(" (")[2].partition(":")[0]


def _py_spy_report(spy: Spy, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks → the share of samples per leaf-most frame of our code (and of
    libraries it calls), over busy samples (threads waiting on the broker excluded)."""
    spy.proc.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        spy.proc.wait(timeout=30)
    if not spy.out.exists():
        return {"error": "py-spy wrote nothing"}
    project = {p.name for app in ("activation", "consent") for p in (REPO / app).rglob("*.py")}
    ours: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    busy = 0
    for line in spy.out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or not count.isdigit():
            continue
        n = int(count)
        text = ";".join(frames)
        if "engine.py" not in text and "planner.py" not in text:
            continue  # a pool thread waiting for a task, the consumer loop
        busy += n
        leaves[frames[-1]] += n
        mine = [f for f in frames if _frame_file(f).rpartition("/")[2] in project]
        if mine:
            ours[mine[-1]] += n
    return {
        "busy_samples": busy,
        "by_innermost_activation_frame": {k: round(v / busy, 3) for k, v in ours.most_common(top)}
        if busy
        else {},
        "by_leaf_frame": {k: round(v / busy, 3) for k, v in leaves.most_common(top)}
        if busy
        else {},
        "raw": str(spy.out),
    }


# --------------------------------------------------------------------------------------------


def print_summary(report: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str]] = []
    cap = report.get("receiver_capacity")
    if cap:
        rows.append(("receiver capacity", f"≥ {cap['items_per_s']:,} items/s", "not the limit"))
    if "initial" in report:
        i = report["initial"]
        if i["completed"]:
            figure = (
                f"{i['profiles_per_s'] or 0:,} profiles/s ({i['end_to_end_s']} s; planning "
                f"{i['planning_s']} s)"
            )
        else:
            figure = (
                f"unfinished after {i['timeout_s']:.0f} s: {i['received']['unique']:,} received"
                f" ({i['received_per_s_until_timeout']:,}/s)"
            )
        rows.append(
            (
                f"initial sync, {i['profiles']:,} profiles",
                figure,
                f"target ≥ {TARGET_PROFILES_PER_S:,}/s; lost {i.get('lost', '?')},"
                f" dup {i['duplicates']}",
            )
        )
    d = report.get("delta", {})
    if "skipped" in d:
        rows.append(("1 % delta", "skipped", d["skipped"]))
    elif d:
        rows.append(
            (
                f"1 % delta ({d['changed']:,})",
                f"{d['end_to_end_s']} s (tick wait {d['tick_wait_s']}, planning "
                f"{d['planning_s']}, delivery {d['delivery_s']})",
                f"lost {d['lost']}, dup {d['duplicates']}, rerun sent {d['rerun_items_sent']}",
            )
        )
    if "stream" in report:
        s = report["stream"]
        rows.append(
            (
                f"stream {s['rate_events_per_s']:,}/s × {s['seconds']:.0f} s",
                f"p50 {s['latency_p50_s']} / p95 {s['latency_p95_s']} / p99 {s['latency_p99_s']} s",
                f"target p95 ≤ {TARGET_STREAM_P95_S} s; lost {s['lost']}, dup {s['duplicates']}",
            )
        )
    if "outage" in report:
        o = report["outage"]
        sick = o.get("outage", {}).get("sick", {})
        rows.append(
            (
                f"outage ({o['members']:,} × 3, {o['outage_s']:.0f} s of 500s)",
                "healthy completion outage/baseline "
                + ", ".join(
                    f"{v}" for v in o["healthy_completion_ratio_outage_over_baseline"].values()
                ),
                f"sick: lost {sick.get('lost')}, dup {sick.get('duplicates')}, drained "
                f"{sick.get('drain_after_recovery_s')} s after recovery",
            )
        )
    width = max((len(r[0]) for r in rows), default=0)
    print("\nsummary")
    for name, figure, note in rows:
        print(f"  {name:<{width}}  {figure}  [{note}]")
    print(f"  correctness: {'OK' if not report['failures'] else '; '.join(report['failures'])}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000, help="initial: members")
    parser.add_argument("--stream-seconds", type=float, default=60, help="stream: load duration")
    parser.add_argument("--stream-rate", type=int, default=1_000, help="stream: events/s")
    parser.add_argument("--outage-members", type=int, default=20_000, help="outage: audience")
    parser.add_argument("--outage-seconds", type=float, default=30, help="outage: 500s for")
    parser.add_argument(
        "--sync-timeout",
        type=float,
        default=420,
        help="initial/delta: stop waiting for a sync run after this many seconds (reported as"
        " unfinished, not as a failure)",
    )
    parser.add_argument(
        "--no-full-resync", action="store_true", help="delta: skip the full-resync rerun check"
    )
    parser.add_argument(
        "--profile-worker",
        action="store_true",
        help="initial: py-spy the activation worker and sample Postgres' active queries",
    )
    parser.add_argument(
        "--only",
        choices=SCENARIOS,
        action="append",
        help="run only these scenarios (repeatable; delta runs initial first)",
    )
    parser.add_argument("--serve-receiver", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def quiet(report: dict[str, Any], scenario: str) -> None:
    """On a shared machine: wait (30 s at most) for others to leave the cores mostly idle,
    and record how busy they were."""
    busy = wait_until_quiet(30)
    report.setdefault("machine_busy_percent_before", {})[scenario] = busy
    if busy >= 30:
        print(f"  (the machine is {busy:.0f} % busy with other work: figures will suffer)")


def run_initial_and_delta(
    bench: Bench, args: argparse.Namespace, report: dict[str, Any], *, delta: bool
) -> None:
    quiet(report, "initial")
    print(f"initial: {args.profiles:,} profiles, sync → webhook …", flush=True)
    i, rig = scenario_initial(bench, args.profiles, args.profile_worker, args.sync_timeout)
    report["initial"] = i
    try:
        print(
            f"  planning {i['planning_s']} s, first item after {i['first_item_after_s']} s,"
            f" last after {i['end_to_end_s']} s ({i['after_planning_s']} s after planning"
            f" ended) = {i['profiles_per_s'] or 0:,} profiles/s (target ≥"
            f" {TARGET_PROFILES_PER_S:,}); received {i['received']['items']:,}, duplicates"
            f" {i['duplicates']}\n  CPU % of one core: {i['cpu_percent_of_one_core']}",
            flush=True,
        )
        if not delta:
            return
        if not i["completed"]:
            report["delta"] = {"skipped": "the initial sync did not finish"}
            print("delta: skipped (the initial sync did not finish)", flush=True)
            return
        print(f"delta: 1 % of {args.profiles:,} changes …", flush=True)
        report["delta"] = d = scenario_delta(bench, rig, not args.no_full_resync, args.sync_timeout)
        print(
            f"  {d['changed']:,} changes: received all after {d['end_to_end_s']} s (tick wait"
            f" {d['tick_wait_s']} s, planning {d['planning_s']} s, delivery {d['delivery_s']}"
            f" s); rerun delta {d['rerun_delta']}, full resync {d.get('rerun_full')} in"
            f" {d.get('rerun_full_s')} s; items sent by the reruns: {d['rerun_items_sent']}",
            flush=True,
        )
    finally:
        rig.platform.stop()


def print_outage(o: dict[str, Any]) -> None:
    for phase in ("baseline", "outage"):
        for name, e in o.get(phase, {}).items():
            extra = (
                f", drained {e['drain_after_recovery_s']} s after recovery"
                if "drain_after_recovery_s" in e
                else ""
            )
            print(
                f"  {phase:<8} {name:<9}: all {e['received']['unique']:,} after"
                f" {e['completed_s']} s ({e['items_per_s'] or 0:,}/s), rejected"
                f" {e['received']['rejected_items']:,}, duplicates {e['duplicates']}{extra}",
                flush=True,
            )


def provenance() -> dict[str, Any]:
    """The commit measured and the activation files changed on top of it (others edit the
    tree while benchmarks run)."""

    def git(*args: str) -> str:
        done = subprocess.run(  # noqa: S603 - fixed git arguments
            ["git", *args],  # noqa: S607 - git from PATH
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "changed": git("status", "--porcelain", "--", "activation", "consent").splitlines(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return 0
    url = os.environ.get("BENCH_ACTIVATION_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_ACTIVATION_REDIS_URL", DEFAULT_REDIS_URL)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CDP_QUEUE_PREFIX": QUEUE_PREFIX,
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "DEBUG": "0",
        "CDP_REQUIRE_SECRET_KEY": "0",
        "PYTHONUNBUFFERED": "1",
    }
    only = set(args.only or SCENARIOS)
    if "delta" in only:
        only.add("initial")
    print(f"database {redact(url)}, redis {redis_url}, queues {QUEUE_PREFIX}*", flush=True)
    os.environ.update(env)
    import django

    django.setup()
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
        "activation_threads": ACTIVATION_THREADS,
        "destination_policy": POLICY,
        "initial_destination_policy": INITIAL_POLICY,
        "mapping": MAPPING,
        "code": provenance(),
    }
    receiver = Receiver(logs / "activation-receiver.log")
    bench = Bench(env, url, Databases(url, env), receiver, logs)
    try:
        report["receiver_capacity"] = cap = receiver_capacity(receiver)
        print(
            f"receiver capacity: ≥ {cap['items_per_s']:,} items/s ({cap['requests_per_s']:,} "
            f"requests/s of 1,000 items, {cap['clients']} client processes on the same cores)",
            flush=True,
        )
        if "initial" in only:
            run_initial_and_delta(bench, args, report, delta="delta" in only)
        if "stream" in only:
            quiet(report, "stream")
            print(
                f"stream: {args.stream_rate:,} events/s for {args.stream_seconds:.0f} s …",
                flush=True,
            )
            report["stream"] = s = scenario_stream(bench, args.stream_rate, args.stream_seconds)
            print(
                f"  accepted {s['accepted_events']:,} events, received"
                f" {s['received']['messages']:,}; latency p50 {s['latency_p50_s']} s, p95"
                f" {s['latency_p95_s']} s, p99 {s['latency_p99_s']} s, max"
                f" {s['latency_max_s']} s (target p95 ≤ {TARGET_STREAM_P95_S} s)\n"
                f"  CPU % of one core: {s['cpu_percent_of_one_core']}",
                flush=True,
            )
        if "outage" in only:
            quiet(report, "outage")
            print(
                f"outage: 3 destinations × {args.outage_members:,} members, one answering 500"
                f" for {args.outage_seconds:.0f} s …",
                flush=True,
            )
            report["outage"] = scenario_outage(bench, args.outage_members, args.outage_seconds)
            print_outage(report["outage"])
    finally:
        receiver.stop()
        bench.dbs.drop_template()
    report["failures"] = bench.failures
    print_summary(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"activation-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"written to {path}")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
