"""Privacy benchmark: the time to delete one subject completely.

Run it with `bin/bench privacy` (or `.venv/bin/python bench/privacy.py --help`). It creates a
fresh database `cdp_bench_privacy` (BENCH_PRIVACY_DATABASE_URL overrides) and generates with
SQL a workspace of `--profiles` people (each with a user_id and an email identity) and
`--events` raw events with their per-profile rows, plus one subject with `--subject-events`
events, consent decisions, a dead-lettered event and a segment membership. It then times a
deletion request from approval to completion (the task runs in-process), checks that none of
the subject's rows are left and that everybody else's are, and prints the figures (also
written to bench/results/privacy-<timestamp>.json). Target: ≤ 60 s (DESIGN.md budgets).
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

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_privacy"
TARGET_S = 60.0
SUBJECT = "u-bench-subject"

_PROFILES = """
INSERT INTO profiles_profile (workspace_id, created_at, updated_at, traits, trait_times,
    group_ids, first_seen, last_seen, event_count, event_counts, order_count, revenue, computed)
SELECT %(ws)s, now(), now(),
       jsonb_build_object('plan', (ARRAY['free', 'pro', 'team'])[1 + (g %% 3)],
                          'email', 'person' || g || '@example.com', 'name', 'Person ' || g),
       '{}', '[]', now() - interval '90 days', now(), 10, '{"track": 10}', 0, 0, '{}'
FROM generate_series(1, %(n)s) AS g
"""

_IDENTITIES = """
INSERT INTO profiles_identity (workspace_id, profile_id, origin_profile_id, type, value,
    first_seen)
SELECT %(ws)s, p.id, p.id, kind, CASE kind WHEN 'user_id' THEN 'u-' || p.id
                                           ELSE 'person' || p.id || '@example.com' END, now()
FROM profiles_profile p, unnest(ARRAY['user_id', 'email']) AS kind
WHERE p.workspace_id = %(ws)s
"""

# events of everybody (profile ids spread by a hash) or of one profile (%(profile)s)
_EVENTS = """
WITH ids AS (
    SELECT min(id) AS low FROM profiles_profile WHERE workspace_id = %(ws)s
), rows AS (
    SELECT nextval(pg_get_serial_sequence('profiles_event', 'id')) AS id,
           COALESCE(%(profile)s::bigint, ids.low + (hashint4(g) & 2147483647) %% %(profiles)s)
               AS profile_id,
           (ARRAY['Order Completed', 'Product Viewed', 'Page Viewed'])[1 + (g %% 3)] AS name,
           now() - ((g %% 129600) * interval '1 minute') AS ts
    FROM generate_series(1, %(n)s) AS g, ids
), ev AS (
    INSERT INTO profiles_event (id, workspace_id, source_id, message_id, type, event,
        user_id, anonymous_id, "timestamp", received_at, properties, traits, context,
        integrations, extra)
    SELECT id, %(ws)s, NULL, 'bench-' || id, 'track', name,
           CASE WHEN %(profile)s::bigint IS NULL THEN 'u-' || profile_id ELSE %(user)s::text END,
           NULL,
           ts, ts, jsonb_build_object('revenue', id %% 200), '{}', '{}', '{}', '{}'
    FROM rows
)
INSERT INTO profiles_profileevent (event_id, workspace_id, profile_id, origin_profile_id,
    "timestamp", type, event, properties)
SELECT id, %(ws)s, profile_id, profile_id, ts, 'track', name,
       jsonb_build_object('revenue', id %% 200) FROM rows
"""

_SUBJECT = """
WITH p AS (
    INSERT INTO profiles_profile (workspace_id, created_at, updated_at, traits, trait_times,
        group_ids, first_seen, last_seen, event_count, event_counts, order_count, revenue,
        computed)
    VALUES (%(ws)s, now(), now(), jsonb_build_object('plan', 'pro', 'email', %(email)s::text,
            'name', 'Bench Subject'), '{}', '[]', now(), now(), 0, '{}', 0, 0, '{}')
    RETURNING id
)
INSERT INTO profiles_identity (workspace_id, profile_id, origin_profile_id, type, value,
    first_seen)
SELECT %(ws)s, p.id, p.id, kind, value, now()
FROM p, (VALUES ('user_id', %(user)s::text), ('email', %(email)s::text),
                ('anonymous_id', 'anon-bench-subject')) AS v(kind, value)
