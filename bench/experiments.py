"""Experiments benchmark: the statistics' promises at scale, and the analysis of a big
experiment.

Run it with `bin/bench experiments` (or `.venv/bin/python bench/experiments.py --help`).

1. **Simulations** (seeded, numpy; no database):
   - `--aa` A/A experiments (default 1,000), each read every day for 30 days (500 units per
     arm per day): the share that ever looked significant, naively (Welch at every look) and
     with the sequential test (target ≤ 5 %);
   - 5,000 experiments with a true 5 % relative lift at the sample size the calculator
     plans: the share detected (target ≥ 80 %);
   - SRM: 51/49 over 200k units (flagged?) and 1,000 fair 50/50 splits (false alarms);
   - CUPED with a pre/post correlation of 0.5: the variance removed (≈ 25 % expected).
2. **Analysis at scale**: a fresh database `cdp_bench_experiments` (BENCH_EXPERIMENTS_DATABASE_URL
   overrides) with `--units` exposed profiles (default 1,000,000) and ~2 orders each around
   their exposure, generated with SQL; times one full analysis (three metrics: conversion,
   revenue sum winsorised, count) — target ≤ 5 s.

Figures are printed and written to bench/results/experiments-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector import REPO, RESULTS_DIR, create_fresh_database, manage, redact  # noqa: E402

sys.path.insert(0, str(REPO))
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_experiments"


def aa_peeking(experiments: int, days: int, per_day: int, seed: int) -> dict[str, float]:
    """Cumulative sums per day make each look O(1): the whole run is vectorised."""
    from activation.experiments import stats

    rng = np.random.default_rng(seed)
    naive = sequential = 0
    for _ in range(experiments):
        a = rng.normal(0, 1, size=(days, per_day))
        b = rng.normal(0, 1, size=(days, per_day))
        seen_naive = seen_seq = False
        for day in range(1, days + 1):
            xa, xb = a[:day].ravel(), b[:day].ravel()
            ma, mb = stats.Moments.of(xa), stats.Moments.of(xb)
            seen_naive = seen_naive or stats.welch(ma, mb).p_value < 0.05
            seen_seq = seen_seq or stats.sequential(ma, mb, tuning=days * per_day).p_value < 0.05
        naive += seen_naive
        sequential += seen_seq
    return {"naive": naive / experiments, "sequential": sequential / experiments}


def power_check(experiments: int, seed: int) -> dict[str, Any]:
    from activation.experiments import stats

    plan = stats.sample_size_proportion(0.10, 0.05)
    rng = np.random.default_rng(seed)
    found = 0
    for _ in range(experiments):
        ca = int(rng.binomial(plan.per_variant, 0.10))
        cb = int(rng.binomial(plan.per_variant, 0.105))
        found += stats.proportions(ca, plan.per_variant, cb, plan.per_variant).p_value < 0.05
    return {"per_variant": plan.per_variant, "detected": found / experiments}


def srm_check(seed: int) -> dict[str, Any]:
    from activation.experiments import stats

    rng = np.random.default_rng(seed)
    fair = [int(rng.binomial(200_000, 0.5)) for _ in range(1_000)]
    return {
        "51_49_flagged": stats.srm([102_000, 98_000], [1, 1]).flagged,
        "51_49_p": stats.srm([102_000, 98_000], [1, 1]).p_value,
        "fair_false_alarms": sum(stats.srm([f, 200_000 - f], [1, 1]).flagged for f in fair),
    }


def cuped_check(seed: int) -> dict[str, float]:
    from activation.experiments import stats

    rng = np.random.default_rng(seed)
    n = 200_000
    pre = rng.normal(10, 2, size=2 * n)
    post = 10 + 0.5 * (pre - 10) + rng.normal(0, math.sqrt(4 * 0.75), size=2 * n)
    result = stats.cuped([stats.PrePost.of(post[:n], pre[:n]), stats.PrePost.of(post[n:], pre[n:])])
    return {"correlation": float(np.corrcoef(pre, post)[0, 1]),
            "variance_reduction": result.variance_reduction}  # fmt: skip


_UNITS = """
INSERT INTO profiles_profile (workspace_id, created_at, updated_at, traits, trait_times,
    group_ids, first_seen, last_seen, event_count, event_counts, order_count, revenue, computed)
SELECT %(ws)s, now(), now(), '{}', '{}', '[]', now(), now(), 0, '{}', 0, 0, '{}'
FROM generate_series(1, %(n)s)
"""
_EXPOSURES = """
INSERT INTO activation_exposure (experiment_id, workspace_id, profile_id, variant, exposed_at)
SELECT %(exp)s, %(ws)s, id, CASE WHEN hashint4(id::int) & 1 = 0 THEN 'control' ELSE 'treatment' END,
       now() - interval '20 days' + make_interval(secs => (hashint4(id::int * 7) & 1048575))
FROM profiles_profile WHERE workspace_id = %(ws)s
"""
# about two orders a unit, before and after its exposure, the treatment a little more often
_EVENTS = """
INSERT INTO profiles_profileevent (event_id, workspace_id, profile_id, origin_profile_id,
    timestamp, type, event, properties)
SELECT 70000000000 + row_number() OVER (), %(ws)s, x.profile_id, x.profile_id,
       x.exposed_at + make_interval(days => k - 10), 'track', 'Order Completed',
       jsonb_build_object('revenue', 10 + (hashint4(x.profile_id::int + k) & 127))
