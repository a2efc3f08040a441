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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp
import sklearn
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from cdp import metrics
from profiles.computed.services import computed_values_write
from segments.ml import catalog, clusters, propensity, recommend
from segments.ml import features as feats
from segments.ml.models import (
    Item,
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
        started = time.monotonic()
        status = _run(run)
        kind = str(run.model.kind)
        metrics.ML_RUNS.labels(kind=kind, outcome=str(status)).inc()
        metrics.ML_RUN_SECONDS.labels(kind=kind).observe(time.monotonic() - started)
        return status
    finally:
        _unlock(run.model_id)


def _run(run: TrainingRun) -> str:
    """Train the claimed run and record how it ended; returns its final status."""
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
    if run.model.kind == ModelKind.CLUSTERS:
        _train_clusters(run)
    elif run.model.kind == ModelKind.RECOMMENDATIONS:
        _train_recommendations(run)
    else:
        _train_propensity(run)


def _train_propensity(run: TrainingRun) -> None:
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
    value = result.metrics["roc_auc"]
    promote, reason = _champion_decision(model, "ROC-AUC", value, _stored_score(model))
    _save_version(
        run,
        Outcome(
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
            },
            metrics={**result.metrics, "algorithm": result.algorithm, "summary": result.summary,
                     "boosted": result.boosted_metrics},
            baseline_metrics=result.baseline_metrics,
            charts=result.charts,
            score_metric="roc_auc",
            score=value,
            feature_names=spec.names,
            feature_spec=spec.as_config(),
            artefact=artefact,
            digest=digest,
            distributions=propensity.bins(evaluation.X, spec.names),
            promote=promote,
            reason=reason,
        ),
    )  # fmt: skip
    _after_save(run)


def cluster_columns(model: MLModel, spec: feats.FeatureSpec) -> list[str]:
    wanted = model.config.get("features") or clusters.DEFAULT_FEATURES
    return [name for name in wanted if name in spec.names]


def _select(F: feats.Features, names: list[str]) -> np.ndarray:
    index = [F.names.index(name) for name in names]
    return np.ascontiguousarray(F.X[:, index])


def _previous_clusters(model: MLModel) -> clusters.ClusterModel | None:
    champion = model.champion
    if champion is None:
        return None
    try:
        loaded = propensity.load(
            bytes(champion.artefact), sha256=champion.artefact_sha256, names=champion.feature_names
        )
    except propensity.ArtefactMismatch:
        return None
    return loaded if isinstance(loaded, clusters.ClusterModel) else None


def _train_clusters(run: TrainingRun) -> None:
    model = run.model
    seed = int(model.config.get("seed", 7))
    spec = feats.FeatureSpec.from_config(model.config)
    names = cluster_columns(model, spec)
    # as of now, as scoring reads them (a time-dependent feature such as tenure must not
    # look drifted at the first scoring)
    end = model.config.get("end")
    t = datetime.fromisoformat(end) if end else timezone.now()
    _progress(run, "features", 5, f"features as of {t:%Y-%m-%d %H:%M}")
    F = feats.build_features(workspace=model.workspace, spec=spec, as_of=t)
    if len(F) < MIN_ROWS:
        raise RunFailed(f"{len(F)} profiles with events (needs {MIN_ROWS}); wait for more events")
    X = _select(F, names)
    _progress(run, "choosing k", 25, f"{len(F):,} profiles, {len(names)} features")
    previous = _previous_clusters(model)
    started = time.monotonic()
    result = clusters.fit(X, names, seed=seed, fixed_k=model.config.get("k"), previous=previous)
    _progress(run, "evaluating", 75, f"{result.summary} ({time.monotonic() - started:.1f} s)")
    value = float(result.metrics["silhouette"])
    held = clusters.held_out_rows(len(X), seed)
    champion_value = (
        clusters.silhouette_of(previous, X[held], result.model.pre, seed)
        if previous is not None
        else _stored_score(model)
    )
    promote, reason = _champion_decision(model, "silhouette", value, champion_value)
    artefact, digest = propensity.dump(result.model, names)
    _progress(run, "saving", 85, f"model saved ({len(artefact) / 1024:,.0f} KiB)")
    _save_version(
        run,
        Outcome(
            window={"as_of": t.isoformat(), "end": t.isoformat()},
            rows={"train": len(X) - len(held), "eval": len(held)},
            metrics={**result.metrics, "summary": result.summary},
            baseline_metrics=result.baseline_metrics,
            charts=result.charts,
            score_metric="silhouette",
            score=value,
            feature_names=names,
            feature_spec={**spec.as_config(), "features": names},
            artefact=artefact,
            digest=digest,
            distributions=propensity.bins(X, names),
            promote=promote,
            reason=reason,
        ),
    )
    _after_save(run)


MIN_PEOPLE = 20
MIN_ITEMS = 5
MIN_INTERACTIONS = 100
DEFAULT_TOP_N = 10
POPULAR_SHOWN = 20


