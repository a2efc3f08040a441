"""Churn and propensity models: fit, calibrate, evaluate — plain scikit-learn on the feature
matrix (no database here).

The candidate is a HistGradientBoostingClassifier (it takes missing traits as they are) with
its probabilities calibrated by isotonic regression on cross-validation folds; the baseline
is a logistic regression on standardised log-counts, the model a careful analyst would fit
first. Both are scored on a later, held-out time window: ROC-AUC, PR-AUC, Brier score, lift
in the top decile, a calibration curve and permutation feature importance."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from segments.ml.features import SKEWED

IMPORTANCE_ROWS = 5_000
CURVE_POINTS = 60


class ArtefactMismatch(Exception):
    """A stored model was fitted with another scikit-learn (or another feature set)."""


class LogColumns(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """log1p of the given columns (counts and money: heavy right tails), the rest as is."""

    def __init__(self, columns: tuple[int, ...] = ()) -> None:
        self.columns = columns

    def fit(self, X: np.ndarray, y: Any = None) -> LogColumns:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        out = np.array(X, dtype=np.float64, copy=True)
        index = list(self.columns)
        out[:, index] = np.log1p(np.clip(out[:, index], 0, None))
        return out


def _log_skewed(names: list[str]) -> LogColumns:
    return LogColumns(tuple(i for i, name in enumerate(names) if name in SKEWED))


# isotonic calibration needs many rows per fold; below this, a sigmoid (which also keeps
# the ranking, so ROC-AUC, intact)
ISOTONIC_ROWS = 20_000


def candidate(seed: int, rows: int) -> CalibratedClassifierCV:
    """Boosted trees, regularised for the few thousand rows a small shop has (small leaves
    learn noise), calibrated on cross-validation folds."""
    boosted = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.05, max_leaf_nodes=15,
        min_samples_leaf=max(50, rows // 200), l2_regularization=1.0,
        early_stopping=True, validation_fraction=0.15, random_state=seed,
    )  # fmt: skip
    method = "isotonic" if rows >= ISOTONIC_ROWS else "sigmoid"
    # one boosted model fitted on every row, calibrated on out-of-fold predictions (not three
    # fold models averaged): a third of the trees to walk when scoring a million profiles
    return CalibratedClassifierCV(boosted, method=method, cv=3, ensemble=False)


def baseline(names: list[str]) -> Pipeline:
    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        _log_skewed(names),
        StandardScaler(),
        LogisticRegression(max_iter=2000, C=1.0),
    )


def lift_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    """The positive rate among the 10 % scored highest over the overall rate."""
    if not len(y) or not y.mean():
        return 0.0
    top = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    return float(y[top].mean() / y.mean())


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    both = len(set(y.tolist())) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "lift_top_decile": lift_top_decile(y, p),
        "base_rate": float(y.mean()) if len(y) else 0.0,
    }


def _thin(values: np.ndarray, points: int = CURVE_POINTS) -> list[float]:
    if len(values) <= points:
        return [round(float(v), 4) for v in values]
    index = np.linspace(0, len(values) - 1, points).round().astype(int)
    return [round(float(v), 4) for v in values[index]]


def charts(y: np.ndarray, p: np.ndarray, baseline_p: np.ndarray) -> dict[str, Any]:
    """What the model page draws: ROC curves of both, the calibration curve, gains by
    decile."""
    out: dict[str, Any] = {}
    if len(set(y.tolist())) == 2:
        for name, scores in (("roc", p), ("roc_baseline", baseline_p)):
            fpr, tpr, _ = roc_curve(y, scores)
            out[name] = {"fpr": _thin(fpr), "tpr": _thin(tpr)}
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        out["calibration"] = {"predicted": _thin(predicted), "observed": _thin(observed)}
    order = np.argsort(-p, kind="stable")
    deciles = np.array_split(y[order], 10)
    rate = y.mean() if len(y) else 0.0
    out["lift_by_decile"] = [
        round(float(d.mean() / rate), 3) if len(d) and rate else 0.0 for d in deciles
    ]
    return out


def importance(
    model: Any, X: np.ndarray, y: np.ndarray, names: list[str], seed: int
) -> list[dict[str, Any]]:
    """Permutation importance (drop in ROC-AUC when a feature is shuffled) on a sample of the
    held-out rows, largest first."""
    if len(set(y.tolist())) < 2:
        return []
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(y), size=min(len(y), IMPORTANCE_ROWS), replace=False)
    if len(set(y[rows].tolist())) < 2:
        rows = np.arange(len(y))
    result = permutation_importance(
        model, X[rows], y[rows], scoring="roc_auc", n_repeats=3, random_state=seed, n_jobs=1
    )
    ranked = sorted(
        zip(names, result.importances_mean, result.importances_std, strict=True),
        key=lambda item: -item[1],
    )
    return [
        {"feature": name, "importance": round(float(mean), 5), "std": round(float(std), 5)}
        for name, mean, std in ranked
    ]


BOOSTED = "boosted trees"
LINEAR = "logistic regression"


@dataclass
class Evaluation:
    """Held-out results: `metrics` are the chosen algorithm's, `baseline_metrics` the
    logistic regression's (the two are the same when the baseline is the one chosen)."""

    algorithm: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    boosted_metrics: dict[str, float]
    charts: dict[str, Any]
    importance: list[dict[str, Any]]
    summary: str


