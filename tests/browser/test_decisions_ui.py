"""The decisions page in headless Chromium against a live server: from the empty state a
marketer creates a placement and its offers through the forms (the API's errors shown at their
fields), previews a real person (the chosen offer, the path of the condition another offer
failed, the experiment's variant, the person's segments), switches the offer off and previews
again (the default); an analyst sees the same placements, offers and preview, without a form."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Locator, Page, expect

from activation.decisions import services as decisions
from activation.decisions.models import Offer, Placement
from activation.experiments import services as experiments
from consent.services import purpose_create
from segments.services import segment_create
from tests.browser.test_csp import WATCH
from tests.fixtures import Tenant, send_events

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HERO_SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {"title": {"type": "string"}, "image": {"type": "string"},
                   "url": {"type": "string"}},
}  # fmt: skip
PRO_IN_FRANCE = {"all": [{"segment": "pro"}, {"trait": "country", "op": "eq", "value": "FR"}]}
PRO_ON_SALE = {"all": [{"segment": "pro"},
                       {"context": "page.url", "op": "contains", "value": "/sale"}]}  # fmt: skip


def no_csp_violations(page: Page) -> None:
    assert page.evaluate("window.__csp") == []


@pytest.fixture
def shop(tenant_a: Tenant, client: Client) -> Tenant:
    """Three known people (personalisation allowed unless they object), a published segment of
    the pro plan, and a running experiment."""
    ws = tenant_a.workspace
    purpose_create(workspace=ws, key="personalization", name="Personalisation",
                   legal_basis="legitimate_interest", default_granted=True)  # fmt: skip
    send_events(
        client, tenant_a,
        {"type": "identify", "userId": "ann", "traits": {"plan": "pro", "country": "FR",
                                                         "email": "ann@example.com"}},
        {"type": "identify", "userId": "bob", "traits": {"plan": "free", "country": "DE",
                                                         "email": "bob@example.com"}},
        {"type": "identify", "userId": "cat", "traits": {"plan": "pro", "country": "DE"}},
    )  # fmt: skip
    segment_create(workspace=ws, name="Pro", rule={"trait": "plan", "op": "eq", "value": "pro"},
                   publish=True)  # fmt: skip
    experiments.metric_create(workspace=ws, actor=None, data={
        "key": "purchase", "name": "Purchase", "kind": "conversion", "event": "Order Completed",
        "window_days": 7})  # fmt: skip
    experiments.experiment_start(
        experiment=experiments.experiment_create(workspace=ws, actor=None, data={
            "key": "hero_copy", "name": "Hero copy", "primary_metric": "purchase",
            "variants": [{"key": "control", "weight": 1}, {"key": "bold", "weight": 1}]}),
        actor=None,
    )  # fmt: skip
    return tenant_a


def set_json(field: Locator, value: Any) -> None:
    """Type JSON into a textarea: `value` as it is when a string (bad JSON too), else dumped."""
    field.fill(value if isinstance(value, str) else json.dumps(value))


def pick_person(page: Page, text: str, who: str) -> None:
    page.locator("#preview-search").fill(text)
    match = page.locator("#profile-matches button.match").filter(has_text=who)
    expect(match).to_have_count(1)
    match.click()
    expect(page.locator("#preview-picked")).to_contain_text(who)


def outcome(page: Page, offer: str) -> Locator:
    return page.locator(
        f'#preview-result .preview-placement[data-placement="home_hero"] tr[data-offer="{offer}"]'
    )


def test_a_marketer_builds_a_placement_and_previews_a_person(
    live_server: Any, page: Page, shop: Tenant, login_as: Any, screenshot: Any, console: Any
) -> None:
    # the API's refusals of the bad placement and the bad offer, as the browser logs them
    console.allow(r"status of 400 \(Bad Request\).*/api/v1/(placements|offers)/")
    page.add_init_script(WATCH)
    login_as(shop.users["marketer"])
    page.goto(f"{live_server.url}/decisions/")
    expect(page.locator("#no-placements")).to_be_visible()
    expect(page.locator("#no-placements")).to_contain_text("A placement")
    expect(page.locator("#no-placements")).to_contain_text("An offer")
    expect(page.locator("#placement-new-open")).to_be_hidden()
    form = page.locator("#placement-form")
    expect(form).to_be_visible()
    schema = form.locator("[name=content_schema]")
    expect(schema).to_have_value(re.compile(re.escape('"required": ["title"]')))
    screenshot(page, "97-decisions-empty")

    # a default that breaks the schema: the error at the default content
    form.locator("[name=key]").fill("home_hero")
    form.locator("[name=name]").fill("Home hero")
    form.locator("[name=description]").fill("The banner at the top of the home page")
    set_json(form.locator("[name=default_content]"), '{"title": 5}')
    form.locator("#placement-create").click()
    error = form.locator('.field-error[data-error-for="default_content.title"]')
    expect(error).to_contain_text("5 is not of type 'string'")
    expect(form.locator("[name=default_content]")).to_have_class(re.compile("invalid"))
    assert not Placement.objects.exists()
    # not JSON at all: said before asking the server
    set_json(form.locator("[name=default_content]"), '{"title": "Welcome"')
    form.locator("#placement-create").click()
    expect(form.locator('.field-error[data-error-for="default_content"]')).to_contain_text(
        "not valid JSON"
    )
    set_json(form.locator("[name=default_content]"), '{"title": "Welcome", "url": "/new"}')
    form.locator("#placement-create").click()

    card = page.locator('section.placement[data-placement="home_hero"]')
    expect(card).to_be_visible()
    expect(page.locator("#no-placements")).to_be_hidden()
    expect(page.locator("#placement-new")).to_be_hidden()
    expect(page.locator("#placement-new-open")).to_be_visible()
    expect(card.locator("h2")).to_contain_text("Home hero")
    expect(card.locator(".placement-key")).to_have_text("home_hero")
    expect(card.locator("pre.content-json")).to_contain_text('"Welcome"')
    expect(card.locator(".no-offers")).to_be_visible()
    placement = Placement.objects.get(workspace=shop.workspace, key="home_hero")
    assert placement.content_schema == HERO_SCHEMA
    assert placement.default_content == {"title": "Welcome", "url": "/new"}
    # the code to paste, for this placement and this server
    card.locator("details.snippets > summary").click()
    browser_code = card.locator("#snippet-browser-home_hero")
    expect(browser_code).to_contain_text('<div data-placement="home_hero"></div>')
    expect(browser_code).to_contain_text(
        f'import {{ createDecide }} from "{live_server.url}/static/activation/decide.js"'
    )
    expect(browser_code).to_contain_text("decide.fill()")
    expect(card.locator("#snippet-server-home_hero")).to_contain_text(
        f"curl -s {live_server.url}/v1/decide"
    )
    expect(card.locator("#snippet-server-home_hero")).to_contain_text('"placements": ["home_hero"]')

    # a placement without offers asks for its first one: a bad one first
    offer_form = card.locator("form.offer-form")
    expect(offer_form).to_be_visible()
    expect(offer_form.locator("[name=content]")).to_have_value(re.compile('"Welcome"'))
    offer_form.locator("[name=key]").fill("spring_sale")
    offer_form.locator("[name=name]").fill("Spring sale")
    set_json(offer_form.locator("[name=content]"), '{"image": 3}')
    set_json(offer_form.locator("[name=eligibility]"), '{"all": [{"segment": "nope"}]}')
    offer_form.locator("[name=cap_day]").fill("500")
    offer_form.locator("button[data-submit]").click()
    expect(offer_form.locator('.field-error[data-error-for="content"]')).to_contain_text(
        "'title' is a required property"
    )
    expect(offer_form.locator('.field-error[data-error-for="content.image"]')).to_contain_text(
        "3 is not of type 'string'"
    )
    segment_error = offer_form.locator('.field-error[data-error-for="eligibility.all[0].segment"]')
    expect(segment_error).to_contain_text("no published segment 'nope'")
    expect(segment_error.locator("code")).to_have_text("all[0].segment")
    expect(offer_form.locator('.field-error[data-error-for="cap_day"]')).to_be_visible()
    expect(offer_form.locator("[data-form-error]")).to_be_visible()
    screenshot(page, "98-decisions-offer-errors")
    assert not Offer.objects.exists()

    set_json(offer_form.locator("[name=content]"),
             '{"title": "Spring sale: 20 % off", "url": "/sale"}')  # fmt: skip
    set_json(offer_form.locator("[name=eligibility]"), PRO_IN_FRANCE)
    offer_form.locator("[name=priority]").fill("10")
    offer_form.locator("[name=cap_day]").fill("3")
    offer_form.locator("[name=cap_lifetime]").fill("20")
    offer_form.locator("[name=ends_at]").fill("2099-06-30")
    offer_form.locator("button[data-submit]").click()
    row = card.locator('tr[data-offer="spring_sale"]')
    expect(row).to_be_visible()
    expect(card.locator(".field-error")).to_have_count(0)
    expect(row.locator(".who-cell")).to_contain_text("in segment pro and country is “FR”")
    expect(row).to_contain_text("3 a day · 20 ever")
    expect(row).to_contain_text("until 30 Jun 2099")
    spring = Offer.objects.get(workspace=shop.workspace, key="spring_sale")
    assert spring.eligibility == PRO_IN_FRANCE
    assert (spring.priority, spring.cap_day, spring.cap_week) == (10, 3, None)
    assert spring.cap_lifetime == 20 and spring.ends_at is not None
    assert spring.ends_at.isoformat() == "2099-06-30T00:00:00+00:00"
    assert spring.content == {"title": "Spring sale: 20 % off", "url": "/sale"} and spring.enabled

    # a second offer, for pro people on the sale pages; then one for everyone, edited after
    card.locator("button.offer-new").click()
    expect(offer_form.locator("[name=key]")).to_have_value("")
    offer_form.locator("[name=key]").fill("sale_page")
    offer_form.locator("[name=name]").fill("Sale page banner")
    set_json(offer_form.locator("[name=content]"), '{"title": "Everything must go"}')
    set_json(offer_form.locator("[name=eligibility]"), PRO_ON_SALE)
    offer_form.locator("[name=priority]").fill("5")
    offer_form.locator("button[data-submit]").click()
    expect(card.locator('tr[data-offer="sale_page"] .who-cell')).to_contain_text(
        "context page.url contains “/sale”"
    )
    card.locator("button.offer-new").click()
    offer_form.locator("[name=key]").fill("newsletter")
    offer_form.locator("[name=name]").fill("Newsletter")
    set_json(offer_form.locator("[name=content]"), '{"title": "Our letter"}')
    offer_form.locator("button[data-submit]").click()
    newsletter = card.locator('tr[data-offer="newsletter"]')
    expect(newsletter.locator(".who-cell")).to_have_text("everyone")
    newsletter.locator("button[data-edit]").click()
    expect(offer_form.locator("[data-title]")).to_contain_text("Edit offer newsletter")
    expect(offer_form.locator("[name=key]")).to_have_attribute("readonly", "")
    offer_form.locator("[name=weight]").fill("2")
    offer_form.locator("[name=cap_week]").fill("2")
    offer_form.locator("button[data-submit]").click()
    expect(newsletter).to_contain_text("2 a week")
    letter = Offer.objects.get(key="newsletter")
    assert (letter.weight, letter.cap_week, letter.priority) == (2.0, 2, 0)
    # highest priority first
    keys = card.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.offer)")
    assert keys == ["spring_sale", "sale_page", "newsletter"]
    expect(card.locator(".offer-count")).to_have_text("3 offers, 3 on")
    no_csp_violations(page)

    # the preview: Ann is pro and French, on the home page
    preview = page.locator("#preview")
    preview.scroll_into_view_if_needed()
    pick_person(page, "ann", "ann@example.com")
    preview.locator("[name=url]").fill("https://shop.test/")
    preview.locator("[name=device]").select_option("mobile")
    preview.locator("input[name=experiments][value=hero_copy]").check()
    preview.locator("#preview-run").click()
    answer = page.locator('#preview-result .preview-placement[data-placement="home_hero"]')
    expect(answer.locator(".answer-offer")).to_have_text("offer spring_sale")
    reason = answer.locator(".answer-reason")
    expect(reason).to_have_text("offer spring_sale: eligible, priority 10")
    expect(answer.locator("pre.content-json")).to_contain_text("Spring sale: 20 % off")
    expect(outcome(page, "spring_sale").locator(".pill")).to_have_text("chosen")
    expect(outcome(page, "spring_sale").locator(".pill")).to_have_class(re.compile(r"\bok\b"))
    failed = outcome(page, "sale_page")
    expect(failed.locator(".pill")).to_have_text("not eligible")
    expect(failed.locator("code.failed-path")).to_have_text("eligibility.all[1]")
    expect(failed.locator(".why-cell")).to_contain_text("context page.url contains '/sale'")
    expect(failed.locator("mark.failed-cond")).to_contain_text("page.url contains “/sale”")
    expect(outcome(page, "newsletter").locator(".pill")).to_have_text("outranked")
    variant = page.locator('#preview-result tr[data-experiment="hero_copy"]')
    expect(variant.locator(".pill")).to_have_text(re.compile(r"^(control|bold)$"))
    expect(variant).to_contain_text("assigned")
    expect(page.locator("#preview-segments")).to_have_text("pro")
    expect(page.locator("#preview-result .traits-table")).to_contain_text("ann@example.com")
    no_csp_violations(page)
    screenshot(page, "99-decisions-preview")

    # the spring sale switched off: Ann is on no sale page, the newsletter wins
    card.locator('tr[data-offer="spring_sale"] input.switch').uncheck()
    expect(card.locator(".offer-count")).to_have_text("3 offers, 2 on")
    expect(card.locator('tr[data-offer="spring_sale"]')).to_have_class(re.compile(r"\boff\b"))
    expect(page.locator("#preview-result .stale-note")).to_be_visible()
    switched = Offer.objects.get(key="spring_sale")
    assert not switched.enabled and switched.ends_at == spring.ends_at  # its date kept
    preview.locator("#preview-run").click()
    expect(page.locator("#preview-result .stale-note")).to_have_count(0)
    expect(outcome(page, "spring_sale").locator(".pill")).to_have_text("disabled")
    expect(answer.locator(".answer-offer")).to_have_text("offer newsletter")
    # and the newsletter too: the default
    card.locator('tr[data-offer="newsletter"] input.switch').uncheck()
    expect(card.locator(".offer-count")).to_have_text("3 offers, 1 on")
    preview.locator("#preview-run").click()
    expect(outcome(page, "newsletter").locator(".pill")).to_have_text("disabled")
    expect(answer.locator(".answer-offer")).to_have_text("default content")
    expect(reason).to_have_text("default: no eligible offer")
    expect(answer.locator("pre.content-json")).to_contain_text('"Welcome"')
    expect(outcome(page, "sale_page").locator(".pill")).to_have_text("not eligible")
    screenshot(page, "100-decisions-preview-default")

    # on a sale page the sale banner applies; an unknown visitor gets the default
    preview.locator("[name=url]").fill("https://shop.test/sale/shoes")
    preview.locator("#preview-run").click()
    expect(answer.locator(".answer-offer")).to_have_text("offer sale_page")
    preview.locator("input[name=who][value=visitor]").check()
    expect(page.locator("#preview-search")).to_be_hidden()
    preview.locator("[name=traits]").fill('{"plan": "pro"}')
    preview.locator("#preview-run").click()
    expect(reason).to_have_text("default: unknown visitor")
    expect(answer.locator(".no-outcomes")).to_contain_text("unknown visitor")
    expect(page.locator("#preview-result .answer-who")).to_contain_text("unknown visitor")

    # an offer deleted, once confirmed
    page.once("dialog", lambda dialog: dialog.accept())
    newsletter.locator("button[data-edit]").click()
    offer_form.locator("button[data-delete]").click()
    expect(newsletter).to_have_count(0)
    expect(card.locator(".offer-count")).to_have_text("2 offers, 1 on")
    assert not Offer.objects.filter(key="newsletter").exists()
    no_csp_violations(page)


def test_an_analyst_reads_placements_and_previews_without_forms(
    live_server: Any, page: Page, shop: Tenant, login_as: Any, screenshot: Any, console: Any
) -> None:
    ws = shop.workspace
    decisions.placement_create(workspace=ws, actor=None, data={
        "key": "home_hero", "name": "Home hero", "content_schema": HERO_SCHEMA,
        "default_content": {"title": "Welcome"}})  # fmt: skip
    for key, extra in (
        ("pro_fr", {"priority": 10, "eligibility": {"all": [
            {"segment": "pro"}, {"trait": "country", "op": "eq", "value": "FR"}]}}),
        ("germany", {"priority": 5, "eligibility": {"any": [
            {"trait": "country", "op": "in", "value": ["DE", "AT"]},
            {"context": "locale", "op": "starts_with", "value": "de"}]}, "enabled": False}),
    ):  # fmt: skip
        decisions.offer_create(workspace=ws, actor=None, data={
            "key": key, "name": key.replace("_", " "), "placement": "home_hero",
            "content": {"title": key}, **extra})  # fmt: skip
    page.add_init_script(WATCH)
    login_as(shop.users["analyst"])
    page.goto(f"{live_server.url}/decisions/")
    card = page.locator('section.placement[data-placement="home_hero"]')
    expect(card).to_be_visible()
    expect(page.locator("#no-placements")).to_be_hidden()
    expect(page.locator("#placement-form")).to_have_count(0)
    expect(page.locator("#placement-new-open")).to_have_count(0)
    expect(card.locator("form.offer-form")).to_have_count(0)
    expect(card.locator("input.switch")).to_have_count(0)
    expect(card.locator('tr[data-offer="pro_fr"] .pill')).to_have_text("on")
    expect(card.locator('tr[data-offer="germany"] .pill')).to_have_text("off")
    expect(card.locator('tr[data-offer="germany"] .who-cell')).to_have_text(
        "country is one of “DE”, “AT” or context locale starts with “de”"
    )
    # Cat is pro but German: the French offer fails at its second condition
    pick_person(page, "cat", "cat")
    page.locator("#preview-run").click()
    answer = page.locator('#preview-result .preview-placement[data-placement="home_hero"]')
    expect(answer.locator(".answer-offer")).to_have_text("default content")
    expect(outcome(page, "pro_fr").locator("code.failed-path")).to_have_text("eligibility.all[1]")
    expect(outcome(page, "pro_fr").locator(".why-cell")).to_contain_text("country is 'FR'")
    expect(outcome(page, "germany").locator(".pill")).to_have_text("disabled")
    no_csp_violations(page)
    screenshot(page, "101-decisions-read-only")
