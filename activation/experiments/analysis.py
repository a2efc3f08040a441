# ruff: noqa: S608 - SQL from constants and placeholders only
"""An experiment's results: per metric and variant, the exposed units' values from their
first exposure on (and the same window before it, for CUPED), read in one set-based query
per metric; then stats.py compares each treatment with the control.

Only exposed units count, each from its exposure: a unit's metric is what it did in
(exposed_at, exposed_at + window]; its pre-exposure value the same window before. Sum and
count metrics may be winsorised at a percentile of all units. p-values are Holm-adjusted
across every metric and treatment; SRM compares the units per variant with the weights."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from activation.experiments import stats
from activation.experiments.models import Experiment, Metric, MetricKind
from cdp.paths import split_path
from profiles.coercion import numeric_sql

WORK_MEM = "256MB"


def _values_sql(metric: Metric, params: dict[str, Any]) -> str:
    def bind(value: object) -> str:
        name = f"b{len(params)}"
        params[name] = value
        return f"%({name})s"

    if metric.kind == MetricKind.SUM:
        path = "{" + ",".join(split_path(metric.property)) + "}"
        value = f"COALESCE(({numeric_sql(f'(pe.properties #> {bind(path)})', bind)})::float8, 0)"
    else:
        value = "1.0::float8"
    return f"""
WITH u AS (
    SELECT profile_id, variant, exposed_at FROM activation_exposure
    WHERE experiment_id = %(experiment)s AND exposed_at <= %(now)s
), ev AS (
    SELECT pe.profile_id, pe.timestamp, {value} AS v
    FROM profiles_profileevent pe
    WHERE pe.workspace_id = %(ws)s AND pe.type = 'track' AND pe.event = %(event)s
      AND pe.timestamp > %(since)s AND pe.timestamp <= %(now)s
)
SELECT u.variant,
       COALESCE(sum(ev.v) FILTER (WHERE ev.timestamp > u.exposed_at
                                    AND ev.timestamp <= u.exposed_at + %(window)s), 0) AS y,
       COALESCE(sum(ev.v) FILTER (WHERE ev.timestamp > u.exposed_at - %(window)s
                                    AND ev.timestamp <= u.exposed_at), 0) AS x
