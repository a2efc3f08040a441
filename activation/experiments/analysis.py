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

from django.db import connection, transaction
from django.utils import timezone

from activation.experiments import stats
from activation.experiments.models import Experiment, Metric, MetricKind
from cdp.db import analytic_settings
from cdp.paths import split_path
from profiles.coercion import numeric_sql


def _sums_sql(metrics: list[Metric], params: dict[str, Any]) -> str:
    """Per variant, for every metric: n, Σy, Σy², Σx, Σx², Σxy of the units' post-exposure
    values y and pre-exposure values x — the sufficient statistics of every test and of
    CUPED. One pass joins the exposures to the events of all the metrics, so a million units
    and several metrics come back as one row per variant."""

    def bind(value: object) -> str:
        name = f"b{len(params)}"
        params[name] = value
        return f"%({name})s"

    raw, shaped, caps, capped, sums = [], [], [], [], []
    for i, metric in enumerate(metrics):
        event, window = bind(metric.event), bind(timedelta(days=metric.window_days))
        if metric.kind == MetricKind.SUM:
            path = bind("{" + ",".join(split_path(metric.property)) + "}")
            value = f"COALESCE(({numeric_sql(f'(ev.properties #> {path})', bind)})::float8, 0)"
        else:
            value = "1.0::float8"
        raw.append(
            f"COALESCE(sum({value}) FILTER (WHERE ev.event = {event} AND ev.timestamp > "
            f"u.exposed_at AND ev.timestamp <= u.exposed_at + {window}), 0) AS ry{i}, "
            f"COALESCE(sum({value}) FILTER (WHERE ev.event = {event} AND ev.timestamp > "
            f"u.exposed_at - {window} AND ev.timestamp <= u.exposed_at), 0) AS rx{i}"
        )
        if metric.kind == MetricKind.CONVERSION:
            shaped.append(f"(ry{i} > 0)::int::float8 AS y{i}, (rx{i} > 0)::int::float8 AS x{i}")
        else:
            shaped.append(f"ry{i} AS y{i}, rx{i} AS x{i}")
        if metric.winsorize_percentile and metric.kind != MetricKind.CONVERSION:
            pct = bind(metric.winsorize_percentile / 100.0)
            caps.append(f"percentile_cont({pct}) WITHIN GROUP (ORDER BY y{i}) AS c{i}")
            capped.append(f"LEAST(y{i}, cap.c{i}) AS y{i}, LEAST(x{i}, cap.c{i}) AS x{i}")
        else:
            capped.append(f"y{i}, x{i}")
        sums.append(f"sum(y{i}), sum(y{i} * y{i}), sum(x{i}), sum(x{i} * x{i}), sum(x{i} * y{i})")
    events = bind(sorted({m.event for m in metrics}))
    cap_cte = f", cap AS (SELECT {', '.join(caps)} FROM shaped)" if caps else ""
    cap_join = " CROSS JOIN cap" if caps else ""
    return f"""
WITH u AS (
    SELECT profile_id, variant, exposed_at FROM activation_exposure
    WHERE experiment_id = %(experiment)s AND exposed_at <= %(now)s
), ev AS (
    SELECT pe.profile_id, pe.timestamp, pe.event, pe.properties
    FROM profiles_profileevent pe
    WHERE pe.workspace_id = %(ws)s AND pe.type = 'track' AND pe.event = ANY({events})
      AND pe.timestamp > %(since)s AND pe.timestamp <= %(now)s
), units AS (
    SELECT u.variant, {", ".join(raw)}
    FROM u LEFT JOIN ev ON ev.profile_id = u.profile_id
    GROUP BY u.profile_id, u.variant
), shaped AS MATERIALIZED (
    SELECT variant, {", ".join(shaped)} FROM units
){cap_cte}, final AS (
    SELECT variant, {", ".join(capped)} FROM shaped{cap_join}
)
SELECT variant, count(*), {", ".join(sums)}
FROM final GROUP BY variant
"""


