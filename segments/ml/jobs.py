"""Training runs and scoring: what a Celery worker executes for a model.

A run is executed by whoever holds its model's advisory lock (a session lock: a killed
worker's lock goes with its Postgres session), so a run delivered twice — a retried task, a
second worker — is executed once; a run whose worker died is taken over by the next delivery
or marked failed by the sweeper. Progress (stage, percent, log lines) is committed as it
happens so the page and the API can show it; a cancellation request is honoured between
stages. The version, the champion switch and the run's success are one transaction: a run
killed at any point leaves either no version or one whole version."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sklearn
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from profiles.computed.services import computed_values_write
from segments.ml import features as feats
from segments.ml import propensity
from segments.ml.models import (
    MLModel,
    ModelKind,
    ModelVersion,
    RunStatus,
    TrainingRun,
    VersionStatus,
)

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = 7517
MIN_ROWS = 50
MIN_CLASS = 5
DEFAULT_HORIZON: dict[str, int] = {ModelKind.PROPENSITY: 30, ModelKind.CHURN: 90}
PSI_FLAG = 0.2
DRIFT_HISTORY = 60
LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


class Cancelled(Exception):
    pass


class RunFailed(Exception):
    """The run cannot produce a model; the message says why, for the page."""


# ---- progress -------------------------------------------------------------------------------


def _progress(run: TrainingRun, stage: str, percent: int, line: str = "") -> None:
    """Commit where the run is (outside any transaction), then honour a cancellation."""
    stamp = timezone.now().strftime("%H:%M:%S")
    log = f"{run.log}{stamp} {stage}: {line}\n" if line else run.log
    TrainingRun.objects.filter(pk=run.pk).update(stage=stage, percent=percent, log=log)
    run.stage, run.percent, run.log = stage, percent, log
    if TrainingRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
        raise Cancelled


def _finish(run: TrainingRun, status: str, *, error: str = "", line: str = "") -> None:
    stamp = timezone.now().strftime("%H:%M:%S")
    log = f"{run.log}{stamp} {status}: {line or error}\n"
    TrainingRun.objects.filter(pk=run.pk).update(
        status=status, error=error, finished_at=timezone.now(), log=log,
        percent=100 if status == RunStatus.SUCCEEDED else run.percent,
    )  # fmt: skip


def _try_lock(model_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, model_id])
        return bool(cursor.fetchone()[0])


def _unlock(model_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, model_id])


# ---- the run --------------------------------------------------------------------------------


def execute(run_id: int) -> str:
    """Execute a queued run (or take over one whose worker died). Returns its final status,
    or "busy" when another worker is executing it."""
    run = TrainingRun.objects.select_related("model", "model__workspace").filter(pk=run_id).first()
    if run is None or not run.active:
        return run.status if run else "missing"
    if not _try_lock(run.model_id):
        return "busy"
    try:
        run.refresh_from_db()
        if not run.active:
            return run.status
        if run.cancel_requested:
            _finish(run, RunStatus.CANCELLED, line="cancelled before it started")
            return RunStatus.CANCELLED
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        restarted = run.status == RunStatus.RUNNING
        TrainingRun.objects.filter(pk=run.pk).update(
            status=RunStatus.RUNNING, started_at=timezone.now(), worker_pid=pid
        )
        run.status = RunStatus.RUNNING
        if restarted:
            _progress(run, "restarted", 0, "the worker running it died; starting again")
        try:
            _train(run)
        except Cancelled:
            _finish(run, RunStatus.CANCELLED, line="cancelled on request")
            return RunStatus.CANCELLED
        except RunFailed as exc:
            _finish(run, RunStatus.FAILED, error=str(exc))
            return RunStatus.FAILED
        except Exception as exc:
            logger.exception("training run %s failed", run.pk)
            _finish(run, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            return RunStatus.FAILED
        return RunStatus.SUCCEEDED
    finally:
        _unlock(run.model_id)


def _labels(model: MLModel, F: feats.Features, start: datetime, end: datetime) -> np.ndarray:
    event = _event(model)
    did = feats.performers(workspace=model.workspace, event=event, start=start, end=end)
    y = np.fromiter((pid in did for pid in F.profile_ids.tolist()), dtype=bool, count=len(F))
    return ~y if model.kind == ModelKind.CHURN else y


def _event(model: MLModel) -> str:
    spec = feats.FeatureSpec.from_config(model.config)
    return str(model.config.get("event") or spec.purchase_event)


def _population(model: MLModel, F: feats.Features) -> feats.Features:
    """Churn is about customers: those who did the event at least once by `as_of`."""
    if model.kind != ModelKind.CHURN:
        return F
    did = feats.performers(
        workspace=model.workspace, event=_event(model), start=LONG_AGO, end=F.as_of
    )
    keep = np.fromiter((pid in did for pid in F.profile_ids.tolist()), dtype=bool, count=len(F))
    return feats.Features(F.profile_ids[keep], F.X[keep], F.names, F.as_of)


def horizon(model: MLModel) -> int:
    return int(model.config.get("horizon_days") or DEFAULT_HORIZON.get(str(model.kind), 30))


def _check_rows(y: np.ndarray, window: str) -> None:
    positives = int(y.sum())
    if len(y) < MIN_ROWS or positives < MIN_CLASS or len(y) - positives < MIN_CLASS:
        raise RunFailed(
            f"not enough data in the {window} window: {len(y)} profiles, {positives} positive "
            f"(needs {MIN_ROWS} profiles and {MIN_CLASS} of each outcome); wait for more "
            "events or shorten the horizon"
        )


def _train(run: TrainingRun) -> None:
    model = run.model
    seed = int(model.config.get("seed", 7))
    spec = feats.FeatureSpec.from_config(model.config)
    n = timedelta(days=horizon(model))
    end = model.config.get("end")
    t = datetime.fromisoformat(end) if end else feats.latest_event_time(model.workspace)
    if t is None:
        raise RunFailed("the workspace has no events yet")
    train_as_of, eval_as_of = t - 2 * n, t - n
    _progress(run, "features", 5, f"training window: features as of {train_as_of:%Y-%m-%d}")
    train = _population(model, feats.build_features(
        workspace=model.workspace, spec=spec, as_of=train_as_of))  # fmt: skip
    y_train = _labels(model, train, train_as_of, eval_as_of)
    _check_rows(y_train, "training")
    _progress(run, "features", 25, f"{len(train):,} profiles, {int(y_train.sum()):,} positive")
    evaluation = _population(model, feats.build_features(
        workspace=model.workspace, spec=spec, as_of=eval_as_of))  # fmt: skip
    y_eval = _labels(model, evaluation, eval_as_of, t)
    _check_rows(y_eval, "evaluation")
    _progress(
        run, "training", 45,
        f"evaluation window as of {eval_as_of:%Y-%m-%d}: {len(evaluation):,} profiles, "
        f"{int(y_eval.sum()):,} positive",
    )  # fmt: skip
    started = time.monotonic()
    result = propensity.evaluate(train.X, y_train, evaluation.X, y_eval, spec.names, seed)
    _progress(
        run, "evaluating", 75, f"{result.summary} ({time.monotonic() - started:.1f} s)"
    )  # fmt: skip
    # the model scoring uses: the chosen algorithm refitted on the latest labelled window
    final = propensity.fit(result.algorithm, evaluation.X, y_eval, spec.names, seed)
    artefact, digest = propensity.dump(final, spec.names)
    _progress(run, "saving", 85, f"model saved ({len(artefact) / 1024:,.0f} KiB)")
    version = _save_version(
        run,
        window={
            "train_as_of": train_as_of.isoformat(),
            "eval_as_of": eval_as_of.isoformat(),
            "end": t.isoformat(),
            "horizon_days": n.days,
            "event": _event(model),
        },
        rows={
            "train": len(train),
            "eval": len(evaluation),
            "train_positives": int(y_train.sum()),
            "eval_positives": int(y_eval.sum()),
        },  # fmt: skip
        result=result,
        spec=spec,
        artefact=artefact,
        digest=digest,
        distributions=propensity.bins(evaluation.X, spec.names),
    )
    if version.status == VersionStatus.CHAMPION:
        _progress(run, "scoring", 90, version.reason)
        scored = score(model.pk)
        _finish(run, RunStatus.SUCCEEDED, line=f"v{version.number} champion; {scored:,} scored")
    else:
        _finish(run, RunStatus.SUCCEEDED, line=f"v{version.number} challenger: {version.reason}")


def _champion_decision(model: MLModel, score_value: float) -> tuple[bool, str]:
    champion = model.champion
    if champion is None:
        return True, f"the first version (ROC-AUC {score_value:.3f}) is the champion"
    if champion.score is None or np.isnan(champion.score) or score_value >= champion.score:
        return True, (
            f"ROC-AUC {score_value:.3f} is at least as good as v{champion.number}'s "
            f"{champion.score or 0:.3f}: it replaces it"
        )
    return False, (
        f"ROC-AUC {score_value:.3f} is below the champion v{champion.number}'s "
        f"{champion.score:.3f}: it stays a challenger (promote it by hand to use it)"
    )


@transaction.atomic
def _save_version(
    run: TrainingRun,
    *,
    window: dict[str, Any],
    rows: dict[str, int],
    result: propensity.Evaluation,
    spec: feats.FeatureSpec,
    artefact: bytes,
    digest: str,
    distributions: dict[str, Any],
) -> ModelVersion:
    model = (
        MLModel.objects.select_for_update(of=("self",))
        .select_related("champion")
        .get(pk=run.model_id)
    )
    number = (model.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    value = result.metrics["roc_auc"]
    promote, reason = _champion_decision(model, value)
    version = ModelVersion.objects.create(
        model=model, number=number, run=run, reason=reason, window=window, rows=rows,
        metrics={**result.metrics, "algorithm": result.algorithm, "summary": result.summary,
                 "boosted": result.boosted_metrics},
        baseline_metrics=result.baseline_metrics, charts=result.charts,
        score_metric="roc_auc", score=value, feature_names=spec.names,
        feature_spec=spec.as_config(), distributions=distributions, artefact=artefact,
        artefact_sha256=digest, sklearn_version=sklearn.__version__,
        status=VersionStatus.CHAMPION if promote else VersionStatus.CHALLENGER,
    )  # fmt: skip
    if promote:
        _make_champion(model, version)
    return version


def _make_champion(model: MLModel, version: ModelVersion) -> None:
    model.versions.filter(status=VersionStatus.CHAMPION).exclude(pk=version.pk).update(
        status=VersionStatus.RETIRED
    )
    ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.CHAMPION)
    MLModel.objects.filter(pk=model.pk).update(champion=version, updated_at=timezone.now())
    model.champion = version


# ---- scoring --------------------------------------------------------------------------------


def deciles(p: np.ndarray) -> np.ndarray:
    """1 (lowest tenth) … 10 (highest tenth) by rank."""
    if not len(p):
        return np.empty(0, dtype=np.int64)
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p), dtype=np.int64)
    ranks[order] = np.arange(len(p))
    return (ranks * 10 // len(p)) + 1


def score(model_id: int, *, now: datetime | None = None) -> int:
    """Score the workspace's consenting profiles with the champion and write the scores as
    computed traits (`key`: probability, `key_decile`: 1–10); every other profile loses
    them. Records each feature's drift (PSI) against the champion's training data. Returns
    how many profiles were scored."""
    model = MLModel.objects.select_related("champion", "workspace").get(pk=model_id)
    version = model.champion
    if version is None:
        return 0
    now = now or timezone.now()
    spec = feats.FeatureSpec.from_config(version.feature_spec)
    fitted = propensity.load(
        bytes(version.artefact), sha256=version.artefact_sha256, names=version.feature_names
    )
    current = _population(model, feats.build_features(
        workspace=model.workspace, spec=spec, as_of=now))  # fmt: skip
    p = fitted.predict_proba(current.X)[:, 1] if len(current) else np.empty(0)
    ids = current.profile_ids.tolist()
    computed_values_write(
        workspace_id=model.workspace_id,
        values={
            model.key: {pid: round(float(v), 4) for pid, v in zip(ids, p, strict=True)},
            model.decile_key: dict(zip(ids, deciles(p).tolist(), strict=True)),
        },
        now=now,
    )
    drift = {
        name: round(propensity.psi(version.distributions[name], current.column(name)), 4)
        for name in version.feature_names
        if name in version.distributions and len(current)
    }
    history = [*model.drift, {"at": now.isoformat(), "version": version.number, "psi": drift}]
    MLModel.objects.filter(pk=model.pk).update(
        scored_at=now, scored_count=len(ids), drift=history[-DRIFT_HISTORY:]
    )
    return len(ids)


def drifted(model: MLModel, *, top: int = 5) -> list[str]:
    """The model's most important features whose latest PSI is above 0.2."""
    if not model.drift or model.champion is None:
        return []
    latest = model.drift[-1]["psi"]
    ranked = [i["feature"] for i in model.champion.charts.get("importance", [])[:top]]
    return [f for f in ranked if latest.get(f, 0) > PSI_FLAG]


def sweep_dead_runs() -> int:
    """Runs marked running whose worker's Postgres session is gone: failed, so the model can
    train again (a redelivered task would have taken them over first)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity")
        alive = {row[0] for row in cursor.fetchall()}
    dead = TrainingRun.objects.filter(status=RunStatus.RUNNING).exclude(
        Q(worker_pid__in=alive) | Q(worker_pid__isnull=True)
    )
    count = 0
    for run in dead:
        _finish(run, RunStatus.FAILED, error="the worker running it died")
        count += 1
    return count
