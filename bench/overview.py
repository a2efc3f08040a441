"""Overview benchmark: the landing page's widgets and the page itself over a large workspace.

Run it with `bin/bench overview` (or `.venv/bin/python bench/overview.py --help`). The data
lives in its own database `cdp_bench_overview` on 127.0.0.1:5432 (BENCH_OVERVIEW_DATABASE_URL
overrides) and Redis db 13 (BENCH_OVERVIEW_REDIS_URL). A database an earlier run built with
the same `--profiles` and `--events` is reused (it carries what it holds as a comment on the
database); `--fresh` rebuilds it. A build:

1. a fresh database, migrated, with a bootstrapped workspace (its owner is `admin`);
2. the data, straight into the tables with set-based SQL (`generate_series`):
   - `--profiles` live profiles (default 1M) from the segments bench's generator
     (bench/segments.py `_PROFILES`: plan/country/age traits, order counts, revenue), then one
     UPDATE that spreads first_seen over two years (3-4 % in the last 30 days: the "new"
     people), sets the order times, and writes the scheduled built-ins into `computed` with
     SQL (RFM recency/frequency/monetary 1-5, score, segment named by the app's own
     `rfm_segment`, AOV, days since the last order, engagement score, the `_updated`
     bookkeeping) rather than through `builtin_traits_refresh` (about the same JSON, one
     statement instead of 200 chunks);
   - `--events` processed events (default 5M, profiles_profileevent only: the overview does
     not read the raw events table) spread evenly over the last 90 days: 50 % track (Order
     Completed with revenue, Product Viewed, Signed Up, as the segments bench), 30 % page,
     10 % identify, 10 % screen; the hourly event counters of all 90 days rolled up from them;
   - identities: an anonymous id for every profile, a user id for ~60 %;
   - consent: the default purposes, a decision (record + state) of ~90 % of the profiles on
     personalization, ~70 % on marketing_email and ~30 % on analytics, decided over a year;
   - 5 published segments (first published 40 days ago) of ~500k, 200k, 100k, 50k and 10k
     live members (at 1M profiles; the sizes scale with `--profiles`): 70 % entered at the
     publication, 30 % over the last 30 days, and 8 % more who entered and left again in
     those 30 days; 2 draft segments;
   - VACUUM ANALYZE of every table written.

Then, in this process (Django set up against that database):

1. each widget's compute, cold (`overview.run`: with the settings it runs with, no Redis), `--runs`
   times (default 5): first run, median, p95; with the queries of one more run;
2. the page (`GET /` through Django's test client, signed in as the owner: the middleware,
   the view, Redis, the template): `--warm` requests (default 30) with every widget cached;
   `--expired` requests (default 5) each after deleting the keys of the widgets that are not
   `heavy` (a visit once their ttl has run out: they are computed in the request, the heavy
   ones served from the cache); `--cold` requests (default 5) each after deleting every
   `cdp:overview:*` key — what a first visitor waits for, every widget computed in the
   request;
3. for each widget over the target (300 ms) cold, EXPLAIN (ANALYZE, BUFFERS) of its queries
   over 50 ms: a summary line each, the whole plans with `--explain` (and in the JSON).

`--set jit=off` (any NAME=VALUE, repeatable) applies a Postgres setting to this process's
sessions, to see what a configuration change would buy. The machine's load average is
printed before and after: the 2 cores are shared, so compare medians and ratios of runs.

Target (the issue): the page ≤ 300 ms server time on 1M profiles. Figures are printed and
written to bench/results/overview-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector import (  # noqa: E402
    REPO,
    RESULTS_DIR,
    create_fresh_database,
    flush_redis,
    manage,
    redact,
    with_database,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_overview"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
WORKSPACE = "Overview bench"
OWNER = "admin"  # cdp_bootstrap's default login, the workspace's owner
TARGET_MS = 300.0
EXPLAIN_OVER_MS = 50.0  # the queries of a slow widget worth a plan
DATA_VERSION = 1  # bump when the generated data changes: older databases are then rebuilt

# (name, live members at 1M profiles, rule); the rules only name them, memberships are generated
SEGMENTS: list[tuple[str, int, dict[str, Any]]] = [
    ("Free plan", 500_000, {"trait": "plan", "op": "eq", "value": "free"}),
    ("Europe", 200_000, {"trait": "country", "op": "in", "value": ["DE", "FR", "GB"]}),
    ("Repeat buyers", 100_000, {"trait": "order_count", "op": "gte", "value": 5}),
    ("Pro in Germany", 50_000, {"all": [{"trait": "plan", "op": "eq", "value": "pro"},
                                        {"trait": "country", "op": "eq", "value": "DE"}]}),
    ("VIP", 10_000, {"trait": "revenue", "op": "gte", "value": 250}),
]  # fmt: skip
DRAFTS = ["Lapsed pro", "Newsletter readers"]
# (purpose, share of profiles with a decision, share of decisions that grant, that withdraw)
CONSENT = [("personalization", 0.9, 0.8, 0.05), ("marketing_email", 0.7, 0.55, 0.1),
           ("analytics", 0.3, 0.1, 0.0)]  # fmt: skip
SEGMENT_PUBLISHED_DAYS = 40
TABLES = (
    "profiles_profile",
    "profiles_profileevent",
    "profiles_eventcounter",
    "profiles_identity",
    "consent_consentrecord",
    "consent_consentstate",
    "segments_membership",
)

# ---------------------------------------------------------------------------------------------
# Data: set-based SQL straight into the tables
# ---------------------------------------------------------------------------------------------


def _segments_bench() -> ModuleType:
    """bench/segments.py under another name (the Django app `segments` keeps its own)."""
    spec = importlib.util.spec_from_file_location(
        "bench_segments", Path(__file__).resolve().parent / "segments.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# One pass over the segments bench's profiles: first seen over two years, order times, and the
# scheduled built-ins (profiles.computed.sql BUILTIN_UPDATE's keys) for customers (orders > 0)
_SHAPE = """
WITH s AS (
    SELECT id, h, d.seen_days,
           least((h >> 13) %% 365, d.seen_days) AS order_days
    FROM (SELECT id, hashint8(id) & 2147483647 AS h FROM profiles_profile
          WHERE workspace_id = %(ws)s) x,
         LATERAL (SELECT (h %% 730)::int AS seen_days) d
), v AS (
    SELECT s.*, 5 - least(4, order_days / 73) AS r
    FROM s
)
UPDATE profiles_profile p SET
    created_at = now() - make_interval(days => v.seen_days),
    first_seen = now() - make_interval(days => v.seen_days),
    first_order_at = CASE WHEN p.order_count > 0
                          THEN now() - make_interval(days => v.seen_days) END,
    last_order_at = CASE WHEN p.order_count > 0
                         THEN now() - make_interval(days => v.order_days) END,
    computed = CASE WHEN p.order_count = 0
        THEN jsonb_build_object('engagement_score', (v.h >> 4) %% 101,
                                '_updated', %(updated_engagement)s::jsonb)
        ELSE jsonb_build_object(
            'average_order_value', round(p.revenue / p.order_count, 2),
            'days_since_last_order', v.order_days,
            'engagement_score', (v.h >> 4) %% 101,
            'rfm_recency', v.r,
            'rfm_frequency', least(5, p.order_count),
            'rfm_monetary', least(5, p.order_count),
            'rfm_score', v.r::text || least(5, p.order_count)::text
                         || least(5, p.order_count)::text,
            'rfm_segment', %(names)s::jsonb ->> (v.r::text || least(5, p.order_count)::text),
            '_updated', %(updated)s::jsonb) END
