"""Personalisation for the demo shop: two segments, a home-page hero with offers for them (one
by page context, one ranked by churn risk), a recommendations rail, an experiment on the hero's
copy, and every profile's decision record — so a new user opens a Decisions page with real
outcomes and can call /v1/decide at once. Safe to run again: what exists is left alone."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activation.decisions import records, services
from activation.decisions.models import Offer, Placement
from activation.experiments import services as experiments
from activation.experiments.models import Experiment, Metric
from cdp.models import Workspace
from segments.ml.models import MLModel
from segments.models import Segment
from segments.services import segment_create

SEGMENTS = [
    ("Loyal customers", {"trait": "order_count", "op": "gte", "value": 3}),
    (
        "Music club members",
        {"trait": "plan", "op": "in", "value": ["music-club", "music-club-plus"]},
    ),
]
HERO_SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {
        "title": {"type": "string", "maxLength": 80},
        "text": {"type": "string"},
        "url": {"type": "string"},
        "image": {"type": "string"},
    },
}
OFFERS: list[dict[str, Any]] = [
    {"key": "loyal_thanks", "name": "Thank you, loyal customer", "priority": 20,
     "eligibility": {"segment": "loyal-customers"}, "cap_day": 3,
     "content": {"title": "Thanks for coming back", "text": "15 % off your next album",
                 "url": "/offers/loyal"}},
    {"key": "club_weekend", "name": "Club weekend", "priority": 10,
     "eligibility": {"all": [{"segment": "music-club-members"},
                             {"context": "page.url", "op": "contains", "value": "/weekend"}]},
     "content": {"title": "Club weekend: double points", "url": "/club"}},
    {"key": "come_back", "name": "We miss you", "priority": 5,
     "eligibility": {"trait": "churn_risk", "op": "gte", "value": 0.6},
     "content": {"title": "We miss you", "text": "Here is what is new since your last visit",
                 "url": "/new"}},
    {"key": "newsletter", "name": "Newsletter", "priority": 0, "cap_week": 2,
     "content": {"title": "Get the weekly picks", "url": "/newsletter"}},
]  # fmt: skip


class Command(BaseCommand):
    help = "Create the demo's placements, offers and experiment, and every decision record."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", default="Demo", help="workspace name")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = Workspace.objects.filter(name=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"no workspace {options['workspace']!r}; load demo data first")
        for name, rule in SEGMENTS:
            if not Segment.objects.filter(workspace=workspace, name=name).exists():
                segment_create(workspace=workspace, name=name, rule=rule, publish=True)
        if not Placement.objects.filter(workspace=workspace, key="home_hero").exists():
            services.placement_create(workspace=workspace, actor=None, data={
                "key": "home_hero", "name": "Home hero", "content_schema": HERO_SCHEMA,
                "description": "The banner at the top of the home page",
                "default_content": {"title": "New this week", "url": "/new"}})  # fmt: skip
        scores = {k for m in MLModel.objects.with_champion().filter(workspace=workspace)
                  for k in m.trait_keys}  # fmt: skip
        for spec in OFFERS:
            if "churn_risk" in str(spec.get("eligibility")) and "churn_risk" not in scores:
                continue  # the churn model did not train
            if not Offer.objects.filter(workspace=workspace, key=spec["key"]).exists():
                services.offer_create(workspace=workspace, actor=None,
                                      data={**spec, "placement": "home_hero"})  # fmt: skip
        rail = MLModel.objects.filter(workspace=workspace, key="recommended").first()
        if rail and not Placement.objects.filter(workspace=workspace, key="for_you").exists():
            services.placement_create(workspace=workspace, actor=None, data={
                "key": "for_you", "name": "For you", "content_schema": {"type": "object"},
                "description": "The recommendations rail under the hero",
                "recommendations_model": "recommended", "recommendations_count": 6})  # fmt: skip
        if not Metric.objects.filter(workspace=workspace, key="purchase_14d").exists():
            experiments.metric_create(workspace=workspace, actor=None, data={
                "key": "purchase_14d", "name": "Purchase within 14 days", "kind": "conversion",
                "event": "Order Completed", "window_days": 14})  # fmt: skip
        if not Experiment.objects.filter(workspace=workspace, key="hero_copy").exists():
            made = experiments.experiment_create(workspace=workspace, actor=None, data={
                "key": "hero_copy", "name": "Hero copy", "primary_metric": "purchase_14d",
                "hypothesis": "A personal headline sells more than a generic one",
                "variants": [{"key": "generic", "weight": 1, "payload": {"tone": "generic"}},
                             {"key": "personal", "weight": 1, "payload": {"tone": "personal"}}],
            })  # fmt: skip
            experiments.experiment_start(experiment=made, actor=None)
        built = records.records_build_workspace(workspace.pk)
        self.stdout.write(f"  placements, offers and an experiment; {built:,} decision records")
