"""The experiments pages in headless Chromium against a live server: a marketer adds a metric
(the property field only for a sum) and an experiment through the forms, then starts it; the
results page of a running experiment with a sample-ratio mismatch and a failed guardrail
(banners, a blocked ship button, a card per metric with its interval bars, the lift over time,
the sample-size planner); what an analyst may not do; shipping a balanced experiment."""

from __future__ import annotations

import random
import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from activation.experiments import analysis, services
from activation.experiments.models import Experiment, ExperimentStatus, Exposure, Metric
from profiles.models import Profile, ProfileEvent
from tests.browser.test_csp import WATCH
from tests.fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# a draft (or any experiment without exposed units) cannot be planned yet: the page asks and
# shows the API's answer, a 400 the browser logs
NO_PLAN_YET = r"status of 400 \(Bad Request\).*/api/v1/experiments/\d+/power/"


def no_csp_violations(page: Page) -> None:
    assert page.evaluate("window.__csp") == []


def running_experiment(
    tenant: Tenant, *, key: str, units: dict[str, int], rates: dict[str, float],
    refunds: dict[str, float] | None = None, seed: int = 7,
) -> Experiment:  # fmt: skip
    """A running experiment started 30 days ago whose units (`units` per variant, the control
    first), exposed 20 days ago, bought at `rates` and asked for refunds at `refunds` (then
    with a lower-is-better guardrail on them) within 10 days of their exposure."""
    ws = tenant.workspace
    services.metric_create(workspace=ws, actor=None, data={
        "key": "purchase", "name": "Purchase", "kind": "conversion", "event": "Order Completed",
        "window_days": 14})  # fmt: skip
    data: dict[str, Any] = {
        "key": key, "name": key.replace("_", " ").capitalize(),
        "hypothesis": "A clearer page sells more",
        "variants": [{"key": k, "weight": 1} for k in units], "primary_metric": "purchase",
    }  # fmt: skip
    if refunds is not None:
        services.metric_create(workspace=ws, actor=None, data={
            "key": "refunds", "name": "Refunds", "kind": "count", "event": "Refund Issued",
            "window_days": 14, "higher_is_better": False})  # fmt: skip
        data["guardrail_metrics"] = ["refunds"]
    exp = services.experiment_start(
        experiment=services.experiment_create(workspace=ws, actor=None, data=data), actor=None
    )
    now = timezone.now()
    Experiment.objects.filter(pk=exp.pk).update(started_at=now - timedelta(days=30))
    exp.refresh_from_db()
    people = Profile.objects.bulk_create(
        [Profile(workspace=ws) for _ in range(sum(units.values()))]
    )
    rng = random.Random(seed)
    exposures, events, event_id = [], [], 900_000_000
    variants = [v for v, n in units.items() for _ in range(n)]
    for i, (profile, variant) in enumerate(zip(people, variants, strict=True)):
        exposed = now - timedelta(days=20, minutes=i)
        exposures.append(Exposure(experiment=exp, workspace_id=ws.pk, profile_id=profile.pk,
                                  variant=variant, exposed_at=exposed))  # fmt: skip
        for event, chance in (
            ("Order Completed", rates[variant]),
            ("Refund Issued", (refunds or {}).get(variant, 0.0)),
        ):
            if rng.random() < chance:
                after = rng.uniform(0.5, 10)
                event_id += 1
                events.append(ProfileEvent(
                    event_id=event_id, workspace_id=ws.pk, profile_id=profile.pk,
                    origin_profile_id=profile.pk, timestamp=exposed + timedelta(days=after),
                    type="track", event=event, properties={},
                ))  # fmt: skip
    Exposure.objects.bulk_create(exposures)
    ProfileEvent.objects.bulk_create(events)
    return exp


@pytest.fixture
def mismatched(tenant_a: Tenant) -> Experiment:
    """2,000 units split 1,100 / 900 (a sample-ratio mismatch), the treatment converting
    twice as often and the only one with refunds; analysed 15 days ago (half the outcomes
    in) and now."""
    exp = running_experiment(
        tenant_a, key="new_checkout", units={"control": 1_100, "treatment": 900},
        rates={"control": 0.08, "treatment": 0.16}, refunds={"treatment": 0.10},
    )  # fmt: skip
    now = timezone.now()
    for at in (now - timedelta(days=15), now):
        analysis.record_history(exp, analysis.analyse(exp, now=at))
        exp.refresh_from_db()
    assert len(exp.history) == 2 and exp.history[0]["lifts"] != exp.history[1]["lifts"]
    return exp