def _train_recommendations(run: TrainingRun) -> None:
    model = run.model
    seed = int(model.config.get("seed", 7))
    signals = catalog.Signals.from_config(model.config)
    now = timezone.now()
    _progress(run, "catalogue", 5, "reading items from " + ", ".join(signals.weights))
    size = catalog.refresh_catalog(workspace=model.workspace, events=list(signals.weights))
    _progress(run, "interactions", 15, f"{size:,} items in the catalogue")
    data = catalog.interactions(workspace=model.workspace, signals=signals, as_of=now)
    people, items = data.shape
    if people < MIN_PEOPLE or items < MIN_ITEMS or data.X.nnz < MIN_INTERACTIONS:
        raise RunFailed(
            f"{people:,} people, {items:,} items and {data.X.nnz:,} interactions (needs "
            f"{MIN_PEOPLE} people, {MIN_ITEMS} items and {MIN_INTERACTIONS} interactions); "
            "wait for more product events"
        )
    _progress(
        run, "evaluating", 30,
        f"{people:,} people × {items:,} items, {data.X.nnz:,} interactions",
    )  # fmt: skip
    started = time.monotonic()
    result = recommend.compare(data.X, data.item_ids, seed=seed)
    _progress(run, "fitting", 70, f"{result.summary} ({time.monotonic() - started:.1f} s)")
    algorithm = result.algorithm
    final = recommend.fit(algorithm, data.X, data.item_ids, result.settings[algorithm])
    final.similar = recommend.similar_items(
        data.X, data.item_ids, catalog.attributes(model.workspace_id)
    )
    final.settings.update(
        weights=signals.weights, purchase_event=signals.purchase_event,
        top_n=int(model.config.get("top_n") or DEFAULT_TOP_N),
        exclude=str(model.config.get("exclude") or "purchased"),
    )  # fmt: skip
    value = float(result.metrics[algorithm]["ndcg_at_10"])
    promote, reason = _champion_decision(model, "NDCG@10", value, _stored_score(model))
    artefact, digest = propensity.dump(final, [])
    _progress(run, "saving", 85, f"model saved ({len(artefact) / 1024:,.0f} KiB)")
    popular = np.argsort(-final.popularity, kind="stable")[:POPULAR_SHOWN]
    names = dict(
        Item.objects.filter(
            workspace_id=model.workspace_id, item_id__in=[data.item_ids[i] for i in popular]
        ).values_list("item_id", "name")
    )
    _save_version(
        run,
        Outcome(
            window={"as_of": now.isoformat(), "end": now.isoformat()},
            rows={"train": people, "eval": int(result.metrics[algorithm]["people"]),
                  "items": items, "interactions": int(data.X.nnz)},
            metrics={**result.metrics[algorithm], "algorithm": algorithm,
                     "summary": result.summary, "settings": result.settings[algorithm]},
            baseline_metrics=result.metrics[recommend.POPULARITY],
            charts={"algorithms": result.metrics, "settings": result.settings,
                    "popular": [{"item": data.item_ids[i], "people": int(final.popularity[i]),
                                 "name": names.get(data.item_ids[i], "")} for i in popular]},
            score_metric="ndcg_at_10",
            score=value,
            feature_names=[],
            feature_spec={"weights": signals.weights, "purchase_event": signals.purchase_event},
            artefact=artefact,
            digest=digest,
            distributions={},
            promote=promote,
            reason=reason,
        ),
    )  # fmt: skip
    _after_save(run)


def _score_recommendations(
    model: MLModel, version: ModelVersion, fitted: recommend.RecModel, now: datetime
) -> int:
    """Top-N item ids per consenting profile with interactions: from the champion for those
    who allow personalisation, the most popular items for the others; never an item they
    bought (or interacted with: setting `exclude`) nor an unavailable one."""
    signals = catalog.Signals.from_config(version.feature_spec)
    data = catalog.interactions(workspace=model.workspace, signals=signals, as_of=now)
    n = int(fitted.settings.get("top_n", DEFAULT_TOP_N))
    exclude_mode = fitted.settings.get("exclude", "purchased")
    # the data's columns in the model's item order (items new since training are dropped)
    known = np.array([fitted.index.get(i, -1) for i in data.item_ids], dtype=np.int64)
    keep = np.flatnonzero(known >= 0)
    to_model = sp.csr_matrix(
        (np.ones(len(keep), dtype=np.float32), (keep, known[keep])),
        shape=(len(data.item_ids), len(fitted.item_ids)),
    )
    X = (data.X @ to_model).tocsr()
    shown = data.purchased if exclude_mode == "purchased" else data.X
    hidden = (shown.astype(np.float32) @ to_model).tocsr()
    off = {fitted.index[i] for i in catalog.unavailable(model.workspace_id) if i in fitted.index}
    personal = data.personal if data.personal is not None else np.zeros(len(X.indptr) - 1, bool)
    values: dict[int, list[str]] = {}
    ids = data.profile_ids.tolist()
    for start in range(0, len(ids), recommend.CHUNK):
        stop = min(start + recommend.CHUNK, len(ids))
        scores = fitted.scores(X[start:stop])
        for r in range(stop - start):
            row = start + r
            if not personal[row]:
                scores[r] = fitted.popularity
            exclude = set(hidden.indices[hidden.indptr[row] : hidden.indptr[row + 1]].tolist())
            if exclude_mode == "none":
                exclude = set()
            top = fitted.top(scores[r], n, exclude | off)
            values[ids[row]] = [fitted.item_ids[i] for i in top]
    computed_values_write(workspace_id=model.workspace_id, values={model.key: values}, now=now)
    MLModel.objects.filter(pk=model.pk).update(scored_at=now, scored_count=len(values))
    return len(values)