FROM v
WHERE p.id = v.id
"""

# after bench/segments.py's _EVENTS, with a mix of types; profiles_profileevent only
_EVENTS = """
WITH ids AS (
    SELECT min(id) AS low FROM profiles_profile WHERE workspace_id = %(ws)s
)
INSERT INTO profiles_profileevent (event_id, workspace_id, profile_id, origin_profile_id,
    "timestamp", type, event, properties)
SELECT nextval(pg_get_serial_sequence('profiles_event', 'id')), %(ws)s, x.pid, x.pid, x.ts,
       k.type, k.event,
       CASE WHEN k.event = 'Order Completed' THEN jsonb_build_object('revenue', g %% 200)
            ELSE '{}' END
FROM generate_series(%(start)s::int, %(stop)s::int) AS g, ids,
     LATERAL (SELECT ids.low + (hashint4(g) & 2147483647) %% %(profiles)s AS pid,
                     now() - ((g %% 129600) * interval '1 minute') AS ts,
                     (hashint4(g + 7919) & 1023) %% 20 AS t) x,
     LATERAL (SELECT CASE WHEN x.t < 10 THEN 'track' WHEN x.t < 16 THEN 'page'
                          WHEN x.t < 18 THEN 'identify' ELSE 'screen' END AS type,
                     CASE WHEN x.t < 10 THEN (ARRAY['Order Completed', 'Product Viewed',
                                                    'Product Viewed', 'Signed Up'])[1 + x.t %% 4]
                          WHEN x.t < 16 THEN (ARRAY['/', '/products', '/cart', '/blog'])
                                             [1 + x.t %% 4]
                          WHEN x.t < 18 THEN ''
                          ELSE (ARRAY['Home', 'Product'])[1 + x.t %% 2] END AS event) k