@pytest.fixture
def balanced(tenant_a: Tenant) -> Experiment:
    return running_experiment(
        tenant_a, key="hero_banner", units={"control": 150, "treatment": 150},
        rates={"control": 0.10, "treatment": 0.15},
    )  # fmt: skip


def test_a_marketer_adds_a_metric_and_an_experiment_and_starts_it(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, console: Any
) -> None:
    console.allow(NO_PLAN_YET)
    page.add_init_script(WATCH)
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/experiments/")
    expect(page.locator("#no-experiments")).to_be_visible()
    expect(page.locator("#experiments-table")).to_have_count(0)
    expect(page.locator("#no-metrics")).to_be_visible()
    expect(page.locator("#experiment-create")).to_be_disabled()  # no metric to decide yet

    form = page.locator("#metric-form")
    prop = form.locator("label[data-sum]")
    expect(prop).to_be_hidden()
    form.locator("[name=kind]").select_option("sum")
    expect(prop).to_be_visible()
    form.locator("[name=kind]").select_option("count")
    expect(prop).to_be_hidden()
    form.locator("[name=kind]").select_option("sum")
    expect(prop).to_be_visible()
    form.locator("[name=name]").fill("Revenue")
    form.locator("[name=key]").fill("revenue")
    form.locator("[name=event]").fill("Order Completed")
    form.locator("[name=property]").fill("revenue")
    form.locator("[name=window_days]").fill("14")
    form.locator("#metric-create").click()
    table = page.locator("#metrics-table")  # only there after the reload
    expect(table).to_contain_text("Revenue")
    expect(table).to_contain_text("sum of revenue")
    expect(page.locator("#no-metrics")).to_have_count(0)
    metric = Metric.objects.get(workspace=tenant_a.workspace, key="revenue")
    assert (metric.kind, metric.property, metric.window_days) == ("sum", "revenue", 14)
    no_csp_violations(page)

    form = page.locator("#experiment-form")
    form.locator("[name=name]").fill("Basket upsell")
    form.locator("[name=key]").fill("basket_upsell")
    form.locator("[name=primary_metric]").select_option("revenue")
    form.locator("[name=variants]").fill("control, treatment")
    form.locator("[name=coverage]").fill("50")
    form.locator("[name=hypothesis]").fill("Suggestions raise the basket")
    form.locator("#experiment-create").click()
    page.wait_for_url(re.compile(r"/experiments/\d+/$"))
    exp = Experiment.objects.get(workspace=tenant_a.workspace, key="basket_upsell")
    assert page.url.endswith(f"/experiments/{exp.pk}/")
    expect(page.locator("h1")).to_contain_text("Basket upsell")
    status = page.locator("#experiment-status")
    expect(status).to_have_text("draft")
    expect(page.locator("#experiment-what")).to_contain_text("50 % of traffic")
    expect(page.locator("#stop-experiment")).to_have_count(0)
    # the actions are drawn again once the results are in: click after that, or the button
    # may be replaced between the press and the release and the click lost
    expect(page.locator("#units .metric-tile")).to_have_count(2)

    page.locator("#start-experiment").click()
    expect(status).to_have_text("running")
    expect(page.locator("#start-experiment")).to_have_count(0)
    expect(page.locator("#stop-experiment")).to_be_visible()
    exp.refresh_from_db()
    assert exp.status == ExperimentStatus.RUNNING and exp.started_at is not None
    assert exp.coverage == pytest.approx(0.5)
    assert exp.variant_keys == ["control", "treatment"]
    assert exp.primary_metric.key == "revenue"
    no_csp_violations(page)

    page.goto(f"{live_server.url}/experiments/")
    expect(page.locator("#no-experiments")).to_have_count(0)
    row = page.locator(f'#experiments-table tr[data-experiment="{exp.pk}"]')
    expect(row).to_contain_text("Basket upsell")
    expect(row.locator(".pill")).to_have_text("running")


