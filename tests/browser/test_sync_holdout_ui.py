"""A sync's campaign holdout in headless Chromium against a live server: without one the card
explains it; the form shows the API's refusal of a share above 50 %, then starts a 20 %
holdout; after a run and an analysis the card gives each side's members (as the exposures
say), the lift and a link to the experiment's results; stopping it (confirmed) leaves the
card stopped with the form back.

Runs are planned by the test (no worker: the page's own run requests stay queued).
Full-page screenshots, and one of the card alone, go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Dialog, Page, expect

from activation.experiments import analysis
from activation.experiments import services as experiments
from activation.experiments.models import Experiment, Exposure
from activation.models import Sync
from activation.syncs import planner
from activation.tests.helpers import people, pro_segment, sync_of, webhook
from activation.tests.receiver import receiver
from profiles.models import Identity
from tests.fixtures import Tenant, send_events

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

Shoot = Callable[[Page, str], Path]


def shoot_card(page: Page, screenshot: Shoot, name: str) -> None:
    """The whole page, and the holdout card alone (easier to read)."""
    path = screenshot(page, name)
    page.locator("#holdout-card").screenshot(path=str(path.with_name(f"{name}-card.png")))


def test_a_holdout_from_the_sync_page(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, console: Any, screenshot: Shoot
) -> None:
    people(tenant_a, 60)
    segment = pro_segment(tenant_a)
    experiments.metric_create(workspace=tenant_a.workspace, actor=None, data={
        "key": "purchase", "name": "Purchase", "kind": "conversion",
        "event": "Order Completed", "window_days": 14})  # fmt: skip
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, batch_size=50)
        sync = sync_of(tenant_a, segment, destination,
                       mapping={"identifiers": [{"type": "user_id"}]})  # fmt: skip
    sync_url = f"{live_server.url}/syncs/{sync.pk}/"
    console.allow(rf"status of 400 .*/api/v1/syncs/{sync.pk}/")  # the refused share, below
    login_as(tenant_a.users["marketer"])  # a marketer manages syncs

    # ---- no holdout: the explanation and the form ---------------------------------------------
    page.goto(sync_url)
    card = page.locator("#holdout-card")
    expect(card.locator("#no-holdout")).to_contain_text("Withhold a random, stable share")
    expect(card.locator(".pill")).to_have_count(0)
    form = card.locator("#holdout-form")
    expect(form).to_be_visible()
    expect(form.locator("select[name=metric] option")).to_have_text(["Purchase"])
    expect(page.locator("#runs-table, #no-runs")).to_have_count(1)
    screenshot(page, "holdout-01-none")

    # a share above the 50 % the input allows reaches the API, which refuses it at the field
    form.locator("input[name=percent]").evaluate("input => input.removeAttribute('max')")
    form.locator("input[name=percent]").fill("80")
    form.get_by_role("button", name="Start a holdout").click()
    error = card.locator("#holdout-error")
    expect(error).to_be_visible()
    expect(error).to_have_text("holdout.percent: a share of the members from 0.5 to 50 (%)")
    shoot_card(page, screenshot, "holdout-02-error")
    sync.refresh_from_db()
    assert sync.holdout_experiment_id is None

    # ---- 20 % judged by Purchase: the page reloads with the running holdout ----------------
    form.locator("input[name=percent]").fill("20")
    form.locator("select[name=metric]").select_option("purchase")
    form.get_by_role("button", name="Start a holdout").click()
    expect(card.locator(".pill")).to_have_text("running")
    expect(card.locator("#no-holdout")).to_have_count(0)
    expect(card.locator("#holdout-form")).to_have_count(0)
    expect(card.locator("#holdout-what")).to_contain_text("20 % of the members are withheld")
    expect(card.locator("#holdout-held")).to_have_text("0")
    expect(card.locator("#holdout-treated")).to_have_text("0")
    expect(card.locator("#holdout-lift")).to_have_text("—")
    expect(card.locator("#stop-holdout")).to_be_visible()
    shoot_card(page, screenshot, "holdout-03-started")
    sync.refresh_from_db()
    experiment = sync.holdout_experiment
    assert experiment is not None and experiment.status == "running"

    # ---- a run withholds its share; some members buy; the experiment is analysed -----------
    run = planner.plan(sync.pk, kind="full")
    assert run is not None and run.error == ""
    sides = dict(
        Exposure.objects.filter(experiment=experiment).values_list("profile_id", "variant")
    )
    held = sum(side == "holdout" for side in sides.values())
    treated = sum(side == "treated" for side in sides.values())
    assert held + treated == 60 and held >= 2 and treated >= 2
    assert (run.skipped_holdout, run.added) == (held, treated)
    user_of = dict(Identity.objects.filter(type="user_id").values_list("profile_id", "value"))
    # every second treated member and every third held one buy: both rates strictly between
    # 0 and 1 whatever the seed drew (a control rate of 0 or 1 has no power plan, and the
    # experiment page's request for one would answer 400)
    treated_ids = sorted(p for p, side in sides.items() if side == "treated")
    held_ids = sorted(p for p, side in sides.items() if side == "holdout")
    buyers = [user_of[p] for p in treated_ids[::2] + held_ids[::3]]
    send_events(Client(), tenant_a, *[
        {"type": "track", "userId": u, "event": "Order Completed",
         "properties": {"revenue": 10}} for u in buyers])  # fmt: skip
    experiment = Experiment.objects.get(pk=experiment.pk)
    results = analysis.analyse(experiment)
    assert results["units"] == {"holdout": held, "treated": treated}
    analysis.record_history(experiment, results)

    page.reload()
    expect(card.locator("#holdout-held")).to_have_text(str(held))
    expect(card.locator("#holdout-treated")).to_have_text(str(treated))
    expect(card.locator("#holdout-lift")).to_have_text(re.compile(r"^[+-]\d+(\.\d+)? %$|^[+-]\d"))
    expect(card.locator("#holdout-lift")).not_to_have_text("—")
    expect(card).not_to_contain_text("analysed every 6 hours")
    held_column = page.locator("#runs-table thead th").nth(8)
    expect(held_column).to_have_text("Held out")
    expect(page.locator("#runs-table tbody tr").first.locator("td").nth(8)).to_have_text(str(held))
    shoot_card(page, screenshot, "holdout-04-running")

    # the results link opens the experiment's page, with each side's exposed units
    results_link = card.locator("#holdout-results")
    expect(results_link).to_have_attribute("href", f"/experiments/{experiment.pk}/")
    results_link.click()
    expect(page).to_have_url(f"{live_server.url}/experiments/{experiment.pk}/")
    expect(page.locator("h1")).to_contain_text(f"Holdout of {sync.name}")
    expect(page.locator("#experiment-status")).to_have_text("running")
    tiles = page.locator("#units .metric-tile")
    expect(tiles).to_have_count(2)
    expect(tiles.nth(0)).to_contain_text(f"holdout{held}")
    expect(tiles.nth(1)).to_contain_text(f"treated{treated}")
    expect(page.locator("#metrics")).to_contain_text("Purchase")
    screenshot(page, "holdout-05-experiment")

    # ---- stop it: confirmed, the card says stopped and offers the form again ---------------
    page.goto(sync_url)
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    card.locator("#stop-holdout").click()
    expect(card.locator(".pill")).to_have_text("stopped")
    assert asked == [
        "Stop the holdout? The held-out members are sent at the next run; the results stay."
    ]
    expect(card.locator("#stop-holdout")).to_have_count(0)
    expect(card.locator("#holdout-what")).to_contain_text(
        "This holdout is stopped: 20 % of the members were withheld"
    )
    expect(card.locator("h3")).to_have_text("Start a new holdout")
    expect(card.locator("#holdout-form")).to_be_visible()
    expect(card.locator("#holdout-held")).to_have_text(str(held))  # the results stay
    expect(card.locator("#holdout-results")).to_be_visible()
    shoot_card(page, screenshot, "holdout-06-stopped")
    assert Experiment.objects.get(pk=experiment.pk).status == "stopped"
    assert Sync.objects.get(pk=sync.pk).resync_requested