FROM u LEFT JOIN ev ON ev.profile_id = u.profile_id
GROUP BY u.profile_id, u.variant
"""


def unit_values(
    experiment: Experiment, metric: Metric, now: datetime
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """variant -> (post-exposure values, pre-exposure values), one per exposed unit."""
    window = timedelta(days=metric.window_days)
    started = experiment.started_at or experiment.created_at
    params: dict[str, Any] = {
        "experiment": experiment.pk,
        "ws": experiment.workspace_id,
        "event": metric.event,
        "now": now,
        "since": started - window,
        "window": window,
    }
    sql = _values_sql(metric, params)
    by_variant: dict[str, tuple[list[float], list[float]]] = {
        key: ([], []) for key in experiment.variant_keys
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = %s", [WORK_MEM])
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute(sql, params)
        for variant, y, x in cursor.fetchall():
            if variant in by_variant:
                by_variant[variant][0].append(float(y))
                by_variant[variant][1].append(float(x))
    out = {}
    for variant, (ys, xs) in by_variant.items():
        y, x = np.array(ys, dtype=np.float64), np.array(xs, dtype=np.float64)
        if metric.kind == MetricKind.CONVERSION:
            y, x = (y > 0).astype(np.float64), (x > 0).astype(np.float64)
        out[variant] = (y, x)
    if metric.winsorize_percentile and metric.kind != MetricKind.CONVERSION:
        everyone = np.concatenate([y for y, _ in out.values()]) if out else np.empty(0)
        if len(everyone):
            cap = float(np.percentile(everyone, metric.winsorize_percentile))
            out = {k: (np.minimum(y, cap), np.minimum(x, cap)) for k, (y, x) in out.items()}
    return out


def _lift(lift: stats.Lift) -> dict[str, Any]:
    out = asdict(lift)
    out["significant"] = lift.significant
    return out


def analyse_metric(experiment: Experiment, metric: Metric, now: datetime) -> dict[str, Any]:
    values = unit_values(experiment, metric, now)
    control_key = experiment.variant_keys[0]
    variants = [
        {"variant": key, "n": len(y), "mean": float(y.mean()) if len(y) else None,
         "pre_mean": float(x.mean()) if len(x) else None}
        for key, (y, x) in values.items()
    ]  # fmt: skip
    result: dict[str, Any] = {
        "metric": metric.key, "name": metric.name, "kind": metric.kind,
        "higher_is_better": metric.higher_is_better, "variants": variants, "comparisons": [],
        "cuped": None, "error": None,
    }  # fmt: skip
    try:
        if any(len(y) < 2 for y, _ in values.values()):
            raise stats.NotEnoughData("each variant needs at least 2 units")
        moments = {k: stats.Moments.of(y) for k, (y, _) in values.items()}
        if experiment.cuped:
            adjusted = stats.cuped([stats.PrePost.of(y, x) for y, x in values.values()])
            if adjusted.variance_reduction > 0:
                moments = dict(zip(values, adjusted.adjusted, strict=True))
                result["cuped"] = {"theta": adjusted.theta,
                                   "variance_reduction": adjusted.variance_reduction}  # fmt: skip
        for key in experiment.variant_keys[1:]:
            control, treatment = moments[control_key], moments[key]
            if experiment.sequential:
                lift = stats.sequential(control, treatment, alpha=experiment.alpha)
            elif metric.kind == MetricKind.CONVERSION and not result["cuped"]:
                yc, yt = values[control_key][0], values[key][0]
                lift = stats.proportions(int(yc.sum()), len(yc), int(yt.sum()), len(yt),
                                         alpha=experiment.alpha)  # fmt: skip
            else:
                lift = stats.welch(control, treatment, alpha=experiment.alpha)
            result["comparisons"].append({"variant": key, **_lift(lift)})
    except stats.NotEnoughData as exc:
        result["error"] = str(exc)
    return result


def analyse(experiment: Experiment, *, now: datetime | None = None) -> dict[str, Any]:
    """Every metric of the experiment, SRM, Holm-adjusted p-values and guardrail flags."""
    now = now or timezone.now()
    roles = [("primary", experiment.primary_metric)]
    roles += [("secondary", m) for m in experiment.secondary_metrics.order_by("key")]
    roles += [("guardrail", m) for m in experiment.guardrail_metrics.order_by("key")]
    metrics = []
    for role, chosen in roles:
        metrics.append({"role": role, **analyse_metric(experiment, chosen, now)})
    # Holm across every metric and treatment
    found = [(m, c) for m in metrics for c in m["comparisons"]]
    adjusted = stats.holm([c["p_value"] for _, c in found], alpha=experiment.alpha)
    for (_, comparison), p in zip(found, adjusted, strict=True):
        comparison["p_value_adjusted"] = p
        comparison["significant_adjusted"] = p < experiment.alpha
    units = [v["n"] for v in metrics[0]["variants"]] if metrics else []
    srm = stats.srm(units, experiment.weights) if units else None
    guardrails = []
    for result in metrics:
        if result["role"] != "guardrail":
            continue
        for c in result["comparisons"]:
            worse = c["absolute"] < 0 if result["higher_is_better"] else c["absolute"] > 0
            if worse and c["significant_adjusted"]:
                guardrails.append({"metric": result["metric"], "variant": c["variant"]})
    return {
        "experiment": experiment.key,
        "at": now.isoformat(),
        "units": dict(zip(experiment.variant_keys, units, strict=False)),
        "srm": asdict(srm) if srm else None,
        "metrics": metrics,
        "guardrails_failed": guardrails,
        "can_ship": bool(srm is None or not srm.flagged),
        "method": "sequential (always valid)" if experiment.sequential else "fixed horizon",
    }


def record_history(experiment: Experiment, results: dict[str, Any]) -> None:
    """Keep the primary metric's lift at each analysis: the results page draws it over time."""
    primary = results["metrics"][0] if results["metrics"] else None
    point = {
        "at": results["at"],
        "units": results["units"],
        "lifts": {
            c["variant"]: {"relative": c["relative"], "relative_ci": c["relative_ci"],
                           "absolute": c["absolute"], "absolute_ci": c["absolute_ci"]}
            for c in (primary or {}).get("comparisons", [])
        },
    }  # fmt: skip
    Experiment.objects.filter(pk=experiment.pk).update(history=[*experiment.history, point][-365:])


def power_plan(experiment: Experiment, mde_relative: float, *, now: datetime | None = None
               ) -> dict[str, Any]:  # fmt: skip
    """Units per variant to detect a relative change `mde_relative` of the primary metric
    (its control's rate or mean and spread so far), and the days that takes at the
    exposures per day seen so far."""
    now = now or timezone.now()
    metric = experiment.primary_metric
    values = unit_values(experiment, metric, now)
    control = values.get(experiment.variant_keys[0], (np.empty(0), np.empty(0)))[0]
    exposed = sum(len(y) for y, _ in values.values())
    started = experiment.started_at or experiment.created_at
    days = max((now - started).total_seconds() / 86400, 1 / 24)
    daily = exposed / days if exposed else None
    variants = len(experiment.variants)
    if len(control) < 2:
        raise stats.NotEnoughData("the control needs exposed units before planning")
    if metric.kind == MetricKind.CONVERSION:
        plan = stats.sample_size_proportion(float(control.mean()), mde_relative,
                                            variants=variants, alpha=experiment.alpha,
                                            daily_units=daily)  # fmt: skip
    else:
        plan = stats.sample_size_mean(float(control.mean()), float(control.std(ddof=1)),
                                      mde_relative, variants=variants, alpha=experiment.alpha,
                                      daily_units=daily)  # fmt: skip
    return {
        "metric": metric.key, "mde_relative": mde_relative, "baseline": float(control.mean()),
        "per_variant": plan.per_variant, "total": plan.total, "exposed": exposed,
        "daily_units": round(daily, 1) if daily else None, "days_total": plan.days,
        "days_left": round(max(0.0, (plan.total - exposed) / daily), 1) if daily else None,
    }  # fmt: skip
