"""The pages of the clusters and recommendations models in headless Chromium against a live
server, on real data sent through the collector: 300 CDNOW customers, the first 150 of whom
also watched MovieLens-100k films. A clusters model's page (the lead, silhouette and elbow by
k, the PCA map, a row per cluster, renaming, "Create segment"), the builder's "in cluster"
condition and its live count, a recommendation model's page (NDCG@10, the candidates, "try
it", the catalogue's availability), the profile page's models panel, the new-model form's
fields per kind, and what an analyst may do."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, expect

from consent.services import purposes_install_defaults
from profiles.demo.cdnow import demo_batches, load_cdnow, user_id_of
from profiles.demo.movielens import load_movielens, movielens_batches
from profiles.models import Profile
from profiles.pipeline import queue
from segments.ml import jobs, services
from segments.ml.models import Item, MLModel, RunStatus
from segments.models import Segment
from tests.browser.test_csp import WATCH
from tests.fixtures import Tenant, post_collector

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 300  # CDNOW customers: about 3,000 events
FILM_WATCHERS = 150  # MovieLens people (about 15,000 film views), given the first customers' ids


def _send(tenant: Tenant, batches: Any) -> int:
    client = Client()
    sent = 0
    for batch in batches:
        response = post_collector(client, "/v1/batch", {"batch": batch}, write_key=tenant.write_key)
        assert response.status_code == 200, response.content
        sent += len(batch)
    while queue.drain(batch_size=2000)[1]:
        pass
    return sent


def _train(model: MLModel) -> MLModel:
    started = time.monotonic()
    run = services.ml_train(model=model, actor=None, queue=False)
    assert jobs.execute(run.pk) == RunStatus.SUCCEEDED, run.error
    model.refresh_from_db()
    assert model.champion is not None
    print(f"{model.key}: trained and scored in {time.monotonic() - started:.1f} s")
    return model


@pytest.fixture
def purchases(tenant_a: Tenant) -> Tenant:
    """The first CDNOW customers' visits and purchases, as the demo data sends them."""
    purposes_install_defaults(workspace=tenant_a.workspace)
    started = time.monotonic()
    batches = demo_batches(load_cdnow(), profiles=CUSTOMERS, seed=1997, now=timezone.now())
    sent = _send(tenant_a, batches)
    print(f"CDNOW: {sent:,} events in {time.monotonic() - started:.1f} s")
    return tenant_a


@pytest.fixture
def film_views(tenant_a: Tenant) -> Tenant:
    """MovieLens-100k film views of its first people, who are (as in the demo data) the first
    CDNOW customers: with `purchases` too, profiles with both a cluster and films. Their
    consent choices come with their first view, so this works without `purchases`."""
    purposes_install_defaults(workspace=tenant_a.workspace)
    started = time.monotonic()
    customers = sorted({p.customer_id for p in load_cdnow()})[:FILM_WATCHERS]
    by_rank = dict(enumerate(customers, start=1))  # MovieLens user ids run from 1
    ratings, films = load_movielens()
    batches = movielens_batches(
        ratings, films, now=timezone.now(), users=FILM_WATCHERS,
        user_id=lambda user: user_id_of(by_rank[user]),
    )  # fmt: skip
    sent = _send(tenant_a, batches)
    print(f"MovieLens: {sent:,} events in {time.monotonic() - started:.1f} s")
    return tenant_a


@pytest.fixture
def clusters(purchases: Tenant) -> MLModel:
    model = services.ml_model_create(
        workspace=purchases.workspace, actor=None,
        data={"key": "customer_type", "name": "Customer types", "kind": "clusters",
              "config": {"seed": 7}},
    )  # fmt: skip
    return _train(model)


@pytest.fixture
def recommendations(film_views: Tenant) -> MLModel:
    model = services.ml_model_create(
        workspace=film_views.workspace, actor=None,
        data={"key": "next_items", "name": "Next items", "kind": "recommendations",
              "config": {"seed": 7, "exclude": "interacted"}},
    )  # fmt: skip
    return _train(model)


def no_csp_violations(page: Page) -> None:
    assert page.evaluate("window.__csp") == []


def live_profiles(tenant: Tenant) -> Any:
    return Profile.objects.filter(workspace=tenant.workspace, merged_into__isnull=True)