"""

# what the pipeline's stats stage counts per received hour (here: the events' own hour)
_COUNTERS = """
INSERT INTO profiles_eventcounter (workspace_id, source_id, type, event, hour, count)
SELECT %(ws)s, %(source)s, type, event, date_trunc('hour', "timestamp"), count(*)
FROM profiles_profileevent WHERE workspace_id = %(ws)s
GROUP BY 3, 4, 5
"""

_IDENTITIES = """
INSERT INTO profiles_identity (workspace_id, profile_id, origin_profile_id, type, value,
    first_seen)
SELECT %(ws)s, p.id, p.id, t.type,
       CASE t.type WHEN 'user_id' THEN 'u' || p.id ELSE md5('anon-' || p.id)::uuid::text END,
       p.first_seen
FROM profiles_profile p, (VALUES ('anonymous_id'), ('user_id')) AS t(type)
WHERE p.workspace_id = %(ws)s
  AND (t.type = 'anonymous_id' OR (hashint8(p.id * 31) & 1023) < 614)
"""

# one decision per (profile, purpose) chosen, on a day of the last year
_CONSENT_RECORDS = """
INSERT INTO consent_consentrecord (workspace_id, profile_id, origin_profile_id, purpose, status,
    occurred_at, recorded_at, source, event_id, message_id, policy_version, ip, user_agent,
    actor_id)
SELECT %(ws)s, p.id, p.id, %(purpose)s,
       CASE WHEN x.u < %(granted)s THEN 'granted'
            WHEN x.u < %(granted)s + %(withdrawn)s THEN 'withdrawn' ELSE 'denied' END,
       x.at, x.at, 'event', NULL, '', 'v1', '', '', NULL
FROM profiles_profile p,
     LATERAL (SELECT (hashint8(p.id * 17 + %(salt)s) & 1048575) / 1048576.0 AS pick,
                     (hashint8(p.id * 29 + %(salt)s) & 1048575) / 1048576.0 AS u,
                     now() - make_interval(mins => (hashint8(p.id + %(salt)s) & 2147483647)
                                                   %% 525600) AS at) x
WHERE p.workspace_id = %(ws)s AND x.pick < %(share)s
"""

_CONSENT_STATES = """
INSERT INTO consent_consentstate (workspace_id, profile_id, purpose, status, decided_at,
    record_id)
