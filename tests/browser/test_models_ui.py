"""The ML model pages in headless Chromium against a live server: the models list with a
trained churn model, its page with the champion's metrics against the baseline and its
charts (ROC, calibration, lift, importance), drift, versions, runs; a run in progress shows
its progress bar and can be cancelled; "Train now" makes a second version; creating a model
from the list page; roles (an analyst sees, does not act)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from cdp.celery import app
from consent.services import purposes_install_defaults
from profiles.models import Profile, ProfileEvent
from segments.ml import jobs, services
from segments.ml.models import MLModel, RunStatus, TrainingRun
from tests.browser.test_csp import WATCH
from tests.fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def churn(tenant_a: Tenant) -> MLModel:
    """A shop of 240 customers over a year (a third loyal to the end, the rest stopping at
    random) and a churn model trained on it."""
    purposes_install_defaults(workspace=tenant_a.workspace)
    rng = random.Random(11)
    now = timezone.now()
    rows, event_id = [], 70_000_000
    for i in range(240):
        profile = Profile.objects.create(workspace=tenant_a.workspace)
        stop = 0 if i % 3 == 0 else rng.uniform(30, 330)
        day = 365 - rng.uniform(0, 30)
        while day > stop:
            event_id += 1
            rows.append(ProfileEvent(
                event_id=event_id, workspace_id=tenant_a.workspace.pk, profile_id=profile.pk,
                origin_profile_id=profile.pk, timestamp=now - timedelta(days=day),
                type="track", event="Order Completed", properties={"revenue": rng.choice([10, 40])},
            ))  # fmt: skip
            day -= rng.uniform(10, 30)
    ProfileEvent.objects.bulk_create(rows)
    model = services.ml_model_create(
        workspace=tenant_a.workspace, actor=None,
        data={"key": "churn_risk", "name": "Churn risk", "kind": "churn",
              "config": {"event": "Order Completed", "horizon_days": 60}},
    )  # fmt: skip
    run = TrainingRun.objects.create(model=model)
    assert jobs.execute(run.pk) == RunStatus.SUCCEEDED
    return model


def no_csp_violations(page: Page) -> None:
    assert page.evaluate("window.__csp") == []


def test_model_pages_show_how_good_the_model_is(
    live_server: Any, page: Page, tenant_a: Tenant, churn: MLModel, login_as: Any,
    screenshot: Any, console: Any, monkeypatch: Any,
) -> None:  # fmt: skip
    page.add_init_script(WATCH)
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/models/")
    row = page.locator(f'#models-table tr[data-model="{churn.pk}"]')
    expect(row).to_contain_text("Churn risk")
    expect(row.locator(".run-cell .pill")).to_have_text("succeeded")
    expect(row).to_contain_text("churn_risk_decile")
    auc = float(row.locator("td.num strong").inner_text())
    assert 0.75 < auc <= 1
    no_csp_violations(page)
    screenshot(page, "90-models-list")

    row.locator("a").click()
    expect(page.locator("h1")).to_have_text("Churn risk")
    expect(page.locator("#model-what")).to_contain_text("no “Order Completed” in the next 60 days")
    champion = page.locator("#champion")
    expect(champion.locator(".lead")).to_contain_text("baseline")
    expect(champion.locator(".metric-tile")).to_have_count(4)
    for chart in ("#roc-chart", "#calibration-chart", "#lift-chart", "#importance-chart"):
        expect(page.locator(chart)).to_be_visible()
    expect(page.locator("#roc-chart path.series.model")).to_have_count(1)
    expect(page.locator("#lift-chart rect.bar")).to_have_count(10)
    expect(page.locator("#drift-card")).to_be_visible()
    expect(page.locator('#versions tr[data-version="1"] .pill')).to_have_text("champion")
    expect(page.locator("#runs .run-item")).to_have_count(1)
    page.locator("#runs .run-head").first.click()
    expect(page.locator("#runs .run-log").first).to_contain_text("evaluating")
    no_csp_violations(page)
    screenshot(page, "91-model-page")

    # a scored profile's page shows the score with the version that wrote it
    scored = next(p for p in Profile.objects.all() if "churn_risk" in p.computed)
    page.goto(f"{live_server.url}/profiles/{scored.pk}/")
    panel = page.locator("#model-scores")
    expect(panel.locator('tr[data-model="churn_risk"]')).to_contain_text("v1")
    expect(panel.locator("meter")).to_have_count(1)
    panel.screenshot(
        path=str(screenshot(page, "93-profile-scores").with_name("93b-scores-panel.png"))
    )
    page.goto(f"{live_server.url}/models/{churn.pk}/")

    # Train now (the worker's task runs at once here): a second version, the same data and
    # seed, so at least as good: it becomes the champion and v1 can be rolled back to
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    page.locator("#train-now").click()
    status = '#versions tr[data-version="{}"] .pill'
    expect(page.locator(status.format(2))).to_have_text("champion")
    expect(page.locator(status.format(1))).to_have_text("retired")
    page.locator('#versions tr[data-version="1"] .promote').click()
    expect(page.locator(status.format(1))).to_have_text("champion")
    expect(page.locator(status.format(2))).to_have_text("retired")
    churn.refresh_from_db()
    assert churn.champion is not None and churn.champion.number == 1
    no_csp_violations(page)


def test_a_run_in_progress_and_its_cancellation(
    live_server: Any, page: Page, tenant_a: Tenant, churn: MLModel, login_as: Any,
    screenshot: Any, console: Any,
) -> None:  # fmt: skip
    run = TrainingRun.objects.create(
        model=churn, status=RunStatus.RUNNING, stage="training", percent=45,
        log="12:00:00 features: 240 profiles\n",
    )  # fmt: skip
    login_as(tenant_a.users["admin"])
    page.goto(f"{live_server.url}/models/")
    bar = page.locator(f'#models-table tr[data-model="{churn.pk}"] progress')
    expect(bar).to_have_attribute("value", "45")
    TrainingRun.objects.filter(pk=run.pk).update(percent=75, stage="evaluating")
    expect(page.locator(f'tr[data-model="{churn.pk}"] .run-stage')).to_have_text(
        "evaluating · 75 %"
    )
    page.goto(f"{live_server.url}/models/{churn.pk}/")
    expect(page.locator("#run-card")).to_be_visible()
    expect(page.locator("#run-card progress")).to_have_attribute("value", "75")
    expect(page.locator("#train-now")).to_be_disabled()
    screenshot(page, "92-model-training")
    page.locator("#cancel-run").click()
    expect(page.locator("#run-now")).to_contain_text("cancelling…")
    assert TrainingRun.objects.get(pk=run.pk).cancel_requested


def test_creating_a_model_and_what_an_analyst_may_do(
    live_server: Any, page: Page, tenant_a: Tenant, churn: MLModel, login_as: Any,
    console: Any, monkeypatch: Any,
) -> None:  # fmt: skip
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    console.allow(r"status of 409 \(Conflict\).*/api/v1/models/")  # the taken key, shown
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/models/")
    form = page.locator("#model-form")
    form.locator("[name=name]").fill("Buys again")
    form.locator("[name=key]").fill("churn_risk")  # taken: the API says so
    form.locator("[name=kind]").select_option("propensity")
    form.locator("[name=horizon_days]").fill("30")
    form.locator("#model-create").click()
    expect(page.locator("#model-error")).to_contain_text("key")
    form.locator("[name=key]").fill("buys_again")
    form.locator("#model-create").click()
    page.wait_for_url("**/models/*/")
    expect(page.locator("h1")).to_have_text("Buys again")
    expect(page.locator('#versions tr[data-version="1"] .pill')).to_have_text("champion")

    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/models/{churn.pk}/")
    expect(page.locator("#champion .lead")).to_be_visible()
    expect(page.locator("#train-now")).to_have_count(0)
    expect(page.locator(".promote")).to_have_count(0)
    page.goto(f"{live_server.url}/models/")
    expect(page.locator("#model-form")).to_have_count(0)
