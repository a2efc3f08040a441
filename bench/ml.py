"""ML benchmark: churn quality on real purchases, and features + scoring at scale.

Run it with `bin/bench ml` (or `.venv/bin/python bench/ml.py --help`). It creates a fresh
database `cdp_bench_ml` (BENCH_ML_DATABASE_URL overrides) with two workspaces:

1. **CDNOW churn**: every CDNOW customer (23,570, the lifetimes wheel's purchase history,
   cdp/datasets.py) as a profile whose purchases are `Order Completed` events with their real
   amounts, shifted so the last day is yesterday. A churn model (no purchase in the 90 days
   after `as_of`) is trained by a real training run — features as of T − 180 d, evaluated on
   T − 90 d — and the figures of the model chosen, of the boosted trees, of the logistic
   baseline and of a recency-only rule are printed.
2. **Scale**: `--profiles` profiles (default 1,000,000) with `--events-per-profile` events
   each (default 10: page views, product views, orders), generated with SQL. Times one
   feature build of every profile and one scoring of every profile (features, prediction,
   scores written as computed traits), with the process's peak RSS — targets ≤ 60 s each and
   ≤ 2 GB (DESIGN.md budgets).

Figures are printed and written to bench/results/ml-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector import REPO, RESULTS_DIR, create_fresh_database, manage, redact  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_ml"
TARGET_S = 60.0
TARGET_RSS_MB = 2048


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bootstrap(env: dict[str, str], name: str) -> int:
    out = manage(env, "cdp_bootstrap", "--workspace", name)
    return int(json.loads(out[out.index("{") :])["workspace"]["id"])


# ---- CDNOW ----------------------------------------------------------------------------------

_CDNOW_PROFILES = """
INSERT INTO profiles_profile (workspace_id, created_at, updated_at, traits, trait_times,
    group_ids, first_seen, last_seen, event_count, event_counts, order_count, revenue, computed)
SELECT %(ws)s, now(), now(), jsonb_build_object('cdnow_id', c), '{}', '[]', now(), now(),
       0, '{}', 0, 0, '{}'
FROM unnest(%(customers)s::int[]) AS c
ORDER BY c
RETURNING id, (traits ->> 'cdnow_id')::int
"""


def load_cdnow(url: str, ws: int) -> dict[str, Any]:
    from profiles.demo.cdnow import load_cdnow as purchases_of_cdnow

    purchases = purchases_of_cdnow()
    last = max(p.day for p in purchases)
    shift = (datetime.now(UTC).date() - timedelta(days=1)) - last
    customers = sorted({p.customer_id for p in purchases})
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(_CDNOW_PROFILES, {"ws": ws, "customers": customers}).fetchall()
        profile_of = {customer: pid for pid, customer in rows}
        start = conn.execute("SELECT nextval(pg_get_serial_sequence('profiles_event', 'id'))")
        first_id = int(start.fetchone()[0]) + 1_000_000  # type: ignore[index]
        with conn.cursor().copy(
            "COPY profiles_profileevent (event_id, workspace_id, profile_id, origin_profile_id, "
            "timestamp, type, event, properties) FROM STDIN"
        ) as copy:
            for n, p in enumerate(purchases):
                pid = profile_of[p.customer_id]
                at = datetime.combine(p.day + shift, datetime.min.time(), UTC) + timedelta(
                    hours=12, seconds=n % 3600
                )
                props = json.dumps({"revenue": float(p.amount), "quantity": p.quantity})
                copy.write_row((first_id + n, ws, pid, pid, at, "track", "Order Completed", props))
        conn.execute("VACUUM ANALYZE profiles_profileevent")
        conn.execute("VACUUM ANALYZE profiles_profile")
    return {"customers": len(customers), "purchases": len(purchases)}


def churn_on_cdnow(ws: int) -> dict[str, Any]:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from cdp.models import Workspace
    from consent.services import purposes_install_defaults
    from segments.ml import features, jobs, services
    from segments.ml.models import ModelVersion

    workspace = Workspace.objects.get(pk=ws)
    purposes_install_defaults(workspace=workspace)
    model = services.ml_model_create(
        workspace=workspace,
        actor=None,
        data={
            "key": "churn_90d",
            "name": "Churn (90 days)",
            "kind": "churn",
            "config": {"event": "Order Completed", "horizon_days": 90, "seed": 7},
        },
    )
    from segments.ml.models import TrainingRun

    run = TrainingRun.objects.create(model=model)
    started = time.monotonic()
    status = jobs.execute(run.pk)
    seconds = time.monotonic() - started
    run.refresh_from_db()
    if status != "succeeded":
        raise SystemExit(f"the CDNOW churn run ended {status}: {run.error}\n{run.log}")
    version = ModelVersion.objects.get(run=run)
    # a rule of thumb for context: the longer since the last purchase, the likelier gone
    eval_as_of = datetime.fromisoformat(version.window["eval_as_of"])
    end = datetime.fromisoformat(version.window["end"])
    spec = features.FeatureSpec()
    current = jobs._population(
        model, features.build_features(workspace=workspace, spec=spec, as_of=eval_as_of)
    )
    came_back = features.performers(
        workspace=workspace, event="Order Completed", start=eval_as_of, end=end
    )
    churned = np.array([pid not in came_back for pid in current.profile_ids.tolist()])
    recency_auc = float(roc_auc_score(churned, current.column("order_recency_days")))
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in version.metrics.items()}
    return {
        "seconds": round(seconds, 1),
        "rows": version.rows,
        "window": version.window,
        "algorithm": version.metrics["algorithm"],
        "summary": version.metrics["summary"],
        "chosen": {k: v for k, v in rounded.items() if k not in ("boosted", "summary")},
        "boosted": {k: round(v, 4) for k, v in version.metrics["boosted"].items()},
        "baseline": {k: round(v, 4) for k, v in version.baseline_metrics.items()},
        "recency_only_roc_auc": round(recency_auc, 4),
        "top_features": [i["feature"] for i in version.charts.get("importance", [])[:5]],
        "log": run.log,
    }


# ---- scale ----------------------------------------------------------------------------------

_SCALE_PROFILES = """
INSERT INTO profiles_profile (workspace_id, created_at, updated_at, traits, trait_times,
    group_ids, first_seen, last_seen, event_count, event_counts, order_count, revenue, computed)