FROM activation_exposure x, generate_series(1, 20) AS k
WHERE x.experiment_id = %(exp)s
  AND (hashint4(x.profile_id::int * 31 + k) & 1023) <
      CASE WHEN x.variant = 'treatment' AND k > 10 THEN 108 ELSE 100 END
"""


def analysis_at_scale(url: str, env: dict[str, str], units: int) -> dict[str, Any]:
    create_fresh_database(url)
    manage(env, "migrate", "--noinput")
    out = manage(env, "cdp_bootstrap", "--workspace", "Experiments bench")
    ws = int(json.loads(out[out.index("{") :])["workspace"]["id"])
    os.environ.update(env)
    import django

    django.setup()
    from activation.experiments import analysis, services
    from cdp.models import Workspace

    workspace = Workspace.objects.get(pk=ws)
    for data in (
        {"key": "purchase", "name": "Purchase", "kind": "conversion", "event": "Order Completed",
         "window_days": 10},
        {"key": "revenue", "name": "Revenue", "kind": "sum", "event": "Order Completed",
         "property": "revenue", "window_days": 10, "winsorize_percentile": 99},
        {"key": "orders", "name": "Orders", "kind": "count", "event": "Order Completed",
         "window_days": 10},
    ):  # fmt: skip
        services.metric_create(workspace=workspace, actor=None, data=data)
    experiment = services.experiment_create(
        workspace=workspace, actor=None,
        data={"key": "big", "name": "Big", "primary_metric": "purchase",
              "secondary_metrics": ["revenue"], "guardrail_metrics": ["orders"],
              "variants": [{"key": "control"}, {"key": "treatment"}]},
    )  # fmt: skip
    experiment = services.experiment_start(experiment=experiment, actor=None)
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_UNITS, {"ws": ws, "n": units})
        conn.execute(_EXPOSURES, {"ws": ws, "exp": experiment.pk})
        conn.execute(_EVENTS, {"ws": ws, "exp": experiment.pk})
        conn.execute("VACUUM ANALYZE")
        events = conn.execute("SELECT count(*) FROM profiles_profileevent").fetchone()[0]  # type: ignore[index]
    generated = time.monotonic() - started
    experiment.refresh_from_db()
    timings = []
    for _ in range(3):
        began = time.monotonic()
        results = analysis.analyse(experiment)
        timings.append(time.monotonic() - began)
    primary = results["metrics"][0]["comparisons"][0]
    return {
        "units": units, "events": events, "generated_s": round(generated, 1),
        "analysis_s": [round(t, 2) for t in timings], "median_s": round(sorted(timings)[1], 2),
        "primary_lift": primary["relative"], "primary_p": primary["p_value_adjusted"],
        "srm": results["srm"]["flagged"],
        "cuped_reduction": results["metrics"][0]["cuped"]["variance_reduction"]
        if results["metrics"][0]["cuped"] else None,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aa", type=int, default=1_000, help="A/A experiments simulated")
    parser.add_argument("--units", type=int, default=1_000_000, help="exposed units analysed")
    parser.add_argument("--only", choices=["simulations", "analysis"])
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    report: dict[str, Any] = {}
    if args.only in (None, "simulations"):
        started = time.monotonic()
        report["aa"] = aa = aa_peeking(args.aa, days=30, per_day=500, seed=1)
        print(f"{args.aa:,} A/A experiments read daily for 30 days: naive false positives "
              f"{aa['naive']:.1%}, sequential {aa['sequential']:.1%} (target ≤ 5 %) "
              f"[{time.monotonic() - started:.0f} s]")  # fmt: skip
        report["power"] = p = power_check(5_000, seed=2)
        print(f"a true +5 % on a 10 % rate at the planned {p['per_variant']:,} per variant: "
              f"detected {p['detected']:.1%} (target ≥ 80 %)")  # fmt: skip
        report["srm"] = s = srm_check(seed=3)
        print(f"SRM: 51/49 over 200k flagged {s['51_49_flagged']} (p = {s['51_49_p']:.1e}); "
              f"fair splits flagged {s['fair_false_alarms']} of 1,000")  # fmt: skip
        report["cuped"] = c = cuped_check(seed=4)
        print(f"CUPED at correlation {c['correlation']:.3f}: variance removed "
              f"{c['variance_reduction']:.1%} (≈ 25 % expected)")  # fmt: skip
    if args.only in (None, "analysis"):
        url = os.environ.get("BENCH_EXPERIMENTS_DATABASE_URL", DEFAULT_DATABASE_URL)
        env = {**os.environ, "DATABASE_URL": url, "DEBUG": "0",
               "REDIS_URL": os.environ.get("BENCH_EXPERIMENTS_REDIS_URL", "redis://127.0.0.1:6379/5"),
               "DJANGO_SETTINGS_MODULE": "cdp.settings"}  # fmt: skip
        print(f"database {redact(url)}; generating {args.units:,} exposed units …")
        report["analysis"] = a = analysis_at_scale(url, env, args.units)
        print(f"analysis of {a['units']:,} exposed units / {a['events']:,} events, three metrics: "
              f"median {a['median_s']} s of {a['analysis_s']} (target ≤ 5 s); primary lift "
              f"{a['primary_lift']:+.2%}, p {a['primary_p']:.2g}, CUPED removes "
              f"{a['cuped_reduction'] or 0:.1%}")  # fmt: skip
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"experiments-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
