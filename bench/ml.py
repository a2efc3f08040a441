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

   Beside it, the **BG/NBD** model (lifetimes' BetaGeoFitter, installed for the benchmark
   only) on the same split: fitted on every purchase up to T − 90 d, its probability of no
   purchase in the next 90 days graded against the same labels (target: our ROC-AUC ≥
   BG/NBD's + 0.05).
3. **Recommendations on MovieLens-100k**: the 100,000 ratings as `Product Viewed` events of
   943 profiles; a recommendation model trained by a real run (popularity, item-kNN and EASE
   on the same random 80/20 split: P@10, NDCG@10, recall@20, coverage; published: popularity
   0.19/0.21, item-kNN 0.33/0.39, EASE 0.37/0.44 — target NDCG@10 ≥ 0.44), then the
   fold-in latency of `recommendations_for` (the profile API's and decision API's call:
   newest events read, scores, top 10; target p99 < 20 ms) over 2,000 requests.
4. **Clusters at scale**: a clusters model trained on the scale workspace's 1M profiles
   (k chosen by silhouette on a 10k sample, MiniBatchKMeans) and a re-scoring: time, k,
   silhouette.

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


_PURCHASE_HISTORY = """
SELECT profile_id,
       count(DISTINCT date_trunc('day', timestamp)) - 1 AS frequency,
       extract(epoch FROM max(date_trunc('day', timestamp)) - min(date_trunc('day', timestamp)))
           / 86400 AS recency,
       extract(epoch FROM %(as_of)s - min(date_trunc('day', timestamp))) / 86400 AS age
FROM profiles_profileevent
WHERE workspace_id = %(ws)s AND type = 'track' AND event = 'Order Completed'
  AND timestamp <= %(as_of)s
GROUP BY profile_id
ORDER BY profile_id
"""


def bgnbd_on_cdnow(url: str, ws: int, churn: dict[str, Any]) -> dict[str, Any]:
    """BG/NBD (Fader, Hardie & Lee 2005, lifetimes' BetaGeoFitter) on the churn model's
    evaluation split: fitted on the purchase days up to T − 90 d, P(no purchase in the next
    90 days) graded on who did not come back."""
    import numpy as np
    from lifetimes import BetaGeoFitter
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    from cdp.models import Workspace
    from segments.ml import features

    eval_as_of = datetime.fromisoformat(churn["window"]["eval_as_of"])
    end = datetime.fromisoformat(churn["window"]["end"])
    days = int(churn["window"]["horizon_days"])
    with psycopg.connect(url) as conn:
        rows = conn.execute(_PURCHASE_HISTORY, {"ws": ws, "as_of": eval_as_of}).fetchall()
    ids = np.array([r[0] for r in rows])
    f, r, t = (np.array([float(row[i]) for row in rows]) for i in (1, 2, 3))
    started = time.monotonic()
    bgf = BetaGeoFitter(penalizer_coef=0.0).fit(f, r, t)
    # P(no purchase in the next `days`) = P(dropped out) + P(alive) · E[e^(−λ·days)], λ's
    # posterior being Gamma(r + x, α + T) (while alive, a customer drops out only right after
    # a purchase, so none happens in a window without purchases)
    alive = bgf.conditional_probability_alive(f, r, t)
    rate, alpha = float(bgf.params_["r"]), float(bgf.params_["alpha"])
    p_none = (1 - alive) + alive * ((alpha + t) / (alpha + t + days)) ** (rate + f)
    seconds = time.monotonic() - started
    came_back = features.performers(
        workspace=Workspace.objects.get(pk=ws), event="Order Completed", start=eval_as_of, end=end
    )
    churned = np.array([pid not in came_back for pid in ids.tolist()])
    p = np.clip(np.asarray(p_none, dtype=float), 0, 1)
    return {
        "customers": len(ids),
        "roc_auc": round(float(roc_auc_score(churned, p)), 4),
        "pr_auc": round(float(average_precision_score(churned, p)), 4),
        "brier": round(float(brier_score_loss(churned, p)), 4),
        "base_rate": round(float(churned.mean()), 4),
        "params": {k: round(float(v), 4) for k, v in bgf.params_.items()},
        "seconds": round(seconds, 1),
    }


# ---- recommendations ------------------------------------------------------------------------

PUBLISHED_ML100K = {"popularity": (0.19, 0.21), "item-kNN": (0.33, 0.39), "EASE": (0.37, 0.44)}
FOLD_IN_REQUESTS = 2_000
TARGET_FOLD_IN_P99_MS = 20.0
TARGET_NDCG = 0.44


def load_movielens(url: str, ws: int) -> dict[str, Any]:
    from profiles.demo.movielens import load_movielens as ratings_and_films
    from profiles.demo.movielens import product_id_of

    ratings, films = ratings_and_films()
    shift = (datetime.now(UTC).date() - timedelta(days=1)) - max(r.at for r in ratings).date()
    users = sorted({r.user for r in ratings})
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(_CDNOW_PROFILES, {"ws": ws, "customers": users}).fetchall()
        profile_of = {user: pid for pid, user in rows}
        first_id = 90_000_000_000
        with conn.cursor().copy(
            "COPY profiles_profileevent (event_id, workspace_id, profile_id, origin_profile_id, "
            "timestamp, type, event, properties) FROM STDIN"
        ) as copy:
            for n, rating in enumerate(ratings):
                pid = profile_of[rating.user]
                film = films.get(rating.item)
                props = json.dumps({
                    "product_id": product_id_of(rating.item),
                    "name": film.title if film else "",
                    "category": film.genres[0] if film and film.genres else "",
                })  # fmt: skip
                copy.write_row((first_id + n, ws, pid, pid, rating.at + shift, "track",
                                "Product Viewed", props))  # fmt: skip
        conn.execute("VACUUM ANALYZE profiles_profileevent")
        conn.execute("VACUUM ANALYZE profiles_profile")
    return {"people": len(users), "interactions": len(ratings), "films": len(films)}


def recommendations_on_movielens(ws: int) -> dict[str, Any]:
    import random
    import statistics

    from cdp.models import Workspace
    from consent.services import purposes_install_defaults
    from profiles.models import Profile
    from segments.ml import jobs, services, serving
    from segments.ml.models import ModelVersion, TrainingRun

    workspace = Workspace.objects.get(pk=ws)
    purposes_install_defaults(workspace=workspace)
    # the benchmark's people have all allowed personalisation (the workspace's setting points
    # the rule at a purpose granted by default)
    workspace.settings = {**(workspace.settings or {}), "personalization_purpose": "analytics"}
    workspace.save(update_fields=["settings"])
    model = services.ml_model_create(
        workspace=workspace, actor=None,
        data={"key": "next_films", "name": "Next films", "kind": "recommendations",
              "config": {"seed": 42, "exclude": "interacted"}},
    )  # fmt: skip
    run = TrainingRun.objects.create(model=model)
    started = time.monotonic()
    status = jobs.execute(run.pk)
    seconds = time.monotonic() - started
    run.refresh_from_db()
    if status != "succeeded":
        raise SystemExit(f"the recommendations run ended {status}: {run.error}\n{run.log}")
    version = ModelVersion.objects.get(run=run)
    graded = {
        name: {k: round(float(v), 4) for k, v in metrics.items()}
        for name, metrics in version.charts["algorithms"].items()
    }
    people = list(Profile.objects.filter(workspace=workspace).values_list("pk", flat=True))
    rng = random.Random(7)
    serving.recommendations_for(workspace_id=ws, profile_id=people[0])  # loads the artefact
    times = []
    for _ in range(FOLD_IN_REQUESTS):
        pid = rng.choice(people)
        began = time.perf_counter()
        answer = serving.recommendations_for(workspace_id=ws, profile_id=pid, n=10)
        times.append((time.perf_counter() - began) * 1000)
        assert len(answer.items) == 10
    times.sort()
    return {
        "seconds": round(seconds, 1),
        "algorithm": version.metrics["algorithm"],
        "settings": version.charts.get("settings"),
        "summary": version.metrics["summary"],
        "graded": graded,
        "published_p10_ndcg10": PUBLISHED_ML100K,
        "fold_in_ms": {
            "requests": len(times),
            "p50": round(statistics.median(times), 2),
            "p99": round(times[int(len(times) * 0.99) - 1], 2),
            "max": round(times[-1], 2),
        },
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
    from segments.ml.models import ModelVersion, TrainingRun

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
    clusters = services.ml_model_create(
        workspace=workspace, actor=None,
        data={"key": "kinds", "name": "Customer kinds", "kind": "clusters", "config": {"seed": 7}},
    )  # fmt: skip
    cluster_run = TrainingRun.objects.create(model=clusters)
    started = time.monotonic()
    status = jobs.execute(cluster_run.pk)  # features, k, fit, grade, save, label everyone
    cluster_s = time.monotonic() - started
    cluster_run.refresh_from_db()
    if status != "succeeded":
        raise SystemExit(f"the clusters run ended {status}: {cluster_run.error}")
    version = ModelVersion.objects.get(run=cluster_run)
    started = time.monotonic()
    labelled = jobs.score(clusters.pk)
    cluster_score_s = time.monotonic() - started
    return {
        "clusters": {
            "profiles": version.rows["train"] + version.rows["eval"],
            "train_and_label_s": round(cluster_s, 1),
            "relabel_s": round(cluster_score_s, 1),
            "relabelled": labelled,
            "k": version.metrics["k"],
            "silhouette": round(version.metrics["silhouette"], 4),
            "random_labels_silhouette": round(version.baseline_metrics["silhouette"], 4),
            "algorithm": version.metrics["algorithm"],
            "log": cluster_run.log,
        },
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
    parser.add_argument("--only", choices=["cdnow", "recs", "scale"])
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
    recs_ws = bootstrap(env, "ML bench ml-100k")
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
        report["cdnow_bgnbd"] = bg = bgnbd_on_cdnow(url, cdnow_ws, churn)
        gain = churn["chosen"]["roc_auc"] - bg["roc_auc"]
        print(
            f"  BG/NBD on the same split: ROC-AUC {bg['roc_auc']}, PR-AUC {bg['pr_auc']}, "
            f"Brier {bg['brier']} ({bg['customers']:,} customers); ours {gain:+.4f} ROC-AUC "
            f"(target ≥ +0.05: {'met' if gain >= 0.05 else 'NOT met'})"
        )
    if args.only in (None, "recs"):
        report["movielens_data"] = load_movielens(url, recs_ws)
        print(f"MovieLens-100k: {report['movielens_data']} loaded; training recommendations …")
        report["recommendations"] = recs = recommendations_on_movielens(recs_ws)
        print(f"  {recs['summary']} ({recs['seconds']} s; settings {recs['settings']})")
        for name, g in recs["graded"].items():
            published = PUBLISHED_ML100K.get(name)
            print(
                f"  {name:10s} P@10 {g['precision_at_10']:.3f} NDCG@10 {g['ndcg_at_10']:.3f} "
                f"recall@20 {g['recall_at_20']:.3f} coverage {g['coverage']:.3f}"
                + (f" (published {published[0]:.2f}/{published[1]:.2f})" if published else "")
            )
        best = recs["graded"][recs["algorithm"]]["ndcg_at_10"]
        fold = recs["fold_in_ms"]
        print(
            f"  champion NDCG@10 {best:.3f} (target ≥ {TARGET_NDCG}: "
            f"{'met' if best >= TARGET_NDCG else 'NOT met'}); fold-in over {fold['requests']:,} "
            f"requests: p50 {fold['p50']} ms, p99 {fold['p99']} ms, max {fold['max']} ms "
            f"(target p99 < {TARGET_FOLD_IN_P99_MS:.0f} ms)"
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
        c = figures["clusters"]
        print(
            f"  clusters of {c['profiles']:,} profiles: trained and labelled in "
            f"{c['train_and_label_s']} s (re-label {c['relabel_s']} s), k = {c['k']} "
            f"({c['algorithm']}), silhouette {c['silhouette']} vs {c['random_labels_silhouette']} "
            "for random labels"
        )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"ml-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