SELECT workspace_id, profile_id, purpose, status, occurred_at, id
FROM consent_consentrecord WHERE workspace_id = %(ws)s
"""

# members of each segment by a hash of (profile, segment); 8 % extra rows entered and left
_MEMBERSHIPS = """
INSERT INTO segments_membership (segment_id, profile_id, version, entered_at, exited_at)
SELECT s.id, p.id, 1, e.entered_at,
       CASE WHEN x.pick >= s.share THEN e.entered_at + (now() - e.entered_at) * x.u END
FROM profiles_profile p,
     jsonb_to_recordset(%(segments)s::jsonb) AS s(id bigint, share float8, published timestamptz),
     LATERAL (SELECT (hashint8(p.id * 7919 + s.id) & 1048575) / 1048576.0 AS pick,
                     (hashint8(p.id * 104729 + s.id) & 1048575) / 1048576.0 AS u) x,
     LATERAL (SELECT CASE WHEN x.pick < s.share AND x.u < 0.7 THEN s.published
                          ELSE now() - make_interval(secs => x.u * 2592000) END AS entered_at) e
WHERE p.workspace_id = %(ws)s AND x.pick < s.share * 1.08
"""


def _timed(timings: dict[str, float], label: str, started: float) -> None:
    timings[label] = round(time.monotonic() - started, 1)
    print(f"  {label}: {timings[label]:.1f} s")


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _existing(url: str, profiles: int, events: int) -> dict[str, Any] | None:
    """What a complete earlier build left in the database's comment, if it matches."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as admin:
        row = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    if row is None or not row[0]:
        return None
    try:
        built: dict[str, Any] = json.loads(row[0])
    except ValueError:
        return None
    wanted = {"version": DATA_VERSION, "profiles": profiles, "events": events}
    if any(built.get(k) != v for k, v in wanted.items()):
        return None
    return built