def fit(algorithm: str, X: np.ndarray, y: np.ndarray, names: list[str], seed: int) -> Any:
    if algorithm == BOOSTED:
        return candidate(seed, len(y)).fit(X, y)
    return baseline(names).fit(X, y)


def evaluate(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_eval: np.ndarray,
    y_eval: np.ndarray,
    names: list[str],
    seed: int,
) -> Evaluation:
    """Fit boosted trees and the baseline on the earlier window, score both on the later, and
    keep the boosted model unless the baseline ranks the later window better: on a few
    thousand customers whose story is recency and frequency, a straight line often does."""
    boosted = fit(BOOSTED, X_train, y_train, names, seed)
    simple = fit(LINEAR, X_train, y_train, names, seed)
    p = boosted.predict_proba(X_eval)[:, 1]
    q = simple.predict_proba(X_eval)[:, 1]
    mine, theirs = metrics(y_eval, p), metrics(y_eval, q)
    gain = mine["roc_auc"] - theirs["roc_auc"]
    if gain >= 0 or np.isnan(gain):
        algorithm, chosen, scores = BOOSTED, boosted, p
        summary = (
            f"Boosted trees rank the held-out window with ROC-AUC {mine['roc_auc']:.3f}, "
            f"{gain:+.3f} over the logistic-regression baseline ({theirs['roc_auc']:.3f})."
        )
    else:
        algorithm, chosen, scores = LINEAR, simple, q
        summary = (
            f"The logistic-regression baseline ranks the held-out window better "
            f"(ROC-AUC {theirs['roc_auc']:.3f} vs {mine['roc_auc']:.3f} for boosted trees), "
            "so it is the model used."
        )
    chart = charts(y_eval, scores, q)
    ranked = importance(chosen, X_eval, y_eval, names, seed)
    chart["importance"] = ranked
    chosen_metrics = metrics(y_eval, scores)
    return Evaluation(algorithm, chosen_metrics, theirs, mine, chart, ranked, summary)


def dump(model: Any, names: list[str]) -> tuple[bytes, str]:
    """The artefact (joblib bytes, with the scikit-learn version and the feature names it was
    fitted on) and its sha256."""
    buffer = io.BytesIO()
    joblib.dump({"model": model, "names": names, "sklearn": sklearn.__version__}, buffer)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def load(data: bytes, *, sha256: str, names: list[str]) -> Any:
    """The fitted model, refused when the bytes, the scikit-learn version or the feature
    names differ from what was stored (a model must be retrained after an upgrade)."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ArtefactMismatch("the stored model's bytes do not match their checksum")
    stored = joblib.load(io.BytesIO(data))  # noqa: S301 - our own artefact, checksummed
    if stored["sklearn"] != sklearn.__version__:
        raise ArtefactMismatch(
            f"fitted with scikit-learn {stored['sklearn']}, this is {sklearn.__version__}: "
            "train the model again"
        )
    if stored["names"] != names:
        raise ArtefactMismatch("fitted on other features than the model now builds")
    return stored["model"]


def bins(X: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Per feature: decile edges of the training data and the share in each bin (PSI's
    reference)."""
    out = {}
    for i, name in enumerate(names):
        column = X[:, i]
        column = column[~np.isnan(column)]
        if not len(column):
            continue
        edges = np.unique(np.quantile(column, np.linspace(0, 1, 11)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(edges) + 1)
        out[name] = {
            "edges": [float(e) for e in edges],
            "shares": [round(float(c) / len(column), 6) for c in counts],
        }
    return out


def psi(reference: dict[str, Any], column: np.ndarray) -> float:
    """Population stability index of a feature's current values against its training bins
    (0: unchanged; above 0.2: a shift worth retraining for)."""
    column = column[~np.isnan(column)]
    if not len(column):
        return 0.0
    edges = np.array(reference["edges"])
    expected = np.array(reference["shares"], dtype=float)
    counts = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(expected))
    actual = counts / len(column)
    expected = np.clip(expected, 1e-4, None)
    actual = np.clip(actual, 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
