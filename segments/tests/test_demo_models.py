"""`bin/start --demo-data` trains the three kinds of model on what it loaded: a new user
opens real clusters, churn scores and recommendations."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from cdp.models import Workspace
from profiles.models import Profile
from segments.ml.models import MLModel, RunStatus, VersionStatus


@pytest.mark.django_db(transaction=True)
def test_demo_models_are_trained_on_the_demo_data() -> None:
    call_command("cdp_demo_data", profiles=400, workspace="Demo ML", stdout=io.StringIO())
    out = io.StringIO()
    call_command("cdp_demo_models", workspace="Demo ML", stdout=out)
    print(out.getvalue())
    workspace = Workspace.objects.get(name="Demo ML")
    models = {
        m.key: m for m in MLModel.objects.filter(workspace=workspace).select_related("champion")
    }
    assert set(models) == {"customer_type", "churn_risk", "recommended"}
    for model in models.values():
        run = model.runs.get()
        assert run.status == RunStatus.SUCCEEDED, (model.key, run.error)
        assert model.champion is not None and model.champion.status == VersionStatus.CHAMPION
        assert model.scored_count > 0
    # the films the first customers watched give the recommendations something to learn
    recs = models["recommended"].champion
    assert recs is not None and recs.rows["items"] > 500
    assert recs.metrics["ndcg_at_10"] > recs.baseline_metrics["ndcg_at_10"]
    profile = Profile.objects.filter(workspace=workspace, computed__has_key="recommended").first()
    assert profile is not None and len(profile.computed["recommended"]) == 10
    assert profile.computed.get("customer_type") in models["customer_type"].cluster_labels()
    assert "Customer types: v1" in out.getvalue() and "Recommended for you: v1" in out.getvalue()
    # again: retrained, history kept
    call_command("cdp_demo_models", workspace="Demo ML", stdout=io.StringIO())
    assert MLModel.objects.get(workspace=workspace, key="churn_risk").versions.count() == 2