def build(url: str, env: dict[str, str], profiles: int, events: int) -> dict[str, Any]:
    """A fresh database with the whole data set; returns what it holds (also stored as the
    database's comment, the mark of a complete build)."""
    timings: dict[str, float] = {}
    total = time.monotonic()
    started = time.monotonic()
    create_fresh_database(url)
    manage(env, "migrate", "--noinput")
    out = manage(env, "cdp_bootstrap", "--workspace", WORKSPACE)
    workspace_id = int(json.loads(out[out.index("{") :])["workspace"]["id"])
    _timed(timings, "database, migrations, bootstrap", started)
    _django(env)
    from cdp.models import Workspace
    from consent.services import purposes_install_defaults
    from profiles.computed.builtin import SCHEDULED_KEYS, rfm_segment
    from profiles.models import Source

    workspace = Workspace.objects.get(pk=workspace_id)
    purposes_install_defaults(workspace=workspace)
    source = Source.objects.filter(workspace=workspace).order_by("pk").first()
    at = datetime.now(UTC).isoformat()
    rfm_keys = [k for k in SCHEDULED_KEYS if k != "engagement_score"]
    shape = {
        "ws": workspace_id,
        "names": json.dumps(
            {f"{r}{f}": rfm_segment(r, f) for r in range(1, 6) for f in range(1, 6)}
        ),  # fmt: skip
        "updated": json.dumps({k: at for k in (*rfm_keys, "engagement_score")}),
        "updated_engagement": json.dumps({"engagement_score": at}),
    }
    segments_bench = _segments_bench()
    print(f"generating {profiles:,} profiles and {events:,} events …")
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        conn.execute(segments_bench._PROFILES, {"ws": workspace_id, "n": profiles})
        _timed(timings, "profiles (bench/segments.py _PROFILES)", started)
        started = time.monotonic()
        conn.execute(_SHAPE, shape)
        _timed(timings, "first seen, order times, RFM and built-ins (one UPDATE)", started)
        started = time.monotonic()
        step = 1_000_000
        for start in range(1, events + 1, step):
            conn.execute(
                _EVENTS,
                {"ws": workspace_id, "start": start, "stop": min(start + step - 1, events),
                 "profiles": profiles},
            )  # fmt: skip
        _timed(timings, "profile events", started)
        started = time.monotonic()
        conn.execute(_COUNTERS, {"ws": workspace_id, "source": source.pk if source else None})
        _timed(timings, "hourly event counters", started)
        started = time.monotonic()
        conn.execute(_IDENTITIES, {"ws": workspace_id})
        _timed(timings, "identities", started)
        started = time.monotonic()
        for n, (purpose, share, granted, withdrawn) in enumerate(CONSENT):
            conn.execute(
                _CONSENT_RECORDS,
                {"ws": workspace_id, "purpose": purpose, "share": share, "granted": granted,
                 "withdrawn": withdrawn, "salt": 1000 * (n + 1)},
            )  # fmt: skip
        conn.execute(_CONSENT_STATES, {"ws": workspace_id})
        _timed(timings, "consent records and states", started)

    started = time.monotonic()
    published = _segments(workspace)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_MEMBERSHIPS, {"ws": workspace_id, "segments": json.dumps(published)})
        conn.execute(
            "UPDATE segments_segment s SET member_count = (SELECT count(*) FROM"
            " segments_membership m WHERE m.segment_id = s.id AND m.exited_at IS NULL)"
            " WHERE s.workspace_id = %s",
            [workspace_id],
        )
        _timed(timings, "segments and memberships", started)
        started = time.monotonic()
        for table in TABLES:
            conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute("ANALYZE")
        _timed(timings, "VACUUM ANALYZE", started)
        started = time.monotonic()
        counts = _counts(conn, workspace_id)
        timings["counting rows"] = round(time.monotonic() - started, 1)
        timings["total"] = round(time.monotonic() - total, 1)
        built = {
            "version": DATA_VERSION,
            "profiles": profiles,
            "events": events,
            "workspace": workspace_id,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rows": counts,
            "timings_s": timings,
        }
        name = urlsplit(url).path.lstrip("/")
        conn.execute(f'COMMENT ON DATABASE "{name}" IS {_literal(json.dumps(built))}')
    from django.db import connections

    connections.close_all()
    return built


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _counts(conn: psycopg.Connection[Any], workspace_id: int) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        extra = " AND merged_into_id IS NULL" if table == "profiles_profile" else ""
        if table == "segments_membership":
            sql = ("SELECT count(*) FROM segments_membership m JOIN segments_segment s"
                   " ON s.id = m.segment_id WHERE s.workspace_id = %s")  # fmt: skip
        else:
            sql = f"SELECT count(*) FROM {table} WHERE workspace_id = %s{extra}"
        row = conn.execute(sql, [workspace_id]).fetchone()
        counts[table] = int(row[0]) if row else 0
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE computed ? 'rfm_recency'),"
        " count(*) FILTER (WHERE first_seen >= now() - interval '30 days')"
        " FROM profiles_profile WHERE workspace_id = %s",
        [workspace_id],
    ).fetchone()
    counts["profiles with RFM scores"] = int(row[0]) if row else 0
    counts["profiles first seen in the last 30 days"] = int(row[1]) if row else 0
    row = conn.execute(
        "SELECT count(*) FROM profiles_profileevent WHERE workspace_id = %s"
        " AND timestamp >= now() - interval '24 hours'",
        [workspace_id],
    ).fetchone()
    counts["profile events, last 24 h"] = int(row[0]) if row else 0
    return counts