def _after_save(run: TrainingRun) -> None:
    version = ModelVersion.objects.get(run=run)
    if version.status == VersionStatus.CHAMPION:
        _progress(run, "scoring", 90, version.reason)
        scored = score(run.model_id)
        _finish(run, RunStatus.SUCCEEDED, line=f"v{version.number} champion; {scored:,} scored")
    else:
        _finish(run, RunStatus.SUCCEEDED, line=f"v{version.number} challenger: {version.reason}")


def _stored_score(model: MLModel) -> float | None:
    champion = model.champion
    return champion.score if champion is not None else None


def _champion_decision(
    model: MLModel, metric: str, value: float, champion_value: float | None
) -> tuple[bool, str]:
    """A new version replaces the champion when its held-out metric is at least as good."""
    champion = model.champion
    if champion is None:
        return True, f"the first version ({metric} {value:.3f}) is the champion"
    if champion_value is None or np.isnan(champion_value) or value >= champion_value:
        ours, theirs = _pair(value, champion_value or 0.0)
        return True, (
            f"{metric} {ours} is at least as good as v{champion.number}'s {theirs}: it replaces it"
        )
    ours, theirs = _pair(value, champion_value)
    return False, (
        f"{metric} {ours} is below the champion v{champion.number}'s {theirs}: it stays a "
        "challenger (promote it by hand to use it)"
    )


def _pair(a: float, b: float) -> tuple[str, str]:
    """Two metrics with as many decimals as it takes to tell them apart (up to 5)."""
    for digits in range(3, 6):
        if f"{a:.{digits}f}" != f"{b:.{digits}f}":
            break
    return f"{a:.{digits}f}", f"{b:.{digits}f}"


@dataclass
class Outcome:
    """What a run produced, saved as a version in one transaction."""

    window: dict[str, Any]
    rows: dict[str, int]
    metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    charts: dict[str, Any]
    score_metric: str
    score: float
    feature_names: list[str]
    feature_spec: dict[str, Any]
    artefact: bytes
    digest: str
    distributions: dict[str, Any]
    promote: bool
    reason: str


@transaction.atomic
def _save_version(run: TrainingRun, outcome: Outcome) -> ModelVersion:
    model = MLModel.objects.select_for_update(of=("self",)).with_champion().get(pk=run.model_id)
    if model.champion_id != run.model.champion_id:
        # promoted by hand while the run trained: decided against what it replaced, so keep
        # the hand-picked champion and let this version wait as a challenger
        outcome.promote = False
        outcome.reason = "the champion changed while it trained; promote it by hand to use it"
    number = (model.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = ModelVersion.objects.create(
        model=model, number=number, run=run, reason=outcome.reason, window=outcome.window,
        rows=outcome.rows, metrics=outcome.metrics, baseline_metrics=outcome.baseline_metrics,
        charts=outcome.charts, score_metric=outcome.score_metric, score=outcome.score,
        feature_names=outcome.feature_names, feature_spec=outcome.feature_spec,
        distributions=outcome.distributions, artefact=outcome.artefact,
        artefact_sha256=outcome.digest, sklearn_version=sklearn.__version__,
        status=VersionStatus.CHAMPION if outcome.promote else VersionStatus.CHALLENGER,
    )  # fmt: skip
    if outcome.promote:
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
    if model.kind == ModelKind.RECOMMENDATIONS:
        return _score_recommendations(model, version, fitted, now)
    began = time.monotonic()
    current = _population(model, feats.build_features(
        workspace=model.workspace, spec=spec, as_of=now))  # fmt: skip
    built = time.monotonic()
    ids = current.profile_ids.tolist()
    if model.kind == ModelKind.CLUSTERS:
        X = _select(current, version.feature_names)
        values: dict[str, dict[int, Any]] = {
            model.key: dict(zip(ids, fitted.label_of(X), strict=True))
        }
    else:
        X = current.X
        p = fitted.predict_proba(X)[:, 1] if len(current) else np.empty(0)
        values = {
            model.key: {pid: round(float(v), 4) for pid, v in zip(ids, p, strict=True)},
            model.decile_key: dict(zip(ids, deciles(p).tolist(), strict=True)),
        }
    predicted = time.monotonic()
    computed_values_write(workspace_id=model.workspace_id, values=values, now=now)
    logger.info(
        "model %s scored %d profiles: features %.1f s, predictions %.1f s, writes %.1f s",
        model.key, len(ids), built - began, predicted - built, time.monotonic() - predicted,
    )  # fmt: skip
    drift = {
        name: round(propensity.psi(version.distributions[name], X[:, i]), 4)
        for i, name in enumerate(version.feature_names)
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
