"""Decision API benchmark: `POST /v1/decide` over a million profiles, open loop.

Run it with `bin/bench decide` (or `.venv/bin/python bench/decide.py --help`). It sets up
everything itself:

1. a fresh database `cdp_bench_decide` on 127.0.0.1:5432 (BENCH_DECIDE_DATABASE_URL
   overrides), migrated, with a bootstrapped workspace; Redis db 7 (BENCH_DECIDE_REDIS_URL);
2. the data, straight into the tables with set-based SQL (`--profiles`, default 1,000,000):
   profiles with traits (plan, country, email, ...), the profile columns (first/last seen,
   events, orders, revenue) and computed values (engagement score, RFM segment, churn); a
   user_id identity each (`u<N>`) and an anonymous_id for every second one; 3 % who objected
   to personalisation; then, through the services, three segments published (evaluated over
   all profiles), the `personalization` purpose under legitimate interest (granted by
   default, so offers apply), a placement `home_hero` with five offers (segments, traits,
   computed values, the page URL, caps) and a running experiment `hero_test`; the decision
   records of every profile by one INSERT … SELECT mirroring records.py's `_BUILD`, with
   impressions (caps) for a fifth of them; VACUUM ANALYZE. `--reuse-data` keeps a database
   a previous run filled with the same number of profiles;
3. gunicorn on 127.0.0.1: 4 sync workers by default (measured best; see DEFAULT_WORKERS),
   `--worker-class gthread --threads N` to compare;
4. an open-loop load (asyncio, one process): request i is due at t0 + i/rate and sent on an
   idle keep-alive connection (oldest first) or a new one (at most `--max-connections`); sync
   workers close every connection, so then each request connects. Its latency runs from that
   due time to the end of the response, so a stalled server cannot hide its queueing
   (coordinated omission). `--warmup` seconds (default 10) at the same rate, then `--seconds`
   (default 60) measured. The mix: 80 % known users (user id drawn uniformly among all
   profiles: cache-cold rows), 10 % known anonymous ids, 10 % unknown visitors; every request
   asks `placements: ["home_hero"]`, half with `context.page.url` (a tenth of those on
   /sale); 10 % also ask `experiments: ["hero_test"]` (a first exposure writes a row and
   ingests an event);
5. the figures: client latency (from the due time) and server time (the response's
   `Server-Timing: app;dur=…`) at p50/p99/p99.9, per kind of request; the achieved rate,
   non-200s and `degraded: true` answers; the CPU of gunicorn, Postgres, the load generator
   and everything else on the machine, sampled from /proc over the measured window.

Target (the issue): server time p50 ≤ 3 ms and p99 ≤ 10 ms at 500 requests/s for 60 s.
`--profile` samples every worker with py-spy during the measured window and prints where
the CPU time goes. Figures are printed and written to bench/results/decide-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector import (  # noqa: E402
    CLOCK_TICKS,
    HOST,
    REPO,
    RESULTS_DIR,
    CpuSnapshot,
    Server,
    cpu_snapshot,
    cpu_usage,
    create_fresh_database,
    flush_redis,
    manage,
    postgres_pids,
    redact,
    wait_until_quiet,
    with_database,
)

sys.path.insert(0, str(REPO))
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_decide"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
WORKSPACE = "Bench"
PLACEMENT = "home_hero"
EXPERIMENT = "hero_test"
TARGET_P50_MS = 3.0
TARGET_P99_MS = 10.0
# Measured on the 2-core machine at 500 req/s (30-60 s each, machine otherwise idle): sync
# workers (a connection per request, as nginx opens them by default) let the kernel hand each
# request to a free worker: 4 gave the lowest latencies (server p99 8.3 ms, client p99 13 ms);
# 3 was close (8.8 / 19 ms), 5 and 6 slower (more processes than cores). gthread keeps
# connections alive, which halves the load generator's CPU and lowers the server time a little
# (3 x 1 thread: p99 5.5 ms), but each connection is pinned to the worker that accepted it,
# the load lands unevenly and requests queue behind a busy worker (client p99 47-700 ms);
# threads > 1 add GIL hand-offs (server p99 12-60 ms).
DEFAULT_WORKER_CLASS = "sync"
DEFAULT_WORKERS = 4
DEFAULT_THREADS = 1
KINDS = ("known user", "anonymous known", "unknown visitor")
PAGES = ["/", "/collections/shoes", "/products/trail-running-shoe", "/cart", "/blog/layering"]


# --------------------------------------------------------------------------------------------
# Data: set-based SQL straight into the tables
# --------------------------------------------------------------------------------------------

# h: a stable hash of the profile's number g, sliced into independent-looking attributes
_PROFILES = """
INSERT INTO profiles_profile (id, workspace_id, created_at, updated_at, traits, trait_times,
    group_ids, first_seen, last_seen, event_count, event_counts, order_count, revenue,
    first_order_at, last_order_at, computed)