def test_results_show_the_mismatch_the_guardrail_the_lift_and_the_plan(
    live_server: Any, page: Page, tenant_a: Tenant, mismatched: Experiment, login_as: Any,
    screenshot: Any, console: Any,
) -> None:  # fmt: skip
    page.add_init_script(WATCH)
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/experiments/{mismatched.pk}/")
    expect(page.locator("#experiment-status")).to_have_text("running")
    tiles = page.locator("#units .metric-tile")
    expect(tiles).to_have_count(2)
    expect(tiles.nth(0)).to_contain_text("1,100")
    expect(tiles.nth(1)).to_contain_text("900")

    srm = page.locator("#banners #srm-banner")
    expect(srm).to_be_visible()
    expect(srm).to_contain_text("Sample-ratio mismatch")
    expect(page.locator("#ship-experiment")).to_be_disabled()
    expect(page.locator("#ship-experiment")).to_have_attribute("title", re.compile("mismatch"))
    guardrail = page.locator("#banners #guardrail-banner")
    expect(guardrail).to_be_visible()
    expect(guardrail).to_contain_text("treatment makes refunds significantly worse")

    cards = page.locator("section.metric-result")
    expect(cards).to_have_count(2)
    primary = page.locator('section.metric-result[data-metric="purchase"]')
    expect(primary.locator("h2")).to_contain_text("primary")
    row = primary.locator('tr[data-variant="treatment"]')
    expect(row).to_have_count(1)
    expect(row.locator("svg.ci-bar")).to_have_count(1)
    expect(row.locator("svg.ci-bar rect.range")).to_have_count(1)
    expect(row.locator(".pill")).to_have_text(re.compile(r"^(significant|not yet)$"))
    expect(row.locator("td.num strong")).to_have_text(re.compile(r"^\+\d+\.\d %$"))
    refunds = page.locator('section.metric-result[data-metric="refunds"]')
    expect(refunds.locator("h2")).to_contain_text("guardrail")
    expect(refunds.locator("h2")).to_contain_text("lower is better")
    expect(refunds.locator('tr[data-variant="treatment"] .pill')).to_have_text("significant")

    chart = page.locator("#history svg#lift-history")
    expect(chart).to_be_visible()
    expect(chart.locator("path.series")).to_have_count(1)
    expect(chart.locator("path.band")).to_have_count(1)

    expect(page.locator("#power-card #power-mde")).to_have_value("5")
    plan = page.locator("#power-result")
    expect(plan).to_contain_text("units per variant")
    expect(plan).to_contain_text("exposures a day")
    first = plan.locator("strong").inner_text()
    page.locator("#power-mde").fill("20")
    page.locator("#power-card button[type=submit]").click()
    expect(plan).to_contain_text("+20.0 %")
    assert plan.locator("strong").inner_text() != first  # a bigger change needs fewer units
    no_csp_violations(page)
    screenshot(page, "96-experiment-results")


def test_an_analyst_sees_the_results_but_cannot_act(
    live_server: Any, page: Page, tenant_a: Tenant, balanced: Experiment, login_as: Any,
    console: Any,
) -> None:  # fmt: skip
    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/experiments/{balanced.pk}/")
    expect(page.locator("#units .metric-tile")).to_have_count(2)  # the results have loaded
    expect(page.locator('section.metric-result[data-metric="purchase"]')).to_be_visible()
    expect(page.locator("#power-result")).to_contain_text("units per variant")
    actions = page.locator("#experiment-actions")
    expect(actions.locator("button")).to_have_count(0)
    expect(actions.locator("select")).to_have_count(0)
    page.goto(f"{live_server.url}/experiments/")
    expect(page.locator(f'#experiments-table tr[data-experiment="{balanced.pk}"]')).to_be_visible()
    expect(page.locator("#metrics-table")).to_contain_text("Purchase")
    expect(page.locator("#metric-form")).to_have_count(0)
    expect(page.locator("#experiment-form")).to_have_count(0)


def test_shipping_a_balanced_experiment(
    live_server: Any, page: Page, tenant_a: Tenant, balanced: Experiment, login_as: Any,
    console: Any,
) -> None:  # fmt: skip
    page.add_init_script(WATCH)
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/experiments/{balanced.pk}/")
    expect(page.locator("#units .metric-tile")).to_have_count(2)  # the results have loaded
    expect(page.locator("#srm-banner")).to_have_count(0)
    ship = page.locator("#ship-experiment")
    expect(ship).to_be_enabled()
    page.locator("#ship-variant").select_option("treatment")
    ship.click()
    status = page.locator("#experiment-status")
    expect(status).to_contain_text("shipped")
    expect(status).to_have_text("shipped → treatment")
    expect(page.locator("#ship-experiment")).to_have_count(0)
    expect(page.locator("#stop-experiment")).to_have_count(0)
    balanced.refresh_from_db()
    assert balanced.status == ExperimentStatus.SHIPPED
    assert balanced.winner == "treatment"
    assert balanced.stopped_at is not None
    no_csp_violations(page)
