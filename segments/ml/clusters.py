"""Customer clusters: which kinds of customers a workspace has — plain scikit-learn and scipy
on the feature matrix (no database here).

Features are imputed, counts and money read through log1p, standardised; K-Means groups
them (MiniBatchKMeans above 100k profiles). k is chosen by the silhouette of a sample
(≤ 10k profiles, k = 2…10) unless the model fixes it, and the page shows the elbow curve
beside it. Each cluster is described in words from where its centre sits against the
population ("recent, frequent, high spend"), and gets a stable label: a retrain matches its
clusters to the previous champion's by the profiles they share
(`scipy.optimize.linear_sum_assignment` on the overlap), so "loyal" keeps meaning the same
people. The held-out grade is the silhouette of profiles the fit never saw, next to the
silhouette the same profiles get with random labels (the control)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.metrics import silhouette_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from segments.ml.propensity import _log_skewed

# what clusters are made of by default: recency, frequency, money, tenure, engagement
DEFAULT_FEATURES: tuple[str, ...] = (
    "recency_days",
    "tenure_days",
    "orders",
    "revenue_sum",
    "revenue_avg",
    "purchase_gap_days",
    "active_days_90",
    "sessions",
    "distinct_products",
)
K_MIN, K_MAX = 2, 10
SAMPLE = 10_000
MINIBATCH_ROWS = 100_000
SCATTER_POINTS = 1_500
HELD_OUT_SHARE = 0.2
# how far (in standard deviations) a cluster's centre must sit from the population's for a
# feature to describe it, and at most how many words a description has
WORD_THRESHOLD = 0.4
MAX_WORDS = 3
# feature -> (word when low, word when high); None: not worth saying
WORDS: dict[str, tuple[str | None, str | None]] = {
    "recency_days": ("recent", "lapsed"),
    "order_recency_days": ("bought lately", "not bought lately"),
    "orders": ("rare buyers", "frequent"),
    "revenue_sum": ("low spend", "high spend"),
    "revenue_avg": ("small baskets", "big baskets"),
    "revenue_max": ("small orders", "big orders"),
    "tenure_days": ("new", "long-standing"),
    "purchase_gap_days": ("short gaps", "long gaps"),
    "active_days_7": (None, "active this week"),
    "active_days_30": (None, "active this month"),
    "active_days_90": ("inactive", "active lately"),
    "sessions": ("few visits", "many visits"),
    "events": ("light users", "heavy users"),
    "distinct_products": ("narrow taste", "broad taste"),
    "distinct_categories": ("one category", "many categories"),
}


def preprocess(names: list[str]) -> Pipeline:
    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        _log_skewed(names),
        StandardScaler(),
    )


def _kmeans(k: int, rows: int, seed: int) -> KMeans | MiniBatchKMeans:
    if rows > MINIBATCH_ROWS:
        return MiniBatchKMeans(
            n_clusters=k, random_state=seed, batch_size=4096, n_init=3, max_no_improvement=20
        )
    return KMeans(n_clusters=k, random_state=seed, n_init=4)


class ClusterModel:
    """The fitted artefact: preprocessing, K-Means, and the stable label of each centre."""

    def __init__(self, pre: Pipeline, kmeans: Any, labels: list[str], names: list[str]):
        self.pre = pre
        self.kmeans = kmeans
        self.labels = labels
        self.names = names

    def assign(self, X: np.ndarray) -> np.ndarray:
        """The cluster index of each row (an index into `labels`)."""
        if not len(X):
            return np.empty(0, dtype=np.int64)
        Z = np.asarray(self.pre.transform(X), dtype=np.float32)
        return np.asarray(self.kmeans.predict(Z), dtype=np.int64)

    def label_of(self, X: np.ndarray) -> list[str]:
        return [self.labels[i] for i in self.assign(X).tolist()]


def held_out_rows(rows: int, seed: int) -> np.ndarray:
    """The rows graded and never fitted on: a seeded 20 % (at most SAMPLE of them)."""
    order = np.random.default_rng(seed).permutation(rows)
    size = min(SAMPLE, max(3, int(rows * HELD_OUT_SHARE)))
    return np.sort(order[:size])


def _sample(rows: int, size: int, rng: np.random.Generator) -> np.ndarray:
    if rows <= size:
        return np.arange(rows)
    return np.sort(rng.choice(rows, size=size, replace=False))


def choose_k(
    Z: np.ndarray, seed: int, fixed: int | None = None
) -> tuple[int, list[dict[str, float]]]:
    """The k with the best silhouette on this (sampled, standardised) data, and the curve:
    per k its inertia (the elbow) and silhouette. A fixed k is still drawn on the curve."""
    curve = []
    top = min(K_MAX, len(Z) - 1)
    for k in range(K_MIN, top + 1):
        fitted = KMeans(n_clusters=k, random_state=seed, n_init=4).fit(Z)
        labels = fitted.labels_
        score = (
            float(silhouette_score(Z, labels, random_state=seed))
            if len(set(labels.tolist())) > 1
            else -1.0
        )
        curve.append({"k": k, "inertia": round(float(fitted.inertia_), 3),
                      "silhouette": round(score, 4)})  # fmt: skip
    if fixed is not None:
        return fixed, curve
    best = max(curve, key=lambda point: (point["silhouette"], -point["k"]))
    return int(best["k"]), curve


def silhouette(Z: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Silhouette of (at most SAMPLE of) the rows: -1 … 1, higher is better separated."""
    if len(set(labels.tolist())) < 2 or len(Z) < 3:
        return float("nan")
    size = min(len(Z), SAMPLE)
    return float(silhouette_score(Z, labels, sample_size=size, random_state=seed))