SELECT %(ws)s, now(), now(),
       jsonb_build_object('plan', (ARRAY['free', 'pro', 'team'])[1 + (g %% 3)],
                          'age', 18 + (g %% 60)),
       '{}', '[]', now(), now(), 0, '{}', 0, 0, '{}'
FROM generate_series(1, %(n)s) AS g
"""

# per profile `per` events over the last year: a loyal third keeps going until today, the
# rest stop at a profile-specific day; one in four events is an order, a third page views
_SCALE_EVENTS = """
INSERT INTO profiles_profileevent (event_id, workspace_id, profile_id, origin_profile_id,
    timestamp, type, event, properties)
SELECT %(first)s::bigint + (p.rn - 1) * %(per)s + k, %(ws)s, p.id, p.id,
       now() - make_interval(secs => 86400 * (
           CASE WHEN p.rn %% 3 = 0 THEN 0 ELSE (hashint4(p.id::int) & 255) END
           + ((hashint4(p.id::int * 31 + k) & 2147483647) %% 110)::float8)),
       CASE WHEN k %% 3 = 0 THEN 'page' ELSE 'track' END,
       CASE WHEN k %% 3 = 0 THEN 'Home' WHEN k %% 4 = 1 THEN 'Order Completed'
            ELSE 'Product Viewed' END,
       CASE WHEN k %% 3 = 0 THEN '{}'::jsonb
            WHEN k %% 4 = 1 THEN jsonb_build_object('revenue', 5 + (p.id + k) %% 95,
                'products', jsonb_build_array(jsonb_build_object(
                    'product_id', 'sku-' || (p.id * 7 + k) %% 5000, 'category', 'c' || k %% 12)))
            ELSE jsonb_build_object('product_id', 'sku-' || (p.id * 13 + k) %% 5000,
                                    'category', 'c' || (p.id + k) %% 12) END
FROM (SELECT id, id - %(low0)s + 1 AS rn FROM profiles_profile
      WHERE workspace_id = %(ws)s AND id BETWEEN %(low)s AND %(high)s) AS p,
     generate_series(1, %(per)s) AS k