RETURNING profile_id
"""


def generate(url: str, ws: int, profiles: int, events: int, subject_events: int) -> dict[str, Any]:
    timings: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        conn.execute(_PROFILES, {"ws": ws, "n": profiles})
        conn.execute(_IDENTITIES, {"ws": ws})
        step = 1_000_000
        for offset in range(0, events, step):
            conn.execute(
                _EVENTS,
                {
                    "ws": ws,
                    "n": min(step, events - offset),
                    "profiles": profiles,
                    "profile": None,
                    "user": None,
                },
            )
        row = conn.execute(
            _SUBJECT, {"ws": ws, "user": SUBJECT, "email": "bench.subject@example.com"}
        ).fetchone()
        assert row is not None
        subject_profile = int(row[0])
        conn.execute(
            _EVENTS,
            {
                "ws": ws,
                "n": subject_events,
                "profiles": profiles,
                "profile": subject_profile,
                "user": SUBJECT,
            },
        )
        conn.execute(
            "INSERT INTO profiles_failedevent (workspace_id, reason, message, payload, raw,"
            " batch_context, message_id, received_at, status, replay_attempts,"
            " last_replay_error) VALUES (%s, 'invalid_timestamp', 'bad', %s, '', '{}', 'x',"
            " now(), 'failed', 0, '')",
            [ws, json.dumps({"userId": SUBJECT, "timestamp": "nope"})],
        )
        timings["generate_s"] = round(time.monotonic() - started, 1)
        for table in ("profiles_profile", "profiles_identity", "profiles_event"):
            conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute("VACUUM ANALYZE profiles_profileevent")
        timings["subject_profile"] = subject_profile
    return timings


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def counts(url: str, ws: int) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM profiles_event WHERE workspace_id = %(ws)s),"
            " (SELECT count(*) FROM profiles_event WHERE workspace_id = %(ws)s"
            "   AND user_id = %(user)s),"
            " (SELECT count(*) FROM profiles_profileevent WHERE workspace_id = %(ws)s),"
            " (SELECT count(*) FROM profiles_identity WHERE workspace_id = %(ws)s),"
            " (SELECT count(*) FROM profiles_failedevent WHERE workspace_id = %(ws)s),"
            " (SELECT count(*) FROM consent_consentrecord WHERE workspace_id = %(ws)s)",
            {"ws": ws, "user": SUBJECT},
        ).fetchone()
    assert row is not None
    return dict(
        zip(
            ["events", "subject_events", "profile_events", "identities", "failed", "consent"],
            row,
            strict=True,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--subject-events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_PRIVACY_DATABASE_URL", DEFAULT_DATABASE_URL)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": os.environ.get("BENCH_PRIVACY_REDIS_URL", "redis://127.0.0.1:6379/5"),
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "CELERY_TASK_ALWAYS_EAGER": "1",  # approval runs the deletion in this process
        "DEBUG": "0",
    }
    print(f"database {redact(url)}")
    runs = []
    report: dict[str, Any] = {
        "profiles": args.profiles,
        "events": args.events,
        "subject_events": args.subject_events,
    }
    for run in range(args.repeat):
        create_fresh_database(url)
        manage(env, "migrate", "--noinput")
        out = manage(env, "cdp_bootstrap", "--workspace", "Privacy bench")
        ws = json.loads(out[out.index("{") :])["workspace"]["id"]
        print(
            f"run {run + 1}/{args.repeat}: {args.profiles:,} profiles, {args.events:,} events, "
            f"subject with {args.subject_events:,} …"
        )
        generated = generate(url, ws, args.profiles, args.events, args.subject_events)
        before = counts(url, ws)
        runs.append(delete_subject(env, ws, generated["subject_profile"], before, url))
        print(
            f"  deleted in {runs[-1]['seconds']} s: {runs[-1]['counts']}; "
            f"others untouched: {runs[-1]['others_untouched']}"
        )
    report["runs"] = runs
    report["median_s"] = statistics.median(r["seconds"] for r in runs)
    report["max_s"] = max(r["seconds"] for r in runs)
    print(
        f"delete one subject ({args.subject_events:,} events in a "
        f"{args.events + args.subject_events:,}-event workspace): median {report['median_s']} s, "
        f"max {report['max_s']} s (target ≤ {TARGET_S:.0f} s)"
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"privacy-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"written to {path}")
    return 0


def delete_subject(
    env: dict[str, str], ws: int, subject_profile: int, before: dict[str, int], url: str
) -> dict[str, Any]:
    _django(env)
    from django.db import connections

    from cdp.models import Workspace
    from consent import privacy
    from consent.services import consent_record, purposes_install_defaults
    from segments.services import segment_create

    connections.close_all()  # each run has a new database of the same name
    workspace = Workspace.objects.get(pk=ws)
    segment_create(
        workspace=workspace,
        name="Pro",
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        publish=True,
    )
    purposes_install_defaults(workspace=workspace)
    for purpose, status in (
        ("analytics", "granted"),
        ("marketing_email", "granted"),
        ("marketing_email", "withdrawn"),
        ("advertising", "denied"),
    ):
        consent_record(
            workspace=workspace,
            profile_id=subject_profile,
            purpose=purpose,
            status=status,
            message_id=f"bench-consent-{purpose}",
            ip="203.0.113.9",
        )
    request = privacy.privacy_request_create(
        workspace=workspace, type="delete", identifier=f"user_id:{SUBJECT}"
    )
    started = time.monotonic()
    privacy.privacy_request_approve(request=request)  # runs the task on commit (eager)
    seconds = round(time.monotonic() - started, 2)
    request.refresh_from_db()
    assert request.status == "completed", (request.status, request.error)
    after = counts(url, ws)
    others = after["events"] == before["events"] - before["subject_events"]
    assert after["subject_events"] == 0 and others, (before, after)
    assert after["consent"] == 0, after  # the subject's were the only decisions
    connections.close_all()
    return {
        "seconds": seconds,
        "counts": request.receipt["counts"],
        "others_untouched": others
        and after["identities"] == before["identities"] - 3
        and after["failed"] == before["failed"] - 1,
        "consent_left": after["consent"],
    }


if __name__ == "__main__":
    raise SystemExit(main())
