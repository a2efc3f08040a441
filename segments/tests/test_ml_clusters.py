"""Customer clusters on real purchases: CDNOW customers loaded through the collector, a
clusters model trained by real runs — k chosen by silhouette, a held-out silhouette above the
random-label control, clusters described in words, labels written as a computed trait that
the rule condition {"model", "cluster"} reads, stable labels across a retrain, renaming."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from cdp.errors import ValidationFailed
from profiles.models import Profile
from segments.ml import clusters, jobs, services
from segments.ml.models import MLModel, ModelVersion, RunStatus, VersionStatus
from segments.ml.serializers import ModelSerializer
from segments.services import rule_parse, segment_preview
from tests.fixtures import Tenant


def _train(model: MLModel, capture: Any) -> ModelVersion:
    with capture(execute=False):
        run = services.ml_train(model=model, actor=None)
    assert jobs.execute(run.pk) == RunStatus.SUCCEEDED, run.error
    run.refresh_from_db()
    return ModelVersion.objects.get(run=run)


def test_clusters_on_cdnow(cdnow: Tenant, django_capture_on_commit_callbacks: Any) -> None:
    workspace = cdnow.workspace
    model = services.ml_model_create(
        workspace=workspace, actor=None,
        data={"key": "customer_type", "name": "Customer types", "kind": "clusters",
              "config": {"seed": 7}},
    )  # fmt: skip
    version = _train(model, django_capture_on_commit_callbacks)
    m = version.metrics
    print(f"{version.rows} {m['summary']}")
    assert version.status == VersionStatus.CHAMPION
    assert version.score_metric == "silhouette"
    # thresholds that can fail: real structure, well above what random labels score
    assert 2 <= m["k"] <= 10 and m["chosen_by"] == "silhouette"
    assert m["silhouette"] > version.baseline_metrics["silhouette"] + 0.15
    elbow = version.charts["elbow"]
    assert [p["k"] for p in elbow] == list(range(2, 11))
    assert max(elbow, key=lambda p: p["silhouette"])["k"] == m["k"]
    inertias = [p["inertia"] for p in elbow]
    assert inertias[0] > inertias[-1]  # the elbow falls
    scatter = version.charts["scatter"]
    assert len(scatter["x"]) == len(scatter["cluster"]) > 100
    assert set(scatter["cluster"]) == set(range(m["k"]))
    described = version.charts["clusters"]
    assert len(described) == m["k"] and sum(c["size"] for c in described) == sum(
        version.rows.values()
    )
    assert all(c["description"] for c in described)
    # the words match the numbers: the cluster called "recent" has the lowest median recency
    by_recency = sorted(described, key=lambda c: c["medians"]["recency_days"])
    assert "lapsed" not in by_recency[0]["description"]
    assert "recent" not in by_recency[-1]["description"]

    # scoring wrote each consenting customer's label; the rule condition reads it
    model.refresh_from_db()
    labels = Counter(
        p.computed.get("customer_type")
        for p in Profile.objects.filter(workspace=workspace, merged_into__isnull=True)
    )
    labels.pop(None, None)
    assert sum(labels.values()) == model.scored_count > 3_000
    assert set(labels) == {c["label"] for c in described}
    biggest = max(labels, key=lambda label: labels[label])
    preview = segment_preview(
        workspace=workspace, rule={"model": "customer_type", "cluster": biggest}
    )
    assert preview.count == labels[biggest]
    two = sorted(labels)[:2]
    either = segment_preview(workspace=workspace, rule={"model": "customer_type", "cluster": two})
    assert either.count == labels[two[0]] + labels[two[1]]
    negated = segment_preview(
        workspace=workspace, rule={"not": {"model": "customer_type", "cluster": biggest}}
    )
    everyone = Profile.objects.filter(workspace=workspace, merged_into__isnull=True).count()
    assert negated.count == everyone - labels[biggest]

    # clear errors for a wrong model or label
    with pytest.raises(ValidationFailed) as bad_model:
        rule_parse(workspace=workspace, rule={"model": "nope", "cluster": biggest})
    assert "no clusters model 'nope' (clusters models: customer_type)" in str(
        bad_model.value.detail
    )
    with pytest.raises(ValidationFailed) as bad_label:
        rule_parse(workspace=workspace, rule={"model": "customer_type", "cluster": "loyal"})
    assert f"customer_type has no cluster 'loyal'; its clusters: {biggest} (" in str(
        bad_label.value.detail
    )

    # rename: the label stays (rules keep working), the name changes
    services.ml_model_update(
        model=model, actor=None, data={"cluster_names": {biggest: "Our regulars"}}
    )
    model.refresh_from_db()
    shown = {c["label"]: c for c in ModelSerializer(model).data["clusters"]}
    assert shown[biggest]["name"] == "Our regulars" and shown[biggest]["renamed"]
    with pytest.raises(ValidationFailed) as bad_rename:
        services.ml_model_update(model=model, actor=None, data={"cluster_names": {"x": "y"}})
    assert "no cluster 'x'" in str(bad_rename.value.detail)

    # retrained with another seed on the same data: the same people keep the same labels
    services.ml_model_update(model=model, actor=None, data={"config": {"seed": 11}})
    again = _train(model, django_capture_on_commit_callbacks)
    print(again.metrics["summary"], again.reason)
    assert again.metrics["labels_kept"] >= 0.95
    assert {c["label"] for c in again.charts["clusters"]} >= {biggest}
    model.refresh_from_db()
    assert model.cluster_labels()[biggest] == "Our regulars"


def test_same_seed_same_clusters_and_fixed_k() -> None:
    rng = np.random.default_rng(3)
    blobs = np.vstack([rng.normal(c, 0.3, size=(300, 4)) for c in (0, 3, 6)]).astype(np.float32)
    names = ["orders", "revenue_sum", "recency_days", "tenure_days"]
    a = clusters.fit(blobs, names, seed=5)
    b = clusters.fit(blobs, names, seed=5)
    assert a.k == b.k == 3
    assert a.model.labels == b.model.labels
    assert (a.model.assign(blobs) == b.model.assign(blobs)).all()
    fixed = clusters.fit(blobs, names, seed=5, fixed_k=4)
    assert fixed.k == 4 and fixed.metrics["chosen_by"] == "fixed"
    # labels follow the people, not the centre's index: a refit with another seed matches them
    other = clusters.fit(blobs, names, seed=99, previous=a.model)
    assert other.metrics["labels_kept"] == 1.0
    assert sorted(other.model.labels) == sorted(a.model.labels)


def test_clusters_config_is_checked(tenant_a: Tenant) -> None:
    with pytest.raises(ValidationFailed) as bad:
        services.ml_model_create(
            workspace=tenant_a.workspace, actor=None,
            data={"key": "types", "name": "Types", "kind": "clusters",
                  "config": {"k": 1, "features": ["orders", "shoe_size"], "horizon_days": 30}},
        )  # fmt: skip
    fields = bad.value.detail["fields"]
    assert "from 2 to 10" in str(fields["config.k"])
    assert "unknown features shoe_size" in str(fields["config.features"])
    assert fields["config.horizon_days"] == ["not a setting of clusters models"]


def test_a_model_whose_output_segments_read_cannot_be_deleted(
    tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    from cdp.errors import Conflict
    from segments.models import Segment
    from segments.services import segment_create, segment_delete

    rng = np.random.default_rng(1)
    model = services.ml_model_create(
        workspace=tenant_a.workspace, actor=None,
        data={"key": "kinds", "name": "Kinds", "kind": "clusters"},
    )  # fmt: skip
    # a champion made by hand from blobs (no events needed to test the guard)
    fitted = clusters.fit(rng.normal(size=(200, 3)).astype(np.float32),
                          ["orders", "revenue_sum", "recency_days"], seed=1, fixed_k=2)  # fmt: skip
    version = ModelVersion.objects.create(
        model=model, number=1, status=VersionStatus.CHAMPION, charts=fitted.charts,
        score_metric="silhouette", score=0.3, artefact=b"", artefact_sha256="", sklearn_version="",
    )  # fmt: skip
    MLModel.objects.filter(pk=model.pk).update(champion=version)
    label = fitted.model.labels[0]
    segment = segment_create(
        workspace=tenant_a.workspace, name="In the first kind",
        rule={"model": "kinds", "cluster": label}, publish=True,
    )  # fmt: skip
    model.refresh_from_db()
    with pytest.raises(Conflict) as refused:
        services.ml_model_delete(model=model, actor=None)
    assert refused.value.code == "model_in_use"
    assert "'In the first kind'" in str(refused.value)
    segment_delete(segment=Segment.objects.get(pk=segment.pk), actor=None)
    services.ml_model_delete(model=model, actor=None)
    assert not MLModel.objects.filter(pk=model.pk).exists()