def wait_for(check: Callable[[], bool], seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_clusters_model_page(
    live_server: Any, page: Page, tenant_a: Tenant, clusters: MLModel, login_as: Any,
    screenshot: Any, console: Any,
) -> None:  # fmt: skip
    assert clusters.champion is not None
    described = clusters.champion.charts["clusters"]
    scatter = clusters.champion.charts["scatter"]
    assert len(described) >= 2 and len(scatter["x"]) > 100
    page.add_init_script(WATCH)
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/models/{clusters.pk}/")
    expect(page.locator("h1")).to_have_text("Customer types")
    expect(page.locator("#champion .lead")).to_contain_text(f"{len(described)} clusters")
    for chart in ("#silhouette-chart", "#elbow-chart", "#scatter-chart"):
        expect(page.locator(chart)).to_be_visible()
    expect(page.locator("#silhouette-chart circle.point.chosen")).to_have_count(1)
    dots = page.locator("#scatter-chart circle.dot")
    expect(dots).to_have_count(len(scatter["x"]))
    assert dots.count() > 100

    # one row per cluster of the champion, biggest first
    rows = page.locator("#kind-extra tr[data-label]")
    expect(rows).to_have_count(len(described))
    assert [rows.nth(i).get_attribute("data-label") for i in range(len(described))] == [
        c["label"] for c in described
    ]
    first = described[0]["label"]
    name = rows.first.locator("input.cluster-name")
    expect(name).to_have_value(clusters.cluster_labels()[first])
    expect(name).to_be_enabled()
    no_csp_violations(page)
    screenshot(page, "93-clusters-model")

    # renaming: saved on change, shown after a reload; the label stays
    name.fill("Our regulars")
    name.press("Enter")
    assert wait_for(
        lambda: MLModel.objects.get(pk=clusters.pk).cluster_names.get(first) == "Our regulars"
    ), MLModel.objects.get(pk=clusters.pk).cluster_names
    page.reload()
    renamed = page.locator(f'#kind-extra tr[data-label="{first}"] input.cluster-name')
    expect(renamed).to_have_value("Our regulars")
    expect(page.locator("#scatter-chart").locator("..").locator(".chart-legend")).to_contain_text(
        "Our regulars"
    )
    clusters.refresh_from_db()
    assert clusters.cluster_names == {first: "Our regulars"}
    assert clusters.cluster_labels()[first] == "Our regulars"

    # "Create segment" on the first cluster: a published segment of that label
    page.locator("#kind-extra .make-segment").first.click()
    page.wait_for_url(re.compile(r"/segments/\d+/$"))
    match = re.search(r"/segments/(\d+)/$", page.url)
    assert match is not None
    segment = Segment.objects.get(pk=int(match.group(1)))
    assert segment.workspace_id == tenant_a.workspace.pk
    assert segment.published_version is not None
    assert segment.published_version.rule == {"model": "customer_type", "cluster": first}
    assert segment.name == "Customer types: Our regulars"
    expect(page.locator("h1")).to_contain_text("Our regulars")
    no_csp_violations(page)


def test_builder_cluster_condition_counts_its_clusters(
    live_server: Any, page: Page, tenant_a: Tenant, clusters: MLModel, login_as: Any,
    console: Any,
) -> None:  # fmt: skip
    page.add_init_script(WATCH)
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/segments/new/")
    page.locator("#rule-tree > .rule-group > .group-foot").locator("button.add-model").click()
    condition = page.locator(".rule-cond[data-kind=model]")
    expect(condition.locator(".cond-model")).to_have_value("customer_type")
    boxes = condition.locator(".cond-cluster")
    assert clusters.champion is not None
    expect(boxes).to_have_count(len(clusters.champion.charts["clusters"]))
    count = page.locator("#preview-count")
    people = live_profiles(tenant_a)

    def in_clusters(labels: list[str]) -> int:
        return people.filter(computed__customer_type__in=labels).count()

    # a new condition starts with the first cluster ticked, and is counted at once
    expect(boxes.nth(0)).to_be_checked()
    expect(boxes.nth(1)).not_to_be_checked()
    first = boxes.nth(0).get_attribute("value") or ""
    expect(count).to_have_attribute("data-count", str(in_clusters([first])))
    # tick a second one
    boxes.nth(1).check()
    two = [boxes.nth(i).get_attribute("value") or "" for i in (0, 1)]
    expected = in_clusters(two)
    assert 0 < in_clusters(two[:1]) < expected <= people.count()
    expect(count).to_have_attribute("data-count", str(expected))
    expect(count).to_have_text(f"{expected:,}")
    assert page.locator(".rule-cond[data-kind=model] .cond-cluster:checked").count() == 2
    # and the count follows when one is unticked again
    boxes.nth(1).uncheck()
    expect(count).to_have_attribute("data-count", str(in_clusters(two[:1])))
    no_csp_violations(page)


def test_recommendations_model_page(
    live_server: Any, page: Page, tenant_a: Tenant, recommendations: MLModel, login_as: Any,
    screenshot: Any, console: Any,
) -> None:  # fmt: skip
    champion = recommendations.champion
    assert champion is not None
    page.add_init_script(WATCH)
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/models/{recommendations.pk}/")
    expect(page.locator("h1")).to_have_text("Next items")
    tile = page.locator("#champion .metric-tile").first
    expect(tile).to_contain_text("NDCG@10")
    expect(tile.locator(".metric-value")).to_have_text(f"{champion.metrics['ndcg_at_10']:.3f}")
    expect(page.locator("#algorithms-chart")).to_be_visible()
    expect(page.locator("#algorithms-chart rect.bar:not(.other)")).to_have_count(4)

    # "try it", prefilled with a profile the model scored
    scored = live_profiles(tenant_a).filter(computed__has_key="next_items").order_by("pk").first()
    assert scored is not None
    expect(page.locator("#try-profile")).to_have_value(str(scored.pk))
    page.locator("#try-it button[type=submit]").click()
    result = page.locator("#try-result")
    expect(result.locator("li")).to_have_count(10)
    expect(result.locator(".pill")).to_have_text(re.compile(r"^(personalised|popular)$"))
    # what the API answers for that profile, in its order
    answer = (
        tenant_a.api().get(f"/api/v1/profiles/{scored.pk}/recommendations/?model=next_items").json()
    )
    expect(result.locator(".pill")).to_have_text(answer["source"])
    expect(result.locator("li")).to_have_text(
        [re.compile("^" + re.escape(i["name"] or i["item_id"])) for i in answer["items"]]
    )

    # the catalogue: unticking an item's availability saves it
    row = page.locator("#catalogue tbody tr[data-item]").first
    expect(row).to_be_visible()
    item_id = row.get_attribute("data-item")
    assert item_id
    no_csp_violations(page)
    screenshot(page, "94-recommendations-model")
    toggle = row.locator("input[type=checkbox]")
    expect(toggle).to_be_checked()
    toggle.uncheck()
    item = Item.objects.get(workspace=tenant_a.workspace, item_id=item_id)
    assert wait_for(lambda: not Item.objects.get(pk=item.pk).available)
    expect(toggle).not_to_be_checked()
    no_csp_violations(page)


def test_profile_page_shows_cluster_and_recommendations(
    live_server: Any, page: Page, tenant_a: Tenant, clusters: MLModel, recommendations: MLModel,
    login_as: Any, console: Any,
) -> None:  # fmt: skip
    both = (
        live_profiles(tenant_a)
        .filter(computed__has_keys=["customer_type", "next_items"])
        .order_by("pk")
        .first()
    )
    assert both is not None
    label = both.computed["customer_type"]
    items = both.computed["next_items"][:5]
    names = dict(
        Item.objects.filter(workspace=tenant_a.workspace, item_id__in=items).values_list(
            "item_id", "name"
        )
    )
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/profiles/{both.pk}/")
    panel = page.locator("#model-scores")
    cluster = panel.locator('.model-cluster[data-model="customer_type"]')
    expect(cluster).to_contain_text(clusters.cluster_labels()[label])
    expect(cluster).to_contain_text(label)
    recs = panel.locator('.model-recs[data-model="next_items"] li')
    expect(recs).to_have_count(5)
    expect(recs).to_have_text([names.get(i) or i for i in items])


def test_new_model_form_shows_each_kinds_fields(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, console: Any
) -> None:
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/models/")
    form = page.locator("#model-form")

    def field(name: str) -> Any:
        return form.locator("label", has=page.locator(f"[name={name}]"))

    event, horizon, k = field("event"), field("horizon_days"), field("k")
    top_n, exclude = field("top_n"), field("exclude")
    kind = form.locator("[name=kind]")
    expect(kind).to_have_value("propensity")
    expect(event).to_be_visible()
    expect(horizon).to_be_visible()
    expect(k).to_be_hidden()
    expect(top_n).to_be_hidden()

    kind.select_option("clusters")
    expect(event).to_be_hidden()
    expect(horizon).to_be_hidden()
    expect(k).to_be_visible()
    expect(k).to_contain_text("Clusters")
    expect(top_n).to_be_hidden()
    expect(exclude).to_be_hidden()

    kind.select_option("recommendations")
    expect(top_n).to_be_visible()
    expect(top_n).to_contain_text("Items per person")
    expect(exclude).to_be_visible()
    expect(k).to_be_hidden()
    expect(event).to_be_hidden()

    kind.select_option("churn")
    expect(event).to_be_visible()
    expect(horizon).to_be_visible()
    expect(top_n).to_be_hidden()


def test_an_analyst_sees_clusters_but_does_not_act(
    live_server: Any, page: Page, tenant_a: Tenant, clusters: MLModel, login_as: Any,
    console: Any,
) -> None:  # fmt: skip
    assert clusters.champion is not None
    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/models/{clusters.pk}/")
    names = page.locator("#kind-extra input.cluster-name")
    expect(names).to_have_count(len(clusters.champion.charts["clusters"]))
    for i in range(names.count()):
        expect(names.nth(i)).to_be_disabled()
    expect(page.locator(".make-segment")).to_have_count(0)
    expect(page.locator("#train-now")).to_have_count(0)
