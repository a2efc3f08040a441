"""Campaign holdouts: an audience sync withholds a stable share of its members, decided by the
experiments engine (one exposure per member, the same side in every run and after a full
resync), reports each side's size, and its experiment's results give the lift of the chosen
metric; stopping the holdout sends the held-out members."""

from __future__ import annotations

import pytest
from django.test import Client

from activation.experiments import analysis
from activation.experiments import services as experiments
from activation.experiments.models import Exposure
from activation.serializers import SyncSerializer
from activation.syncs import services as sync_services
from activation.tests.helpers import drain, people, pro_segment, run, sync_of, webhook
from activation.tests.receiver import receiver
from cdp.errors import ValidationFailed
from tests.fixtures import Tenant, send_events

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_holdout_withholds_a_stable_share_and_measures_the_lift(tenant_a: Tenant) -> None:
    people(tenant_a, 200)
    segment = pro_segment(tenant_a)
    experiments.metric_create(workspace=tenant_a.workspace, actor=None, data={
        "key": "purchase", "name": "Purchase", "kind": "conversion",
        "event": "Order Completed", "window_days": 14})  # fmt: skip
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, batch_size=50)
        with pytest.raises(ValidationFailed) as bad:
            sync_of(tenant_a, segment, destination, holdout={"percent": 80, "metric": "nope"})
        assert set(bad.value.fields) == {"holdout.percent", "holdout.metric"}
        sync = sync_of(tenant_a, segment, destination, mapping={"identifiers": [
            {"type": "user_id"}]}, holdout={"percent": 20, "metric": "purchase"})  # fmt: skip
        first = run(sync)
        assert first is not None
        assert first.added + first.skipped_holdout == 200
        assert 20 <= first.skipped_holdout <= 60  # 20 % of 200, give or take chance
        drain(destination)
        sent = {i["data"]["identifiers"]["user_id"][0] for i in hook.accepted_items()}
        assert sync.holdout_experiment is not None
        experiment = sync.holdout_experiment
        sides = dict(Exposure.objects.filter(experiment=experiment)
                     .values_list("profile_id", "variant"))  # fmt: skip
        assert len(sides) == 200 and sum(v == "holdout" for v in sides.values()) == (
            first.skipped_holdout
        )
        assert len(sent) == first.added
        # a full resync keeps every member on its side
        again = run(sync, "full")
        assert again is not None and (again.added, again.removed) == (0, 0)
        assert again.skipped_holdout == first.skipped_holdout
        shown = SyncSerializer(sync.__class__.objects.get(pk=sync.pk)).data["holdout"]
        assert shown["percent"] == 20 and shown["status"] == "running"
        assert shown["members"]["holdout"] == first.skipped_holdout
        # the treated convert more: the experiment's results say so
        from profiles.models import Identity

        user_of = dict(Identity.objects.filter(type="user_id").values_list("profile_id", "value"))
        buyers = [
            user_of[p]
            for p, side in sides.items()
            if (side == "treated" and p % 2 == 0) or (side == "holdout" and p % 10 == 0)
        ]
        send_events(Client(), tenant_a, *[
            {"type": "track", "userId": u, "event": "Order Completed",
             "properties": {"revenue": 10}} for u in buyers])  # fmt: skip
        results = analysis.analyse(experiment)
        primary = results["metrics"][0]
        assert primary["metric"] == "purchase"
        assert results["units"] == {"holdout": first.skipped_holdout, "treated": first.added}
        means = {v["variant"]: v["mean"] for v in primary["variants"]}
        assert means["treated"] > means["holdout"]
        lift = primary["comparisons"][0]
        assert lift["variant"] == "treated" and lift["absolute"] > 0.2
        # a running holdout's split cannot change midway; stopping it sends the held-out
        with pytest.raises(ValidationFailed):
            sync_services.sync_update(
                sync=sync, data={"holdout": {"percent": 5, "metric": "purchase"}}
            )
        sync_services.sync_update(sync=sync, data={"holdout": None})
        released = run(sync, "full")
        assert released is not None and released.added == first.skipped_holdout
        assert released.skipped_holdout == 0