def _segments(workspace: Any) -> list[dict[str, Any]]:
    """The segments through the service, then published 40 days ago on the rows (a publish
    would evaluate each over every profile; the memberships are generated instead)."""
    from datetime import timedelta

    from django.utils import timezone

    from segments.models import Segment, SegmentStatus, SegmentVersion
    from segments.services import segment_create

    published_at = timezone.now() - timedelta(days=SEGMENT_PUBLISHED_DAYS)
    out = []
    for name, members, rule in SEGMENTS:
        segment = segment_create(workspace=workspace, name=name, rule=rule)
        version = segment.draft_version
        assert version is not None
        SegmentVersion.objects.filter(pk=version.pk).update(published_at=published_at)
        Segment.objects.filter(pk=segment.pk).update(
            status=SegmentStatus.PUBLISHED,
            published_version=version,
            draft_version=None,
            created_at=published_at,
            evaluated_at=timezone.now(),
        )
        # a share of the profiles: ~`members` at 1M, as many in proportion at other sizes
        out.append({"id": segment.pk, "share": members / 1_000_000,
                    "published": published_at.isoformat()})  # fmt: skip
    for name in DRAFTS:
        segment_create(workspace=workspace, name=name, rule={"trait": "plan", "op": "eq",
                                                             "value": "team"})  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def session_settings(items: list[str]) -> None:
    """SET each NAME=VALUE on every connection Django opens in this process."""
    from django.db import connection
    from django.db.backends.signals import connection_created

    pairs = [item.partition("=")[::2] for item in items]
    if not pairs:
        return

    def apply(sender: Any, connection: Any, **kwargs: Any) -> None:
        with connection.cursor() as cursor:
            for name, value in pairs:
                cursor.execute("SELECT set_config(%s, %s, false)", [name, value])

    connection_created.connect(apply, weak=False)
    if connection.connection is not None:
        apply(None, connection)
    print("session settings: " + ", ".join(f"{n} = {v}" for n, v in pairs))


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _summary(runs: list[float]) -> dict[str, Any]:
    return {
        "n": len(runs),
        "first_ms": round(runs[0] * 1000, 1),
        "median_ms": round(statistics.median(runs) * 1000, 1),
        "p95_ms": round(percentile(runs, 0.95) * 1000, 1),
        "max_ms": round(max(runs) * 1000, 1),
        "runs_ms": [round(r * 1000, 1) for r in runs],
    }