def variant_sums(
    experiment: Experiment, metrics: list[Metric], now: datetime
) -> list[dict[str, stats.PrePost]]:
    """Per metric (in the order given): variant -> the sufficient statistics of its exposed
    units (every variant present)."""
    longest = timedelta(days=max(m.window_days for m in metrics))
    started = experiment.started_at or experiment.created_at
    params: dict[str, Any] = {
        "experiment": experiment.pk, "ws": experiment.workspace_id, "now": now,
        "since": started - longest,
    }  # fmt: skip
    sql = _sums_sql(metrics, params)
    empty = stats.PrePost(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    out = [{key: empty for key in experiment.variant_keys} for _ in metrics]
    with transaction.atomic(), connection.cursor() as cursor:
        analytic_settings(cursor)
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            variant, n = row[0], int(row[1])
            if variant not in out[0]:
                continue
            for i in range(len(metrics)):
                sy, syy, sx, sxx, sxy = (float(v or 0) for v in row[2 + 5 * i : 7 + 5 * i])
                out[i][variant] = stats.PrePost(n, sy, syy, sx, sxx, sxy)
    return out


def _lift(lift: stats.Lift) -> dict[str, Any]:
    out = asdict(lift)
    out["significant"] = lift.significant
    return out


def analyse_metric(
    experiment: Experiment, metric: Metric, sums: dict[str, stats.PrePost]
) -> dict[str, Any]:
    control_key = experiment.variant_keys[0]
    variants = [
        {"variant": key, "n": v.n, "mean": v.sum_y / v.n if v.n else None,
         "pre_mean": v.sum_x / v.n if v.n else None}
        for key, v in sums.items()
    ]  # fmt: skip
    result: dict[str, Any] = {
        "metric": metric.key, "name": metric.name, "kind": metric.kind,
        "higher_is_better": metric.higher_is_better, "variants": variants, "comparisons": [],
        "cuped": None, "error": None,
    }  # fmt: skip
    try:
        if any(v.n < 2 for v in sums.values()):
            raise stats.NotEnoughData("each variant needs at least 2 units")
        moments = {k: stats.Moments.from_sums(v.n, v.sum_y, v.sum_y2) for k, v in sums.items()}
        if experiment.cuped:
            adjusted = stats.cuped(list(sums.values()))
            if adjusted.variance_reduction > 0:
                moments = dict(zip(sums, adjusted.adjusted, strict=True))
                result["cuped"] = {"theta": adjusted.theta,
                                   "variance_reduction": adjusted.variance_reduction}  # fmt: skip
        for key in experiment.variant_keys[1:]:
            control, treatment = moments[control_key], moments[key]
            if experiment.sequential:
                lift = stats.sequential(control, treatment, alpha=experiment.alpha)
            elif metric.kind == MetricKind.CONVERSION and not result["cuped"]:
                c, t = sums[control_key], sums[key]
                lift = stats.proportions(round(c.sum_y), c.n, round(t.sum_y), t.n,
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
    every = variant_sums(experiment, [metric for _, metric in roles], now)
    metrics = [
        {"role": role, **analyse_metric(experiment, metric, sums)}
        for (role, metric), sums in zip(roles, every, strict=True)
    ]
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
        # read by the cdp_experiment_srm_flagged metric
        "srm_flagged": bool(results["srm"] and results["srm"]["flagged"]),
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
    sums = variant_sums(experiment, [metric], now)[0]
    control = sums[experiment.variant_keys[0]]
    exposed = sum(v.n for v in sums.values())
    started = experiment.started_at or experiment.created_at
    days = max((now - started).total_seconds() / 86400, 1 / 24)
    daily = exposed / days if exposed else None
    variants = len(experiment.variants)
    if control.n < 2:
        raise stats.NotEnoughData("the control needs exposed units before planning")
    moments = stats.Moments.from_sums(control.n, control.sum_y, control.sum_y2)
    if metric.kind == MetricKind.CONVERSION:
        plan = stats.sample_size_proportion(moments.mean, mde_relative,
                                            variants=variants, alpha=experiment.alpha,
                                            daily_units=daily)  # fmt: skip
    else:
        plan = stats.sample_size_mean(moments.mean, moments.variance**0.5,
                                      mde_relative, variants=variants, alpha=experiment.alpha,
                                      daily_units=daily)  # fmt: skip
    return {
        "metric": metric.key, "mde_relative": mde_relative, "baseline": moments.mean,
        "per_variant": plan.per_variant, "total": plan.total, "exposed": exposed,
        "daily_units": round(daily, 1) if daily else None, "days_total": plan.days,
        "days_left": round(max(0.0, (plan.total - exposed) / daily), 1) if daily else None,
    }  # fmt: skip