"""


def generate_scale(url: str, ws: int, profiles: int, per: int) -> dict[str, Any]:
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_SCALE_PROFILES, {"ws": ws, "n": profiles})
        low, high = conn.execute(
            "SELECT min(id), max(id) FROM profiles_profile WHERE workspace_id = %s", [ws]
        ).fetchone()  # type: ignore[misc]
        step = 100_000
        first = 50_000_000_000
        for chunk_low in range(low, high + 1, step):
            conn.execute(
                _SCALE_EVENTS,
                {"ws": ws, "per": per, "first": first, "low": chunk_low,
                 "high": min(chunk_low + step - 1, high), "low0": low},
            )  # fmt: skip
        conn.execute("VACUUM ANALYZE profiles_profileevent")
        conn.execute("VACUUM ANALYZE profiles_profile")
        events = conn.execute(
            "SELECT count(*) FROM profiles_profileevent WHERE workspace_id = %s", [ws]
        ).fetchone()[0]  # type: ignore[index]
    return {"profiles": profiles, "events": events, "seconds": round(time.monotonic() - started)}


def scale(ws: int) -> dict[str, Any]:
    from django.utils import timezone

    from cdp.models import Workspace
    from consent.services import purposes_install_defaults
    from segments.ml import features, jobs, services
    from segments.ml.models import TrainingRun

    workspace = Workspace.objects.get(pk=ws)
    purposes_install_defaults(workspace=workspace)
    spec = features.FeatureSpec(numeric_traits=("age",), categories={"plan": ("pro", "team")})
    base_rss = rss_mb()
    started = time.monotonic()
    built = features.build_features(workspace=workspace, spec=spec, as_of=timezone.now())
    feature_s = time.monotonic() - started
    feature_rss = rss_mb()
    rows = len(built)
    del built
    model = services.ml_model_create(
        workspace=workspace,
        actor=None,
        data={
            "key": "churn_scale",
            "name": "Churn (scale)",
            "kind": "churn",
            "config": {"event": "Order Completed", "horizon_days": 30,
                       "numeric_traits": ["age"], "categories": {"plan": ["pro", "team"]}},
        },
    )  # fmt: skip
    run = TrainingRun.objects.create(model=model)
    started = time.monotonic()
    status = jobs.execute(run.pk)  # trains, saves the champion and scores everyone
    train_and_score_s = time.monotonic() - started
    run.refresh_from_db()
    if status != "succeeded":
        raise SystemExit(f"the scale run ended {status}: {run.error}\n{run.log}")
    started = time.monotonic()
    scored = jobs.score(model.pk)  # a scheduled re-scoring: features, predictions, writes
    score_s = time.monotonic() - started
    return {
        "feature_rows": rows,
        "features_s": round(feature_s, 1),
        "scoring_profiles": scored,
        "scoring_s": round(score_s, 1),
        "train_and_first_scoring_s": round(train_and_score_s, 1),
        "peak_rss_mb": round(rss_mb()),
        "rss_after_features_mb": round(feature_rss),
        "rss_before_mb": round(base_rss),
        "run_log": run.log,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events-per-profile", type=int, default=10)
    parser.add_argument("--only", choices=["cdnow", "scale"])
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_ML_DATABASE_URL", DEFAULT_DATABASE_URL)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": os.environ.get("BENCH_ML_REDIS_URL", "redis://127.0.0.1:6379/5"),
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "DEBUG": "0",
    }
    print(f"database {redact(url)}")
    create_fresh_database(url)
    manage(env, "migrate", "--noinput")
    report: dict[str, Any] = {}
    cdnow_ws = bootstrap(env, "ML bench CDNOW")
    scale_ws = bootstrap(env, "ML bench scale")
    _django(env)
    if args.only in (None, "cdnow"):
        report["cdnow_data"] = load_cdnow(url, cdnow_ws)
        print(f"CDNOW: {report['cdnow_data']} loaded; training churn (90 days) …")
        report["cdnow_churn"] = churn = churn_on_cdnow(cdnow_ws)
        print(
            f"  {churn['summary']}\n  chosen {churn['chosen']}\n  boosted {churn['boosted']}\n"
            f"  baseline {churn['baseline']}\n  recency only ROC-AUC "
            f"{churn['recency_only_roc_auc']}\n  rows {churn['rows']}, {churn['seconds']} s, "
            f"top features {churn['top_features']}"
        )
    if args.only in (None, "scale"):
        print(f"scale: generating {args.profiles:,} profiles × {args.events_per_profile} events …")
        report["scale_data"] = generate_scale(url, scale_ws, args.profiles, args.events_per_profile)
        print(f"  {report['scale_data']}")
        report["scale"] = figures = scale(scale_ws)
        print(
            f"  features of {figures['feature_rows']:,} profiles: {figures['features_s']} s; "
            f"scoring {figures['scoring_profiles']:,}: {figures['scoring_s']} s "
            f"(targets ≤ {TARGET_S:.0f} s each); training + first scoring "
            f"{figures['train_and_first_scoring_s']} s; peak RSS {figures['peak_rss_mb']} MB "
            f"(target ≤ {TARGET_RSS_MB} MB)"
        )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"ml-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