def time_widgets(workspace: Any, runs: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from cdp import overview

    # the process's first reverse() imports every URLconf (~1 s): not a widget's cost
    reverse("ui-profiles")
    connection.ensure_connection()
    results = {}
    print(f"  {'widget':<16}{'kind':<8}{'heavy':<7}{'ttl':>5}{'first':>10}{'median':>10}"
          f"{'p95':>10}{'queries':>9}")  # fmt: skip
    for widget in overview.widgets():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            overview.run(widget, workspace)
            times.append(time.perf_counter() - started)
        with CaptureQueriesContext(connection) as captured:
            overview.run(widget, workspace)
        row = _summary(times)
        row.update(
            kind=widget.kind,
            heavy=widget.heavy,
            ttl=widget.ttl,
            queries=[{"ms": round(float(q["time"]) * 1000, 1), "sql": q["sql"]}
                     for q in captured.captured_queries],
        )  # fmt: skip
        results[widget.key] = row
        flag = "  > 300 ms" if row["median_ms"] > TARGET_MS else ""
        print(
            f"  {widget.key:<16}{widget.kind:<8}{'yes' if widget.heavy else '':<7}"
            f"{widget.ttl:>5}{row['first_ms']:>8.1f}ms{row['median_ms']:>8.1f}ms"
            f"{row['p95_ms']:>8.1f}ms{len(row['queries']):>9}{flag}"
        )
    return results


def _delete_keys(redis_url: str, keys: list[str] | None = None) -> int:
    """Delete the given overview keys, or all of them (`cdp:overview:*`)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    found = keys if keys is not None else list(client.scan_iter("cdp:overview:*", count=1000))
    return int(client.delete(*found)) if found else 0


def time_page(workspace: Any, redis_url: str, warm: int, expired: int, cold: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from cdp import overview

    client = Client()
    client.force_login(get_user_model().objects.get(username=OWNER))

    def get() -> tuple[float, int]:
        started = time.perf_counter()
        response = client.get("/")
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"GET / answered {response.status_code}")
        return elapsed, len(response.content)

    _delete_keys(redis_url)
    overview.refresh(workspace.pk)  # every widget cached (what the beat keeps warm)
    get()  # the first request of the process (url resolvers, templates) is not counted
    started = time.monotonic()
    warm_runs, size = [], 0
    for _ in range(warm):
        elapsed, size = get()
        warm_runs.append(elapsed)
    warm_span = time.monotonic() - started
    with CaptureQueriesContext(connection) as captured:
        get()
    warm_row = {**_summary(warm_runs), "html_bytes": size, "queries": len(captured)}
    print(f"  warm ({warm} requests, every widget cached): median {warm_row['median_ms']:.1f} ms"
          f"  p95 {warm_row['p95_ms']:.1f} ms  max {warm_row['max_ms']:.1f} ms"
          f"  ({warm_row['queries']} SQL queries, {size:,} bytes of HTML)")  # fmt: skip
    shortest = min(w.ttl for w in overview.widgets())
    if warm_span >= shortest:
        print(f"  (the warm requests took {warm_span:.0f} s, longer than the shortest ttl "
              f"{shortest} s: some were not all cached)")  # fmt: skip
    # a visit after the cards' ttl: they are computed in the request, the heavy widgets are
    # served from the cache (fresh here; stale ones would be too, recomputed by a task)
    light = [f"cdp:overview:{workspace.pk}:{w.key}" for w in overview.widgets() if not w.heavy]
    expired_runs = []
    for _ in range(expired):
        _delete_keys(redis_url, light)
        expired_runs.append(get()[0])
    expired_row = _summary(expired_runs)
    print(f"  cards expired ({expired} requests, the {len(light)} non-heavy widgets' keys deleted "
          f"before each): median {expired_row['median_ms']:.0f} ms  p95 "
          f"{expired_row['p95_ms']:.0f} ms")  # fmt: skip
    cold_runs = []
    for _ in range(cold):
        _delete_keys(redis_url)
        cold_runs.append(get()[0])
    cold_row = _summary(cold_runs)
    print(f"  cold ({cold} requests, cdp:overview:* deleted before each): median "
          f"{cold_row['median_ms']:.0f} ms  p95 {cold_row['p95_ms']:.0f} ms  "
          f"first {cold_row['first_ms']:.0f} ms")  # fmt: skip
    return {"warm": warm_row, "cards_expired": expired_row, "cold": cold_row}


def explain_slow(widgets: dict[str, Any], show: bool) -> dict[str, list[dict[str, Any]]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the slow queries of the widgets over the target."""
    from django.db import connection

    plans: dict[str, list[dict[str, Any]]] = {}
    for key, row in widgets.items():
        if row["median_ms"] <= TARGET_MS:
            continue
        slow = [q for q in row["queries"] if q["ms"] >= EXPLAIN_OVER_MS]
        for query in sorted(slow, key=lambda q: -q["ms"]):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                plan = "\n".join(str(r[0]) for r in cursor.fetchall())
            plans.setdefault(key, []).append({"ms": query["ms"], "sql": query["sql"],
                                              "plan": plan})  # fmt: skip
            lines = plan.splitlines()
            execution = next((ln for ln in reversed(lines) if "Execution Time" in ln), "")
            jit = next((ln.strip() for ln in lines if ln.strip().startswith("Timing:")), "")
            print(f"  {key}: {query['ms']:.0f} ms query; top: {lines[0].strip()[:90]}")
            print(f"    {execution.strip()}{'; JIT ' + jit if jit else ''}")
            if show:
                print("    " + query["sql"].replace("\n", "\n    "))
                print("    " + plan.replace("\n", "\n    "))
    return plans


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=5, help="cold computes per widget")
    parser.add_argument("--warm", type=int, default=30, help="page requests, all cached")
    parser.add_argument("--cold", type=int, default=5, help="page requests, cache emptied")
    parser.add_argument("--fresh", action="store_true", help="rebuild the database")
    parser.add_argument("--setup-only", action="store_true", help="build the data and stop")
    parser.add_argument("--expired", type=int, default=5,
                        help="page requests, the cards' ttl run out")  # fmt: skip
    parser.add_argument("--explain", action="store_true",
                        help="print the whole plans of the slow widgets' queries")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a Postgres setting for this process's sessions, e.g. jit=off "
                             "(repeatable): what a fix would buy")  # fmt: skip
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_OVERVIEW_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_OVERVIEW_REDIS_URL", DEFAULT_REDIS_URL)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }
    started_at = datetime.now(UTC)
    print(f"database {redact(url)}, redis {redis_url}")
    flush_redis(redis_url)
    built = None if args.fresh else _existing(url, args.profiles, args.events)
    if built is None:
        built = build(url, env, args.profiles, args.events)
        reused = False
    else:
        print(f"reusing the data built at {built['built_at']} (--fresh rebuilds it)")
        manage(env, "migrate", "--noinput")  # the app's newer migrations, if any
        _django(env)
        reused = True
        age_h = (started_at - datetime.fromisoformat(built["built_at"])).total_seconds() / 3600
        if age_h > 24:
            print(f"  WARNING: built {age_h:.0f} h ago: the 24 h / 30-day windows now hold "
                  "fewer events than generated (--fresh for a like-for-like run)")  # fmt: skip
    print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in built["rows"].items()))
    print(f"  data build: {built['timings_s']['total']:.0f} s in all")
    if args.setup_only:
        return 0
    from django.db import connection

    from cdp.models import Workspace

    session_settings(args.set)
    load_before = os.getloadavg()
    print(f"load average {load_before[0]:.1f} on {os.cpu_count()} cores (others' work included)")
    workspace = Workspace.objects.get(pk=built["workspace"])
    print(
        f"each widget's compute, cold (no cache), {args.runs} runs (target ≤ {TARGET_MS:.0f} ms):"
    )
    widgets = time_widgets(workspace, args.runs)
    slow = [k for k, w in widgets.items() if w["median_ms"] > TARGET_MS]
    print(f"  over {TARGET_MS:.0f} ms: {', '.join(slow) or 'none'}; all widgets together: "
          f"{sum(w['median_ms'] for w in widgets.values()):.0f} ms (sum of medians)")  # fmt: skip
    print("the page, GET / as the owner (Django test client: server time in this process):")
    page = time_page(workspace, redis_url, args.warm, args.expired, args.cold)
    print(f"target page ≤ {TARGET_MS:.0f} ms: warm p95 {page['warm']['p95_ms']:.1f} ms -> "
          f"{'MET' if page['warm']['p95_ms'] <= TARGET_MS else 'MISSED'}; cards expired median "
          f"{page['cards_expired']['median_ms']:.0f} ms -> "
          f"{'MET' if page['cards_expired']['median_ms'] <= TARGET_MS else 'MISSED'}; "
          "cold (first visitor) "
          f"median {page['cold']['median_ms']:.0f} ms -> "
          f"{'MET' if page['cold']['median_ms'] <= TARGET_MS else 'MISSED'}")  # fmt: skip
    load_after = os.getloadavg()
    print(f"load average {load_after[0]:.1f} after the page measurements")
    plans: dict[str, Any] = {}
    if slow:
        print(f"EXPLAIN (ANALYZE, BUFFERS) of the queries ≥ {EXPLAIN_OVER_MS:.0f} ms of the "
              "widgets over the target:")  # fmt: skip
        plans = explain_slow(widgets, args.explain)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), current_setting('shared_buffers'),"
                       " current_setting('work_mem'), current_setting('jit')")  # fmt: skip
        pg = cursor.fetchone()
    report: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "command": " ".join(["bench/overview.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgres": pg[0] if pg else "?",
            "shared_buffers": pg[1] if pg else "?",
            "work_mem": pg[2] if pg else "?",
            "jit": pg[3] if pg else "?",
            "load_average_before": round(load_before[0], 2),
            "load_average_after": round(load_after[0], 2),
        },
        "database": redact(url),
        "redis": redis_url,
        "reused_data": reused,
        "session_settings": args.set,
        "data": built,
        "target_ms": TARGET_MS,
        "widgets": widgets,
        "over_target": slow,
        "page": page,
        "plans": plans,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"overview-{started_at:%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
