"""Segment benchmark: preview time over a large workspace, and real-time re-evaluation cost.

Run it with `bin/bench segments` (or `.venv/bin/python bench/segments.py --help`). It creates a
fresh database `cdp_bench_segments` (BENCH_SEGMENTS_DATABASE_URL overrides), generates
`--profiles` profiles (traits plan/country/age, order counts and revenue) and `--events`
events spread over 90 days (Order Completed with revenue, Product Viewed, Signed Up) with SQL
`generate_series` — the data goes straight into the tables the pipeline writes — and then:

1. preview (count + sample of 20, as the builder calls it) for a trait rule, an event-window
   rule, and a nested rule mixing both; each timed `--repeat` times, median and max;
2. real-time: the cost of re-evaluating the profiles of one pipeline batch (1,000 events ≈ the
   profiles they touch) against 4 published segments, per event.

Figures are printed and written to bench/results/segments-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector import REPO, RESULTS_DIR, create_fresh_database, manage, redact  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_segments"
TARGET_TRAIT_S = 1.0
TARGET_EVENT_S = 3.0

RULES: dict[str, dict[str, Any]] = {
    "trait": {
        "all": [
            {"trait": "plan", "op": "eq", "value": "pro"},
            {"trait": "country", "op": "in", "value": ["DE", "FR"]},
        ]
    },
    "event_window": {
        "event": "Order Completed",
        "where": [{"property": "revenue", "op": "gte", "value": 50}],
        "count": {"op": "gte", "value": 2},
        "within": {"days": 30},
    },
    "nested": {
        "all": [
            {"trait": "plan", "op": "eq", "value": "pro"},
            {
                "any": [
                    {
                        "event": "Order Completed",
                        "count": {"op": "gte", "value": 3},
                        "within": {"days": 30},
                    },
                    {"not": {"event": "Product Viewed", "within": {"days": 7}}},
                ]
            },
            {"trait": "order_count", "op": "gte", "value": 1},
        ]
    },
}

_PROFILES = """
INSERT INTO profiles_profile (workspace_id, created_at, updated_at, traits, trait_times,
    group_ids, first_seen, last_seen, event_count, event_counts, order_count, revenue,
    computed)
SELECT %(ws)s, now(), now(),
       jsonb_build_object(
           'plan', (ARRAY['free', 'pro', 'team'])[1 + (g %% 3)],
           'country', (ARRAY['DE', 'FR', 'US', 'GB', 'IN'])[1 + (g %% 5)],
           'age', 18 + (g %% 60)),
       '{}', '[]', now() - interval '90 days', now(), 5, '{"track": 5}', g %% 7,
       (g %% 7) * 42.5, '{}'
FROM generate_series(1, %(n)s) AS g
"""

_EVENTS = """
WITH ids AS (
    SELECT min(id) AS low FROM profiles_profile WHERE workspace_id = %(ws)s
), rows AS (
    SELECT nextval(pg_get_serial_sequence('profiles_event', 'id')) AS id,
           ids.low + (hashint4(g) & 2147483647) %% %(profiles)s AS profile_id,
           (ARRAY['Order Completed', 'Product Viewed', 'Product Viewed', 'Signed Up'])
               [1 + (g %% 4)] AS name,
           now() - ((g %% 129600) * interval '1 minute') AS ts,
           (g %% 200) AS revenue
    FROM generate_series(1, %(n)s) AS g, ids
), ev AS (
    INSERT INTO profiles_event (id, workspace_id, source_id, message_id, type, event,
        "timestamp", received_at, properties, traits, context, integrations, extra)
    SELECT id, %(ws)s, NULL, 'bench-' || id, 'track', name, ts, ts,
           jsonb_build_object('revenue', revenue), '{}', '{}', '{}', '{}'
    FROM rows
)
INSERT INTO profiles_profileevent (event_id, workspace_id, profile_id, origin_profile_id,
    "timestamp", type, event, properties)
SELECT id, %(ws)s, profile_id, profile_id, ts, 'track', name,
       jsonb_build_object('revenue', revenue) FROM rows