def random_control(Z: np.ndarray, k: int, seed: int) -> float:
    """The silhouette the same rows get with k random labels: what "no structure" scores."""
    rng = np.random.default_rng(seed + 1)
    return silhouette(Z, rng.integers(0, k, size=len(Z)), seed)


def _slug(words: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")[:48] or "cluster"


def describe(centres: np.ndarray, names: list[str]) -> list[str]:
    """Each centre (standardised: 0 is the population's average) in a few words."""
    out = []
    for centre in centres:
        said = []
        for i in np.argsort(-np.abs(centre)):
            name = names[i]
            if abs(centre[i]) < WORD_THRESHOLD or name not in WORDS:
                continue
            word = WORDS[name][1 if centre[i] > 0 else 0]
            if word and word not in said:
                said.append(word)
            if len(said) == MAX_WORDS:
                break
        out.append(", ".join(said) if said else "typical")
    return out


def match_labels(
    previous: np.ndarray, current: np.ndarray, k: int, old_labels: list[str]
) -> dict[int, str]:
    """New cluster index -> the previous label its profiles mostly carried: the assignment
    maximising the profiles that keep their label (a new cluster no old one maps to gets
    none here)."""
    if not len(previous) or not old_labels:
        return {}
    overlap = np.zeros((k, len(old_labels)), dtype=np.int64)
    np.add.at(overlap, (current, previous), 1)
    rows, cols = linear_sum_assignment(-overlap)
    return {int(r): old_labels[c] for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0}


def _unique(wanted: str, taken: set[str]) -> str:
    label, n = wanted, 2
    while label in taken:
        label = f"{wanted}_{n}"
        n += 1
    return label


@dataclass
class Clustering:
    model: ClusterModel
    k: int
    metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    charts: dict[str, Any]
    summary: str
    descriptions: dict[str, str] = field(default_factory=dict)


def _scatter(Z: np.ndarray, assign: np.ndarray, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rows = _sample(len(Z), SCATTER_POINTS, rng)
    if len(Z) < 3 or Z.shape[1] < 2:
        return {}
    pca = PCA(n_components=2, random_state=seed).fit(Z)
    xy = pca.transform(Z[rows])
    return {
        "x": [round(float(v), 3) for v in xy[:, 0]],
        "y": [round(float(v), 3) for v in xy[:, 1]],
        "cluster": assign[rows].tolist(),
        "explained": [round(float(v), 4) for v in pca.explained_variance_ratio_],
    }


def _separation(
    Z: np.ndarray, assign: np.ndarray, k: int, names: list[str]
) -> list[dict[str, Any]]:
    """Which features tell the clusters apart: the share of each feature's variance that lies
    between the clusters (η²), largest first — what drift is watched on."""
    out = []
    counts = np.bincount(assign, minlength=k).astype(np.float64)
    for i, name in enumerate(names):
        column = Z[:, i].astype(np.float64)
        total = float(((column - column.mean()) ** 2).sum())
        sums = np.bincount(assign, weights=column, minlength=k)
        means = np.divide(sums, counts, out=np.zeros(k), where=counts > 0)
        between = float((counts * (means - column.mean()) ** 2).sum())
        share = between / total if total > 0 else 0.0
        out.append({"feature": name, "importance": round(share, 5), "std": 0.0})
    return sorted(out, key=lambda item: -item["importance"])


def fit(
    X: np.ndarray,
    names: list[str],
    *,
    seed: int,
    fixed_k: int | None = None,
    previous: ClusterModel | None = None,
    taken: set[str] | frozenset[str] = frozenset(),
) -> Clustering:
    """Choose k, fit on 80 % of the rows, grade on the other 20 %, describe and label."""
    rng = np.random.default_rng(seed + 2)
    held_rows = held_out_rows(len(X), seed)
    keep = np.ones(len(X), dtype=bool)
    keep[held_rows] = False
    fit_rows = np.flatnonzero(keep)
    pre = preprocess(names).fit(X[fit_rows])
    Z = pre.transform(X).astype(np.float32)
    k, curve = choose_k(Z[fit_rows[_sample(len(fit_rows), SAMPLE, rng)]], seed, fixed_k)
    kmeans = _kmeans(k, len(fit_rows), seed).fit(Z[fit_rows])
    assign = np.asarray(kmeans.predict(Z), dtype=np.int64)
    words = describe(kmeans.cluster_centers_, names)
    # stable labels: the previous champion's, matched by the profiles the clusters share
    kept: float | None = None
    labels_by_index: dict[int, str] = {}
    if previous is not None and previous.names == names:
        before = previous.assign(X)
        labels_by_index = match_labels(before, assign, k, previous.labels)
        old_of = np.array(previous.labels, dtype=object)[before]
        new_of = np.array([labels_by_index.get(i, "") for i in range(k)], dtype=object)[assign]
        kept = float(np.mean(old_of == new_of)) if len(X) else 1.0
    used = set(taken) | set(labels_by_index.values())
    labels = []
    for i in range(k):
        label = labels_by_index.get(i) or _unique(_slug(words[i]), used)
        used.add(label)
        labels.append(label)
    model = ClusterModel(pre, kmeans, labels, names)
    held = held_rows
    score = silhouette(Z[held], assign[held], seed)
    control = random_control(Z[held], k, seed)
    sizes = np.bincount(assign, minlength=k)
    medians = {name: float(np.nanmedian(X[:, j])) if len(X) else 0.0
               for j, name in enumerate(names)}  # fmt: skip
    clusters = []
    for i in np.argsort(-sizes):
        members = X[assign == i]
        clusters.append({
            "label": labels[i], "index": int(i), "description": words[i], "size": int(sizes[i]),
            "share": round(float(sizes[i]) / max(1, len(X)), 4),
            "centre": [round(float(v), 3) for v in kmeans.cluster_centers_[i]],
            "medians": {name: round(float(np.nanmedian(members[:, j])), 3) if len(members)
                        else None for j, name in enumerate(names)},
        })  # fmt: skip
    chosen = "fixed by the model's settings" if fixed_k else "best silhouette"
    summary = (
        f"{k} clusters ({chosen}); held-out silhouette {score:.3f} against {control:.3f} for "
        "random labels"
    )
    if kept is not None:
        summary += f"; {kept:.1%} of profiles keep their label from the previous champion"
    metrics = {
        "silhouette": score, "k": k, "chosen_by": "fixed" if fixed_k else "silhouette",
        "inertia": float(kmeans.inertia_), "labels_kept": kept,
        "algorithm": type(kmeans).__name__,
    }  # fmt: skip
    charts = {
        "elbow": curve,
        "scatter": _scatter(Z, assign, seed),
        "clusters": clusters,
        "population_medians": {n: round(v, 3) for n, v in medians.items()},
        "importance": _separation(Z[fit_rows], assign[fit_rows], k, names),
    }
    return Clustering(
        model=model, k=k, metrics=metrics, baseline_metrics={"silhouette": control},
        charts=charts, summary=summary,
        descriptions={labels[i]: words[i] for i in range(k)},
    )  # fmt: skip


def silhouette_of(model: ClusterModel, X: np.ndarray, Z_from: Pipeline, seed: int) -> float:
    """A (previous) model's silhouette on these rows, measured in another model's space — so
    two versions are graded on the same ground."""
    Z = Z_from.transform(X)
    return silhouette(Z, model.assign(X), seed)