SELECT %(base)s::bigint + g, %(ws)s, s.seen, now(),
       jsonb_build_object(
           'plan', (ARRAY['free', 'free', 'free', 'pro', 'pro', 'team'])[1 + h %% 6],
           'country', (ARRAY['US', 'US', 'US', 'DE', 'FR', 'GB', 'ES', 'IT', 'NL', 'BR'])
                      [1 + (h >> 3) %% 10],
           'email', 'person' || g || '@example.com',
           'first_name', (ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Ken'])
                         [1 + (h >> 7) %% 6],
           'newsletter', (h >> 9) %% 3 = 0),
       '{}', '[]', s.seen,
       greatest(s.seen, now() - make_interval(hours => (h >> 11) %% 1440)),
       1 + (h >> 5) %% 300, '{}', o.orders, o.orders * (15 + (h >> 17) %% 185),
       CASE WHEN o.orders > 0 THEN s.seen + interval '1 day' END,
       CASE WHEN o.orders > 0 THEN greatest(s.seen + interval '1 day',
                                            now() - make_interval(days => (h >> 13) %% 90)) END,
       jsonb_build_object(
           'engagement_score', (h >> 4) %% 101,
           'churn', round(((h >> 14) %% 1000) / 1000.0, 3),
           'rfm_segment', (ARRAY['Champions', 'Loyal Customers', 'Potential Loyalists',
                                 'New Customers', 'Promising', 'Need Attention',
                                 'About to Sleep', 'At Risk', 'Can''t Lose Them',
                                 'Hibernating'])[1 + (h >> 21) %% 10])
FROM generate_series(%(start)s::int, %(stop)s::int) AS g,
     LATERAL (SELECT hashint4(g) & 2147483647 AS h) x,
     LATERAL (SELECT now() - make_interval(days => 1 + h %% 700) AS seen) s,
     LATERAL (SELECT CASE WHEN (h >> 12) %% 2 = 0 THEN 0 ELSE 1 + (h >> 22) %% 7 END AS orders) o
"""

# every profile's user id, every second one's anonymous id (what the load generator asks for)
_IDENTITIES = """
INSERT INTO profiles_identity (workspace_id, profile_id, origin_profile_id, type, value,
    first_seen)
SELECT %(ws)s, p.id, p.id, t.type,
       CASE t.type WHEN 'user_id' THEN 'u' || (p.id - %(base)s)
                   ELSE md5('anon-' || (p.id - %(base)s))::uuid::text END,
       p.first_seen
FROM profiles_profile p, (VALUES ('user_id'), ('anonymous_id')) AS t(type)
WHERE p.workspace_id = %(ws)s AND p.id > %(base)s + %(start)s - 1 AND p.id <= %(base)s + %(stop)s
  AND (t.type = 'user_id' OR (p.id - %(base)s) %% 2 = 0)
"""

# 3 % objected to personalisation (the offers then show the default)
_OBJECTIONS = """
INSERT INTO consent_consentstate (workspace_id, profile_id, purpose, status, decided_at,
    record_id)
SELECT %(ws)s, p.id, 'personalization', 'denied', p.last_seen, 0
FROM profiles_profile p
WHERE p.workspace_id = %(ws)s AND (hashint4(p.id::int * 13) & 1023) < 31
"""

# records.py's _BUILD over the whole workspace in one statement, plus impressions of the
# newsletter offer for a fifth of the profiles (a tenth at its daily cap of 2)
_RECORDS = """
INSERT INTO activation_decisionrecord AS r
    (profile_id, workspace_id, traits, computed, columns, exposures, caps, built_at)
SELECT p.id, p.workspace_id, p.traits, p.computed - '_updated',
       jsonb_build_object(
           'first_seen', p.first_seen, 'last_seen', p.last_seen,
           'event_count', p.event_count, 'order_count', p.order_count,
           'revenue', p.revenue, 'first_order_at', p.first_order_at,
           'last_order_at', p.last_order_at),
       COALESCE(x.exposures, '{}'),
       CASE (hashint4(p.id::int * 7) & 1023) %% 10
           WHEN 0 THEN jsonb_build_object(%(offer)s::text, jsonb_build_object('n', 2, 't',
               jsonb_build_array(round(extract(epoch FROM now())::numeric - 7200, 3),
                                 round(extract(epoch FROM now())::numeric - 600, 3))))
           WHEN 1 THEN jsonb_build_object(%(offer)s::text, jsonb_build_object('n', 1, 't',
               jsonb_build_array(round(extract(epoch FROM now())::numeric - 259200, 3))))
           ELSE '{}' END,
       now()
FROM profiles_profile p
LEFT JOIN (SELECT profile_id, jsonb_object_agg(experiment_id::text, variant) AS exposures
           FROM activation_exposure GROUP BY profile_id) x ON x.profile_id = p.id
WHERE p.workspace_id = %(ws)s AND p.merged_into_id IS NULL
"""

HERO_SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {
        "title": {"type": "string", "maxLength": 80},
        "image": {"type": "string"},
        "cta": {"type": "string"},
    },
}


def _anonymous_id(n: int) -> str:
    """The anonymous id of profile number n (even n only), as _IDENTITIES writes it."""
    return str(uuid.UUID(hashlib.md5(f"anon-{n}".encode()).hexdigest()))


@dataclass
class Prepared:
    workspace_id: int
    server_key: str
    profiles: int
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    reused: bool = False


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def _timed(timings: dict[str, float], label: str, started: float) -> None:
    timings[label] = round(time.monotonic() - started, 1)
    print(f"  {label}: {timings[label]:.1f} s")


def configure_before_data(workspace_id: int) -> None:
    """Personalisation under legitimate interest: everyone is in unless they object. The
    bootstrap installed the usual purposes (personalisation under consent) and no service
    changes a purpose's basis, so the bench sets it on the row."""
    from cdp.models import Workspace
    from consent.models import Purpose
    from consent.services import purposes_install_defaults

    purposes_install_defaults(workspace=Workspace.objects.get(pk=workspace_id))
    changed = Purpose.objects.filter(workspace_id=workspace_id, key="personalization").update(
        legal_basis="legitimate_interest", default_granted=True
    )
    assert changed == 1


def configure_after_data(workspace_id: int, timings: dict[str, float]) -> int:
    """Segments (published: evaluated over every profile), the placement and its offers, the
    experiment. Returns the newsletter offer's id (the impressions the records carry)."""
    from activation.decisions import services as decisions
    from activation.decisions.models import Offer
    from activation.experiments import services as experiments
    from cdp.models import Workspace
    from segments.services import segment_create

    workspace = Workspace.objects.get(pk=workspace_id)
    keys = {}
    for name, rule in (
        ("Pro plan", {"trait": "plan", "op": "eq", "value": "pro"}),
        ("Europe", {"trait": "country", "op": "in", "value": ["DE", "FR", "GB", "ES", "IT", "NL"]}),
        ("High value", {"trait": "total_revenue", "op": "gte", "value": 500}),
    ):
        started = time.monotonic()
        segment = segment_create(workspace=workspace, name=name, rule=rule, publish=True)
        keys[name] = segment.key
        _timed(timings, f"segment {segment.key!r} published (evaluated)", started)
    decisions.placement_create(
        workspace=workspace, actor=None,
        data={"key": PLACEMENT, "name": "Home hero", "content_schema": HERO_SCHEMA,
              "default_content": {"title": "Welcome to Example Outdoor"}},
    )  # fmt: skip
    offers: list[dict[str, Any]] = [
        {"key": "vip_upgrade", "priority": 30, "cap_day": 3,
         "eligibility": {"all": [{"segment": keys["High value"]},
                                 {"trait": "plan", "op": "eq", "value": "free"}]}},
        {"key": "pro_europe", "priority": 20, "cap_week": 5,
         "eligibility": {"all": [{"segment": keys["Pro plan"]}, {"segment": keys["Europe"]}]}},
        {"key": "sale_banner", "priority": 10,
         "eligibility": {"context": "page.url", "op": "contains", "value": "/sale"}},
        {"key": "winback", "priority": 10, "weight": 2, "cap_lifetime": 10,
         "eligibility": {"all": [{"trait": "engagement_score", "op": "lt", "value": 20},
                                 {"trait": "order_count", "op": "gte", "value": 1}]}},
        {"key": "newsletter", "priority": 0, "cap_day": 2,
         "eligibility": {"all": [{"trait": "email", "op": "exists"},
                                 {"trait": "newsletter", "op": "eq", "value": False}]}},
    ]  # fmt: skip
    for offer in offers:
        decisions.offer_create(
            workspace=workspace, actor=None,
            data={"name": offer["key"].replace("_", " ").capitalize(), "placement": PLACEMENT,
                  "content": {"title": offer["key"].replace("_", " ").capitalize(),
                              "image": f"/img/{offer['key']}.jpg", "cta": "Shop now"},
                  **offer},
        )  # fmt: skip
    experiments.metric_create(workspace=workspace, actor=None, data={
        "key": "purchase", "name": "Purchase", "kind": "conversion",
        "event": "Order Completed", "window_days": 7})  # fmt: skip
    experiment = experiments.experiment_create(
        workspace=workspace, actor=None,
        data={"key": EXPERIMENT, "name": "Hero test", "primary_metric": "purchase",
              "coverage": 0.9,
              "targeting": {"trait": "country", "op": "in",
                            "value": ["US", "DE", "FR", "GB", "ES", "IT", "NL"]},
              "variants": [{"key": "control", "payload": {"color": "grey"}},
                           {"key": "bold", "payload": {"color": "red"}}]},
    )  # fmt: skip
    experiments.experiment_start(experiment=experiment, actor=None)
    return Offer.objects.get(workspace_id=workspace_id, key="newsletter").pk


def _existing(db_url: str, profiles: int) -> int | None:
    """The workspace of a database a previous run filled with `profiles` profiles."""
    name = urlsplit(db_url).path.lstrip("/")
    with psycopg.connect(with_database(db_url, "postgres"), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            return None
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT w.id, (SELECT count(*) FROM activation_decisionrecord r"
                "              WHERE r.workspace_id = w.id),"
                "       (SELECT count(*) FROM activation_placement a"
                "        WHERE a.workspace_id = w.id AND a.key = %s)"
                " FROM cdp_workspace w WHERE w.name = %s",
                [PLACEMENT, WORKSPACE],
            ).fetchone()
    except psycopg.Error:
        return None
    if row is None or int(row[1]) != profiles or int(row[2]) != 1:
        return None
    return int(row[0])


def prepare(db_url: str, redis_url: str, env: dict[str, str], profiles: int, reuse: bool,
            step: int = 250_000) -> Prepared:  # fmt: skip
    flush_redis(redis_url)
    timings: dict[str, float] = {}
    workspace_id = _existing(db_url, profiles) if reuse else None
    if workspace_id is not None:
        print(f"reusing {urlsplit(db_url).path.lstrip('/')}: {profiles:,} profiles")
        _django(env)
        return Prepared(workspace_id, _server_key(workspace_id), profiles, reused=True)

    print(f"setting up: fresh database {urlsplit(db_url).path.lstrip('/')}, migrations ...")
    started = time.monotonic()
    create_fresh_database(db_url)
    manage(env, "migrate", "--noinput")
    out = manage(env, "cdp_bootstrap", "--workspace", WORKSPACE)
    workspace_id = int(orjson.loads(out[out.index("{") :])["workspace"]["id"])
    _timed(timings, "database, migrations, bootstrap", started)
    _django(env)
    configure_before_data(workspace_id)

    print(f"generating {profiles:,} profiles ...")
    with psycopg.connect(db_url, autocommit=True) as conn:
        low = conn.execute("SELECT coalesce(max(id), 0) FROM profiles_profile").fetchone()
        base = int(low[0]) if low else 0
        started = time.monotonic()
        for start in range(1, profiles + 1, step):
            stop = min(start + step - 1, profiles)
            conn.execute(_PROFILES, {"ws": workspace_id, "base": base, "start": start,
                                     "stop": stop})  # fmt: skip
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('profiles_profile', 'id'), %s)",
            [base + profiles],
        )
        _timed(timings, "profiles", started)
        started = time.monotonic()
        for start in range(1, profiles + 1, step):
            stop = min(start + step - 1, profiles)
            conn.execute(_IDENTITIES, {"ws": workspace_id, "base": base, "start": start,
                                       "stop": stop})  # fmt: skip
        _timed(timings, "identities", started)
        started = time.monotonic()
        conn.execute(_OBJECTIONS, {"ws": workspace_id})
        conn.execute("VACUUM ANALYZE profiles_profile")
        conn.execute("VACUUM ANALYZE profiles_identity")
        _timed(timings, "objections, VACUUM ANALYZE", started)

    print("segments, placement, offers, experiment (through the services) ...")
    started = time.monotonic()
    newsletter = configure_after_data(workspace_id, timings)
    _timed(timings, "configuration", started)

    from django.db import connections

    connections.close_all()
    with psycopg.connect(db_url, autocommit=True) as conn:
        started = time.monotonic()
        conn.execute(_RECORDS, {"ws": workspace_id, "offer": newsletter})
        _timed(timings, "decision records (one INSERT ... SELECT)", started)
        started = time.monotonic()
        conn.execute("VACUUM ANALYZE")
        _timed(timings, "VACUUM ANALYZE", started)
        counts = {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
            for table in ("profiles_profile", "profiles_identity", "segments_membership",
                          "consent_consentstate", "activation_decisionrecord")
        }  # fmt: skip
    print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    timings["records_build per 10k (records.py, 20k sample)"] = records_build_rate(base)
    return Prepared(workspace_id, _server_key(workspace_id), profiles, timings, counts)