"""


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def generate(url: str, workspace_id: int, profiles: int, events: int) -> dict[str, float]:
    timings = {}
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        conn.execute(_PROFILES, {"ws": workspace_id, "n": profiles})
        timings["profiles_s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        step = 1_000_000
        for offset in range(0, events, step):
            conn.execute(
                _EVENTS, {"ws": workspace_id, "n": min(step, events - offset), "profiles": profiles}
            )
        timings["events_s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        conn.execute("VACUUM ANALYZE profiles_profile")
        conn.execute("VACUUM ANALYZE profiles_event")
        conn.execute("VACUUM ANALYZE profiles_profileevent")
        timings["analyze_s"] = round(time.monotonic() - started, 1)
    return timings


def time_previews(workspace: Any, repeat: int) -> dict[str, Any]:
    from segments.services import segment_preview

    results = {}
    for name, rule in RULES.items():
        runs, count = [], 0
        for _ in range(repeat):
            started = time.monotonic()
            preview = segment_preview(workspace=workspace, rule=rule, sample=20)
            runs.append(time.monotonic() - started)
            count = preview.count
        results[name] = {
            "count": count,
            "median_s": round(statistics.median(runs), 3),
            "max_s": round(max(runs), 3),
        }
        print(
            f"  {name:<13} {count:>9,} members  median {results[name]['median_s']:.3f} s"
            f"  max {results[name]['max_s']:.3f} s"
        )
    return results


def time_realtime(workspace: Any, batch_profiles: int, repeat: int) -> dict[str, Any]:
    """5 published segments; re-evaluate `batch_profiles` random profiles (what one pipeline
    batch of 1,000 events touches) — the real-time stage's cost."""
    from django.db import connection, transaction

    from profiles.models import Profile
    from segments.realtime import segments_evaluate_profiles
    from segments.services import segment_create

    for name, rule in [
        *RULES.items(),
        ("pro_recent", {"trait": "plan", "op": "eq", "value": "pro"}),
    ]:
        segment_create(workspace=workspace, name=f"bench {name}", rule=rule, publish=False)
    from segments.models import Segment, SegmentStatus

    # published without the full evaluation (timed separately by the preview figures)
    for segment in Segment.objects.filter(workspace=workspace):
        segment.published_version = segment.draft_version
        segment.draft_version = None
        segment.status = SegmentStatus.PUBLISHED
        segment.save()
    ids = list(
        Profile.objects.filter(workspace=workspace)
        .order_by("?")
        .values_list("id", flat=True)[: batch_profiles * repeat]
    )
    runs = []
    for n in range(repeat):
        chunk = ids[n * batch_profiles : (n + 1) * batch_profiles]
        started = time.monotonic()
        with transaction.atomic():
            segments_evaluate_profiles(workspace_id=workspace.pk, profile_ids=chunk)
        runs.append(time.monotonic() - started)
    del connection
    median = statistics.median(runs)
    return {
        "segments": Segment.objects.filter(workspace=workspace).count(),
        "profiles_per_batch": batch_profiles,
        "median_batch_s": round(median, 3),
        "per_event_ms": round(median / 1000 * 1000, 3),  # a batch is 1,000 events
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch-profiles", type=int, default=800)
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_SEGMENTS_DATABASE_URL", DEFAULT_DATABASE_URL)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": os.environ.get("BENCH_SEGMENTS_REDIS_URL", "redis://127.0.0.1:6379/4"),
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "DEBUG": "0",
    }
    print(f"database {redact(url)}")
    create_fresh_database(url)
    manage(env, "migrate", "--noinput")
    out = manage(env, "cdp_bootstrap", "--workspace", "Segments bench")
    workspace_id = json.loads(out[out.index("{") :])["workspace"]["id"]
    print(f"generating {args.profiles:,} profiles and {args.events:,} events …")
    report: dict[str, Any] = {"profiles": args.profiles, "events": args.events}
    report["generate"] = generate(url, workspace_id, args.profiles, args.events)
    print(f"  {report['generate']}")
    _django(env)
    from cdp.models import Workspace

    workspace = Workspace.objects.get(pk=workspace_id)
    print(f"preview (targets: trait ≤ {TARGET_TRAIT_S} s, with event windows ≤ {TARGET_EVENT_S} s)")
    report["preview"] = time_previews(workspace, args.repeat)
    print("real-time re-evaluation of one batch's profiles …")
    report["realtime"] = time_realtime(workspace, args.batch_profiles, args.repeat)
    print(
        f"  {report['realtime']['segments']} segments × {args.batch_profiles} profiles: "
        f"{report['realtime']['median_batch_s']} s per 1,000-event batch "
        f"= {report['realtime']['per_event_ms']} ms per event"
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"segments-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