def records_build_rate(base: int, sample: int = 20_000) -> float:
    """records.records_build (the app's own path, 5,000 ids a statement) on a sample: the
    seconds per 10,000 profiles, to compare with the one-statement build above."""
    from django.db import connections, transaction

    from activation.decisions import records

    ids = list(range(base + 1, base + sample + 1))
    started = time.monotonic()
    with transaction.atomic():
        records.records_build(ids)
    per_10k = (time.monotonic() - started) / sample * 10_000
    connections.close_all()
    print(f"  records.records_build: {per_10k:.2f} s per 10,000 profiles")
    return round(per_10k, 2)


def _server_key(workspace_id: int) -> str:
    """A fresh server key per run (a key's secret is only shown when it is made)."""
    from django.db import connections

    from activation.services import server_key_create
    from cdp.models import Workspace

    key = server_key_create(workspace=Workspace.objects.get(pk=workspace_id),
                            name=f"bench {datetime.now(UTC):%Y%m%dT%H%M%S}")  # fmt: skip
    connections.close_all()
    assert key.secret
    return key.secret


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Planned:
    kind: int  # index into KINDS
    experiment: bool
    payload: bytes


def plan_requests(count: int, profiles: int, port: int, key: str, seed: int) -> list[Planned]:
    """The whole run's requests, built before the clock starts."""
    rng = random.Random(seed)
    head = (
        f"POST /v1/decide HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nUser-Agent: cdp-bench-decide/1\r\n"
    )
    out = []
    for _ in range(count):
        roll = rng.random()
        kind = 0 if roll < 0.8 else 1 if roll < 0.9 else 2
        body: dict[str, Any] = {"placements": [PLACEMENT]}
        if kind == 0:
            body["userId"] = f"u{rng.randint(1, profiles)}"
        elif kind == 1:
            body["anonymousId"] = _anonymous_id(2 * rng.randint(1, max(profiles // 2, 1)))
        else:
            body["anonymousId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if rng.random() < 0.5:
            path = "/sale/summer" if rng.random() < 0.1 else rng.choice(PAGES)
            body["context"] = {"page": {"url": f"https://shop.example.com{path}", "path": path},
                               "locale": "en-US"}  # fmt: skip
        experiment = rng.random() < 0.1
        if experiment:
            body["experiments"] = [EXPERIMENT]
        data = orjson.dumps(body)
        out.append(Planned(kind, experiment, f"{head}Content-Length: {len(data)}\r\n\r\n"
                           .encode() + data))  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------
# Open-loop load generator (asyncio, keep-alive connections when the server keeps them)
# --------------------------------------------------------------------------------------------


class Closed(Exception):
    """The server closed a connection before answering."""


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = 0

    async def roundtrip(self, payload: bytes) -> tuple[int, bytes, bytes, bool]:
        self.writer.write(payload)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise Closed from exc
        status = int(head[9:12])
        length = 0
        keep = True
        lowered = head.lower()
        at = lowered.find(b"\r\ncontent-length:")
        if at >= 0:
            length = int(lowered[at + 17 : lowered.index(b"\r\n", at + 2)])
        if b"\r\nconnection: close" in lowered:
            keep = False
        body = await self.reader.readexactly(length) if length else b""
        self.used += 1
        return status, lowered, body, keep

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def server_ms(lowered_head: bytes) -> float:
    at = lowered_head.find(b"server-timing: app;dur=")
    if at < 0:
        return math.nan
    start = at + 23
    end = lowered_head.find(b"\r\n", start)
    try:
        return float(lowered_head[start:end])
    except ValueError:
        return math.nan


@dataclass
class Outcome:
    due: list[float]
    latency: list[float]
    server: list[float]
    status: list[int]
    degraded: list[bool]
    offer: list[str | None]
    variant: list[str | None]
    known: list[bool]
    errors: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    stale: int = 0  # idle keep-alive connections found closed by the server (retried)
    max_dispatch_lag: float = 0.0
    max_open: int = 0


class LoadGenerator:
    def __init__(self, port: int, requests: list[Planned], rate: float, max_conns: int) -> None:
        self.port = port
        self.requests = requests
        self.rate = rate
        self.sem = asyncio.Semaphore(max_conns)
        # idle keep-alive connections, reused oldest first: each connection is pinned to one
        # gunicorn worker, and round-robin spreads the requests over the workers as many
        # independent clients would (most-recent-first piles them onto one worker)
        self.idle: deque[Conn] = deque()
        self.open = 0
        n = len(requests)
        self.out = Outcome(
            due=[math.nan] * n, latency=[math.nan] * n, server=[math.nan] * n, status=[0] * n,
            degraded=[False] * n, offer=[None] * n, variant=[None] * n, known=[False] * n,
        )  # fmt: skip

    async def _connect(self) -> Conn:
        reader, writer = await asyncio.open_connection(HOST, self.port, limit=1 << 20)
        self.out.connects += 1
        self.open += 1
        self.out.max_open = max(self.out.max_open, self.open)
        return Conn(reader, writer)

    def _drop(self, conn: Conn) -> None:
        conn.close()
        self.open -= 1

    async def _one(self, i: int, due: float) -> None:
        loop = asyncio.get_running_loop()
        planned = self.requests[i]
        async with self.sem:
            while True:
                reused = bool(self.idle)
                conn = self.idle.popleft() if reused else None
                try:
                    if conn is None:
                        conn = await self._connect()
                    status, head, body, keep = await conn.roundtrip(planned.payload)
                except (OSError, Closed, asyncio.IncompleteReadError, ValueError) as exc:
                    if conn is not None:
                        self._drop(conn)
                    if reused:  # a keep-alive connection the server let go: the next one
                        self.out.stale += 1
                        continue
                    self.out.errors[type(exc).__name__] += 1
                    self.out.latency[i] = loop.time() - due
                    return
                end = loop.time()
                if keep:
                    self.idle.append(conn)
                else:
                    self._drop(conn)
                break
        out = self.out
        out.latency[i] = end - due
        out.status[i] = status
        out.server[i] = server_ms(head)
        if status == 200:
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
                answer = orjson.loads(body)
                out.degraded[i] = answer.get("degraded") is True
                out.offer[i] = (answer.get("placements", {}).get(PLACEMENT) or {}).get("offer")
                out.known[i] = answer.get("profile_id") is not None
                if planned.experiment:
                    out.variant[i] = (answer.get("experiments", {}).get(EXPERIMENT) or {}).get(
                        "variant"
                    )

    async def run(self, on_due: dict[int, Any]) -> Outcome:
        """Send every request at its due time; `on_due[i]` is called (in a thread) when request
        i falls due (CPU snapshots at the measured window's edges)."""
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        hooks = []
        t0 = loop.time() + 0.2
        for i in range(len(self.requests)):
            due = t0 + i / self.rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.out.max_dispatch_lag = max(self.out.max_dispatch_lag, loop.time() - due)
            self.out.due[i] = due
            if i in on_due:
                hooks.append(loop.run_in_executor(None, on_due[i]))
            task = asyncio.create_task(self._one(i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        for hook in hooks:
            await hook
        for conn in self.idle:
            conn.close()
        return self.out


# --------------------------------------------------------------------------------------------
# py-spy (--profile): where the workers' CPU goes
# --------------------------------------------------------------------------------------------


SPY_RATE = 250  # py-spy samples per second

# (label, function, file suffix): the phases of one decision request, for --profile
PHASES = [
    ("gunicorn: the whole request", "handle", ("workers/sync.py", "workers/gthread.py")),
    ("  HTTP request parsing", "__next__", ("http/parser.py",)),
    ("  Django WSGIHandler", "__call__", ("handlers/wsgi.py",)),
    ("    request started/finished signals", "send", ("dispatch/dispatcher.py",)),
    ("    URL resolution", "resolve_request", ("handlers/base.py",)),
    ("    CSP middleware (response)", "process_response", ("csp/middleware.py",)),
    ("    decide_view", "decide_view", ("decisions/serve.py",)),
    ("      DB health check (SELECT 1)", "is_usable", ("postgresql/base.py",)),
    ("      read and check the body", "_read_body", ("decisions/serve.py",)),
    ("      server key", "_caller", ("decisions/serve.py",)),
    ("      the statement (_execute)", "_execute", ("decisions/serve.py",)),
    ("      configuration (cached)", "current", ("decisions/config.py",)),
    ("      visitor facts", "_visitor", ("decisions/serve.py",)),
    ("      engine.decide", "decide", ("decisions/engine.py",)),
    ("      exposures (_expose)", "_expose", ("decisions/serve.py",)),
    ("        Experiment Viewed event", "ingest_own_events", ("experiments/services.py",)),
    ("          collector gate (Redis)", "check", ("collector/gate.py",)),
    ("          collector_ingest", "collector_ingest", ("collector/service.py",)),
    ("          kick_processing (Celery)", "kick_processing", ("collector/service.py",)),
    ("      _respond (orjson, headers)", "_respond", ("decisions/serve.py",)),
]


class Spies:
    def __init__(self, pids: list[int], seconds: float, folder: Path) -> None:
        self.pids, self.seconds, self.folder = pids, seconds, folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        spy = Path(sys.executable).with_name("py-spy")
        for pid in self.pids:
            self.procs.append(
                subprocess.Popen(  # noqa: S603 - our own tool and arguments
                    [
                        str(spy),
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(int(self.seconds)),
                        "--rate",
                        str(SPY_RATE),
                        "--format",
                        "raw",
                        "--nonblocking",
                        "--gil",
                        "--output",
                        str(self.folder / f"worker-{pid}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )

    def report(self, requests: int, top: int = 25) -> dict[str, Any]:
        for proc in self.procs:
            try:
                proc.wait(timeout=self.seconds + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self_time: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = 0
        for path in self.folder.glob("worker-*.txt"):
            for line in path.read_text(errors="replace").splitlines():
                stack, _, count = line.rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                n = int(count)
                frames = [_frame(f) for f in stack.split(";")]
                total += n
                self_time[frames[-1]] += n
                for frame in set(frames):
                    inclusive[frame] += n
        if not total:
            return {"error": f"py-spy wrote no samples to {self.folder}"}
        per = 1000.0 / SPY_RATE / max(requests, 1)  # ms of CPU per request per sample

        def rows(counter: Counter[str]) -> list[dict[str, Any]]:
            return [
                {"function": f, "percent": round(100 * c / total, 1),
                 "ms_per_request": round(c * per, 3)}
                for f, c in counter.most_common(top)
            ]  # fmt: skip

        phases = []
        for label, name, files in PHASES:
            hits = sum(
                c
                for frame, c in inclusive.items()
                if frame.startswith(f"{name} (") and frame.rstrip(")").endswith(files)
            )
            phases.append({"phase": label, "percent": round(100 * hits / total, 1),
                           "ms_per_request": round(hits * per, 3)})  # fmt: skip
        return {"samples": total, "cpu_ms_per_request": round(total * per, 3),
                "phases": phases, "self": rows(self_time),
                "inclusive": rows(inclusive)}  # fmt: skip


def _frame(raw: str) -> str:
    """`function (path/to/file.py:123)` -> `function (file.py)`, short enough to read."""
    name, _, where = raw.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if parts else file
    return f"{name} ({short})"


def per_process(snaps: dict[str, CpuSnapshot], group: str, pids: list[int]) -> list[float]:
    """Percent of one core used by each of these processes of the group over the window."""
    if len(snaps) != 2:
        return []
    before, after = snaps["before"], snaps["after"]
    seconds = max(after.at - before.at, 1e-9)
    return [
        round(
            100.0
            * (after.groups[group].get(pid, 0) - before.groups[group].get(pid, 0))
            / CLOCK_TICKS
            / seconds,
            1,
        )
        for pid in pids
    ]


# --------------------------------------------------------------------------------------------
# Statistics and output
# --------------------------------------------------------------------------------------------


def _rank(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(max(math.ceil(q * len(ordered)) - 1, 0), len(ordered) - 1)]


def summary(latency_s: list[float], server: list[float]) -> dict[str, Any]:
    client = sorted(x * 1000 for x in latency_s if not math.isnan(x))
    srv = sorted(x for x in server if not math.isnan(x))
    out: dict[str, Any] = {"n": len(client)}
    for label, values in (("client", client), ("server", srv)):
        for name, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)):
            out[f"{label}_{name}_ms"] = round(_rank(values, q), 2)
        out[f"{label}_max_ms"] = round(values[-1], 2) if values else math.nan
    return out


def analyse(out: Outcome, requests: list[Planned], first: int, last: int) -> dict[str, Any]:
    """Figures of the requests due in [first, last)."""
    idx = range(first, last)
    groups: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        groups["all"].append(i)
        groups[KINDS[requests[i].kind]].append(i)
        groups["with experiment" if requests[i].experiment else "placements only"].append(i)
    table = {
        name: summary([out.latency[i] for i in members], [out.server[i] for i in members])
        for name, members in groups.items()
    }
    statuses = Counter(str(out.status[i]) for i in idx if out.status[i])
    ends = [out.due[i] + out.latency[i] for i in idx if out.status[i]]
    span = (max(ends) - out.due[first]) if ends else math.nan
    ok = statuses.get("200", 0)
    return {
        "requests": len(idx),
        "offered_rate": round((len(idx) - 1) / (out.due[last - 1] - out.due[first]), 1)
        if len(idx) > 1
        else 0.0,
        "achieved_rate": round(ok / span, 1) if span and not math.isnan(span) else 0.0,
        "statuses": dict(statuses),
        "non_200": len(idx) - ok,
        "degraded": sum(out.degraded[i] for i in idx),
        "offers": dict(Counter(str(out.offer[i]) for i in idx if out.status[i] == 200)),
        "known_answers": sum(out.known[i] for i in idx),
        "variants": dict(Counter(str(out.variant[i]) for i in idx if requests[i].experiment)),
        "table": table,
        "per_second": per_second(out, first, last),
    }


def per_second(out: Outcome, first: int, last: int) -> list[dict[str, Any]]:
    """Each second of the window (by due time): where a stall happened and how long its
    queue took to drain."""
    seconds: dict[int, list[int]] = defaultdict(list)
    for i in range(first, last):
        seconds[int(out.due[i] - out.due[first])].append(i)
    rows = []
    for second, members in sorted(seconds.items()):
        row = summary([out.latency[i] for i in members], [out.server[i] for i in members])
        rows.append(
            {
                "second": second,
                "n": row["n"],
                "client_p50_ms": row["client_p50_ms"],
                "client_p99_ms": row["client_p99_ms"],
                "client_max_ms": row["client_max_ms"],
                "server_p99_ms": row["server_p99_ms"],
                "server_max_ms": row["server_max_ms"],
            }
        )
    return rows


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def print_results(report: dict[str, Any]) -> None:
    m, cfg, res = report["machine"], report["config"], report["measured"]
    print()
    print(f"Decision API benchmark {report['started_at']}  ({m['cpus']} CPUs, {m['postgres']})")
    print(
        f"{cfg['profiles']:,} profiles; gunicorn {cfg['workers']} {cfg['worker_class']} workers"
        + (f" x {cfg['threads']} threads" if cfg["worker_class"] == "gthread" else "")
        + f"; open loop at {cfg['rate']:,.0f} req/s, {cfg['warmup']:.0f} s warm-up, "
        f"{cfg['seconds']:.0f} s measured"
        + (f"; server env {' '.join(cfg['server_env'])}" if cfg["server_env"] else "")
    )
    print(
        f"requests {res['requests']:,}; achieved {res['achieved_rate']:,.1f} req/s; non-200 "
        f"{res['non_200']} {res['statuses']}; transport errors {report['errors']}; "
        f"degraded {res['degraded']}"
    )
    header = (
        f"{'':<18}{'n':>7} | {'client ms (from due time)':^39} | {'server ms (Server-Timing)':^39}"
    )
    print(header)
    sub = f"{'':<18}{'':>7} |" + f"{'p50':>10}{'p99':>10}{'p99.9':>10}{'max':>10} |" * 2
    print(sub)
    print("-" * len(sub))
    order = ["all", *KINDS, "placements only", "with experiment"]
    for name in order:
        row = res["table"].get(name)
        if row is None:
            continue
        cells = "".join(
            f"{_f(row[f'{side}_p50_ms']):>10}{_f(row[f'{side}_p99_ms']):>10}"
            f"{_f(row[f'{side}_p99.9_ms']):>10}{_f(row[f'{side}_max_ms'], 1):>10} |"
            for side in ("client", "server")
        )
        print(f"{name:<18}{row['n']:>7,} |{cells}")
    cpu = report["cpu_percent_of_one_core"]
    print(
        f"\nCPU over the measured window (% of one core; {m['cpus']} cores = "
        f"{100 * m['cpus']} %): gunicorn {cpu.get('gunicorn', 0):.1f}, postgres "
        f"{cpu.get('postgres', 0):.1f}, load generator {cpu.get('load generator', 0):.1f}, "
        f"other processes {cpu.get('other processes', 0):.1f}; machine busy "
        f"{cpu.get('machine busy', 0):.1f}; per gunicorn worker "
        f"{', '.join(f'{w:.1f}' for w in report['cpu_percent_per_worker'])}"
    )
    gen = report["load_generator"]
    print(
        f"load generator: {gen['connects']:,} connections opened (at most {gen['max_open']} "
        f"open; {gen['stale_keepalive_retried']} idle ones found closed, their requests resent), "
        f"dispatch lag max {gen['max_dispatch_lag_ms']:.1f} ms"
    )
    print(f"answers: offers {res['offers']}; experiment variants {res['variants']}")
    worst = sorted(res["per_second"], key=lambda r: r["client_max_ms"], reverse=True)[:5]
    print(
        "worst seconds (by client max): "
        + "; ".join(
            f"s{r['second']}: client p99 {_f(r['client_p99_ms'], 1)} "
            f"max {_f(r['client_max_ms'], 1)}, server max {_f(r['server_max_ms'], 1)}"
            for r in worst
        )
    )
    if cpu.get("other processes", 0) > 20:
        print(
            f"WARNING: other processes used {cpu['other processes']:.0f} % of a core during "
            "the measurement; the figures understate the decision API."
        )
    for line in report["targets"]:
        print(line)
    profile = report.get("profile")
    if profile:
        print_profile(profile)
    print(f"\nJSON: {report['json_path']}")


def print_profile(profile: dict[str, Any]) -> None:
    if "error" in profile:
        print(f"profile: {profile['error']}")
        return
    print(
        f"\npy-spy over the workers, measured window: {profile['samples']:,} samples, "
        f"{profile['cpu_ms_per_request']:.2f} ms of worker CPU per request (Python holding "
        "the GIL: waits on Postgres and Redis are not in it; sampling adds a little)"
    )
    print(f"  {'phase (inclusive)':<44}{'% CPU':>7}{'ms/req':>9}")
    for row in profile["phases"]:
        print(f"  {row['phase']:<44}{row['percent']:>7.1f}{row['ms_per_request']:>9.3f}")
    for title, key in (("inclusive (the function and what it calls)", "inclusive"),
                       ("self (the function's own code)", "self")):  # fmt: skip
        print(f"  top {title}:")
        for row in profile[key]:
            print(f"    {row['percent']:>5.1f} %  {row['ms_per_request']:>7.3f} ms  "
                  f"{row['function'][:110]}")  # fmt: skip


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--profiles", type=int, default=1_000_000, help="profiles (default 1M)")
    p.add_argument("--rate", type=float, default=500.0, help="requests/s (default 500)")
    p.add_argument("--seconds", type=float, default=60.0, help="measured (default 60)")
    p.add_argument("--warmup", type=float, default=10.0, help="warm-up at the rate (default 10)")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                   help=f"gunicorn worker processes (default {DEFAULT_WORKERS})")  # fmt: skip
    p.add_argument("--worker-class", default=DEFAULT_WORKER_CLASS, choices=["sync", "gthread"],
                   help=f"gunicorn worker class (default {DEFAULT_WORKER_CLASS})")  # fmt: skip
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"threads per gthread worker (default {DEFAULT_THREADS})")  # fmt: skip
    p.add_argument("--max-connections", type=int, default=256,
                   help="connections the load generator may hold open (default 256)")  # fmt: skip
    p.add_argument("--reuse-data", action="store_true",
                   help="keep the database of a previous run with as many profiles")  # fmt: skip
    p.add_argument("--setup-only", action="store_true", help="generate the data and stop")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the workers during the measured window")  # fmt: skip
    p.add_argument("--wait-quiet", type=float, default=60.0,
                   help="wait up to this many seconds for other processes to leave the CPUs "
                        "idle before the load (default 60; 0: do not wait)")  # fmt: skip
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for gunicorn only, e.g. "
                        "DB_CONN_HEALTH_CHECKS=0 (repeatable)")  # fmt: skip
    p.add_argument("--seed", type=int, default=None,
                   help="of the request mix (default: a new one each run, so that a reused "
                        "database is asked about other profiles)")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    started_at = datetime.now(tz=UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    db_url = os.environ.get("BENCH_DECIDE_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_DECIDE_REDIS_URL", DEFAULT_REDIS_URL)
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
    prepared = prepare(db_url, redis_url, env, args.profiles, args.reuse_data)
    if args.setup_only:
        return 0
    with contextlib.suppress(psycopg.Error), psycopg.connect(db_url, autocommit=True) as conn:
        # the data's writes flushed now, not by a checkpoint spread over the measurement
        conn.execute("CHECKPOINT")

    server_env = dict(env)
    for item in args.server_env:
        name, _, value = item.partition("=")
        server_env[name] = value
    if args.worker_class == "gthread":
        server_env["GUNICORN_CMD_ARGS"] = f"--threads {args.threads}"
    log_path = RESULTS_DIR / f"decide-{stamp}-gunicorn.log"
    server = Server(server_env, args.workers, args.worker_class, log_path)
    warm = round(args.warmup * args.rate)
    measured = round(args.seconds * args.rate)
    json_path = RESULTS_DIR / f"decide-{stamp}.json"
    try:
        print(f"starting gunicorn ({args.workers} {args.worker_class} workers) ...")
        server.start()
        requests = plan_requests(warm + measured, args.profiles, server.port,
                                 prepared.server_key, args.seed)  # fmt: skip
        if args.wait_quiet > 0:
            busy = wait_until_quiet(args.wait_quiet)
            if busy >= 30.0:
                print(f"  machine still {busy:.0f}% busy with other work; going on")
        print(f"  {HOST}:{server.port}: {args.warmup:.0f} s warm-up, then {args.seconds:.0f} s "
              f"at {args.rate:,.0f} req/s ...")  # fmt: skip
        snaps: dict[str, CpuSnapshot] = {}
        groups: dict[str, list[int]] = {}
        server_workers: list[int] = []
        spies: Spies | None = None

        # the workers are listed now: scanning /proc during the load would hold the load
        # generator's GIL for milliseconds
        server_workers.extend(server.worker_pids())

        def at_start() -> None:
            nonlocal spies
            groups["gunicorn"] = [server.proc.pid, *server_workers] if server.proc else []
            groups["postgres"] = postgres_pids(db_url)
            groups["load generator"] = [os.getpid()]
            snaps["before"] = cpu_snapshot(groups)
            if args.profile:
                spies = Spies(server_workers, args.seconds,
                              Path(tempfile.mkdtemp(prefix="cdp-bench-decide-spy-")))  # fmt: skip
                spies.start()

        def at_end() -> None:
            snaps["after"] = cpu_snapshot(groups)

        gc.collect()
        gc.freeze()
        generator = LoadGenerator(server.port, requests, args.rate, args.max_connections)
        out = asyncio.run(generator.run({warm: at_start, warm + measured - 1: at_end}))
    finally:
        server.stop()
    results = analyse(out, requests, warm, warm + measured)
    warmup = analyse(out, requests, 0, warm) if warm else None
    cpu = cpu_usage(snaps["before"], snaps["after"]) if len(snaps) == 2 else {}
    per_worker = per_process(snaps, "gunicorn", server_workers)
    with psycopg.connect(db_url, autocommit=True) as conn:
        pg = conn.execute("SHOW server_version").fetchone()
        exposures = conn.execute("SELECT count(*) FROM activation_exposure").fetchone()
    server_row = results["table"]["all"]
    met = (
        server_row["server_p50_ms"] <= TARGET_P50_MS
        and server_row["server_p99_ms"] <= TARGET_P99_MS
        and results["non_200"] == 0
        and results["achieved_rate"] >= 0.98 * args.rate
    )
    targets = [
        f"target server time p50 <= {TARGET_P50_MS:.0f} ms, p99 <= {TARGET_P99_MS:.0f} ms at "
        f"{args.rate:,.0f} req/s: p50 {server_row['server_p50_ms']:.2f} ms, p99 "
        f"{server_row['server_p99_ms']:.2f} ms, achieved {results['achieved_rate']:,.1f} req/s, "
        f"non-200 {results['non_200']} -> {'MET' if met else 'MISSED'}"
    ]
    report: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgres": f"PostgreSQL {pg[0] if pg else '?'}",
            "host": platform.node(),
        },
        "config": {
            "database": redact(db_url),
            "redis": redis_url,
            "profiles": args.profiles,
            "rate": args.rate,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "workers": args.workers,
            "worker_class": args.worker_class,
            "threads": args.threads if args.worker_class == "gthread" else 1,
            "max_connections": args.max_connections,
            "seed": args.seed,
            "reused_data": prepared.reused,
            "server_env": args.server_env,
        },  # fmt: skip
        "data": {"timings_s": prepared.timings, "rows": prepared.counts},
        "measured": results,
        "warmup": warmup,
        "errors": dict(out.errors),
        "exposures_in_database": int(exposures[0]) if exposures else 0,
        "load_generator": {
            "connects": out.connects,
            "stale_keepalive_retried": out.stale,
            "max_open": out.max_open,
            "max_dispatch_lag_ms": round(out.max_dispatch_lag * 1000, 2),
        },
        "cpu_percent_of_one_core": cpu,
        "cpu_percent_per_worker": per_worker,
        "targets": targets,
        "profile": spies.report(measured) if spies is not None else None,
        "gunicorn_log": str(log_path),
        "json_path": str(json_path),
    }
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print_results(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
