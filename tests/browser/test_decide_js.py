"""decide.js, the decision API's client for customer websites, in headless Chromium on a shop
page served from another origin (127.0.0.1, a small http.server) than the CDP's live server
(localhost), which serves the module from its static files.

A known visitor's placements are filled with the offer's content (as text, never as HTML;
no javascript: links), the second page load answers from the session cache, the impression
of each seen offer reaches the collector as `Offer Viewed` and the frequency counters count
it; a placement below the fold is counted only once it is scrolled to. An anonymous visitor
keeps the default and is asked for under analytics.js's anonymous id, else our own. An origin
the source does not allow, a closed port and a server that never answers all leave the
page's default markup, without a page error."""

from __future__ import annotations

import functools
import json
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Page, Request, Route, expect

from activation.decisions import services as decisions
from activation.decisions.models import DecisionRecord, Offer
from activation.experiments import services as experiments
from consent.services import purpose_create
from profiles.collector import keys
from profiles.models import Event, Identity
from profiles.pipeline import queue
from tests.fixtures import Tenant, send_events

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MODULE = "/static/activation/decide.js"
WAIT_SECONDS = 10.0
SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {
        "title": {"type": "string", "maxLength": 80},
        "text": {"type": "string"},
        "image": {"type": "string"},
        "url": {"type": "string"},
    },
}
SPRING = {
    "title": "Spring sale: 20 % off all green teas",
    "text": "Only this week, for our regulars.",
    "image": "/img/spring.svg",
    "url": "/sale/spring?from=hero",
}
# what a careless (or hostile) editor might write: shown as text, the link left alone
SHIPPING = {
    "title": '<img src=x onerror="window.__pwned=1">Free shipping',
    "url": "javascript:window.__pwned=2",
}
# the browser reports what it refused; decide.js resolves to the default answer
CORS_REFUSED = r"(blocked by CORS policy|net::ERR_FAILED)"
CONNECTION_REFUSED = r"net::ERR_CONNECTION_REFUSED"


# ---- the customer's site: another origin ------------------------------------------------------


def svg(color: str, text: str) -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="120">'
        f'<rect width="320" height="120" rx="8" fill="{color}"/>'
        f'<text x="160" y="68" font-size="22" text-anchor="middle" fill="#fff" '
        f'font-family="sans-serif">{text}</text></svg>'
    )


class Site:
    """A shop's web server on 127.0.0.1 (a free port) serving the files of a temporary
    directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "img").mkdir()
        (root / "img" / "welcome.svg").write_text(svg("#8a96a8", "Welcome"))
        (root / "img" / "spring.svg").write_text(svg("#2f7d4f", "Spring sale"))
        (root / "favicon.ico").write_bytes(b"")

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, name: str, html: str) -> str:
        (self.root / name).write_text(html)
        return f"{self.origin}/{name}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with tempfile.TemporaryDirectory(prefix="cdp-decide-site-") as root:
        server = Site(Path(root))
        yield server
        server.stop()


def shop_page(module_url: str, options: dict[str, Any], experiments: list[str]) -> str:
    """The shop's home page: a hero and, below the fold, a promotion, each with its default
    markup; the page's own module script fills them."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sencha &amp; Co.</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1d2433; }}
header {{ background: #2f5d50; color: #fff; padding: 12px 32px; }}
main {{ padding: 24px 32px; }}
.hero {{ display: flex; gap: 24px; align-items: center; border: 1px solid #d5dbe3;
         border-radius: 8px; padding: 16px; max-width: 760px; }}
.hero h2 {{ margin: 0 0 4px; }}
.promo {{ margin-top: 150vh; border: 1px dashed #2f5d50; padding: 16px; max-width: 760px; }}
</style></head><body>
<header><h1>Sencha &amp; Co. tea shop</h1></header>
<main>
<div class="hero" data-placement="home_hero">
  <img src="/img/welcome.svg" alt="" width="320" height="120">
  <div>
    <h2 data-field="title">Welcome</h2>
    <p data-field="text">Fresh tea, every week.</p>
    <a class="cta" href="/shop">Shop now</a>
  </div>
</div>
<div class="promo" data-placement="footer_promo">
  <strong data-field="title">Join our newsletter</strong>
  <a class="cta" href="/newsletter">Sign up</a>
</div>
</main>
<script type="module">
import {{ createDecide }} from {json.dumps(module_url)};
const decide = createDecide({json.dumps(options)});
window.decide = decide;
window.__answer = await decide.fill(document, {{ experiments: {json.dumps(experiments)} }});
document.body.dataset.decided = "1";
</script>
</body></html>"""


# ---- the CDP side -----------------------------------------------------------------------------


@dataclass
class Shop:
    """The tenant set up for the shop, and how to open its page."""

    tenant: Tenant
    site: Site
    live: str
    page: Page
    decides: list[Request]  # the page's requests to /v1/decide

    def open(self, **options: Any) -> str:
        """Open a new page of the shop whose createDecide gets these options (on top of the
        live server as host and the tenant's write key); wait until fill() has answered."""
        settings = {"host": self.live, "writeKey": self.tenant.write_key, **options}
        name = f"shop-{time.monotonic_ns()}.html"
        url = self.site.add(name, shop_page(self.live + MODULE, settings, ["hero_test"]))
        self.page.goto(url)
        self.page.wait_for_selector("body[data-decided]", state="attached")
        return url

    def answer(self) -> dict[str, Any]:
        found: dict[str, Any] = self.page.evaluate("window.__answer")
        return found

    def allow(self, *origins: str) -> None:
        self.tenant.source.allowed_origins = list(origins)
        self.tenant.source.save(update_fields=["allowed_origins"])
        keys.forget_all()  # the live server's thread shares this process's key cache


def with_cors(route: Route) -> None:
    """The live server serves static files with Django's handler, which sends no CORS
    headers; WhiteNoise does in production (checked below): add what it would send."""
    response = route.fetch()
    route.fulfill(response=response, headers={**response.headers,
                                              "access-control-allow-origin": "*"})  # fmt: skip


@pytest.fixture
def shop(live_server: Any, site: Site, page: Page, tenant_a: Tenant, client: Client) -> Shop:
    """Ann, a known customer (personalisation by legitimate interest); a hero placement with
    a spring-sale offer, a promotion placement with a free-shipping offer; a running
    experiment; the source allowing the shop's origin."""
    workspace = tenant_a.workspace
    purpose_create(workspace=workspace, key="personalization", name="Personalisation",
                   legal_basis="legitimate_interest", default_granted=True)  # fmt: skip
    ann = {"plan": "pro", "email": "ann@example.com"}
    send_events(client, tenant_a, {"type": "identify", "userId": "ann", "anonymousId": "a-ann",
                                   "traits": ann})  # fmt: skip
    for key, name, default in (
        ("home_hero", "Home hero", {"title": "Welcome"}),
        ("footer_promo", "Footer promotion", {"title": "Join our newsletter"}),
    ):
        decisions.placement_create(workspace=workspace, actor=None, data={
            "key": key, "name": name, "content_schema": SCHEMA,
            "default_content": default})  # fmt: skip
    for key, placement, content in (
        ("spring_sale", "home_hero", SPRING),
        ("free_shipping", "footer_promo", SHIPPING),
    ):
        decisions.offer_create(workspace=workspace, actor=None, data={
            "key": key, "name": key.replace("_", " "), "placement": placement,
            "content": content, "cap_day": 5})  # fmt: skip
    experiments.metric_create(workspace=workspace, actor=None, data={
        "key": "purchase", "name": "Purchase", "kind": "conversion",
        "event": "Order Completed", "window_days": 7})  # fmt: skip
    experiments.experiment_start(
        experiment=experiments.experiment_create(workspace=workspace, actor=None, data={
            "key": "hero_test", "name": "Hero test", "primary_metric": "purchase",
            "variants": [{"key": "control", "weight": 1, "payload": {"color": "grey"}},
                         {"key": "bold", "weight": 1, "payload": {"color": "red"}}]}),
        actor=None,
    )  # fmt: skip
    page.route(f"{live_server.url}{MODULE}", with_cors)
    decides: list[Request] = []
    page.on("request", lambda r: decides.append(r) if r.url.endswith("/v1/decide") else None)
    shop = Shop(tenant_a, site, live_server.url, page, decides)
    shop.allow(site.origin)
    return shop


def wait_until(page: Page, done: Callable[[], bool], seconds: float = WAIT_SECONDS) -> bool:
    """Poll with the browser's clock running (Playwright's event handlers run meanwhile)."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= deadline:
            return False
        page.wait_for_timeout(100)
    return True


def viewed(tenant: Tenant, placement: str | None = None) -> list[Event]:
    found = Event.objects.filter(source_id=tenant.source.pk, type="track", event="Offer Viewed")
    if placement is not None:
        found = found.filter(properties__placement=placement)
    return list(found.order_by("id"))


def sent_body(request: Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.post_data or "{}")
    return body


# ---- the tests ---------------------------------------------------------------------------------


def test_the_module_is_served_to_other_origins(client: Client) -> None:
    """WhiteNoise (production) answers the module with CORS, as a cross-origin import needs."""
    response = client.get(MODULE)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "javascript" in response["Content-Type"]


def test_a_known_visitor_sees_the_offer_once_asked_and_counted(shop: Shop, screenshot: Any) -> None:
    url = shop.open(userId="ann")
    page = shop.page
    hero = page.locator('[data-placement="home_hero"]')
    expect(hero.locator('[data-field="title"]')).to_have_text(SPRING["title"])
    expect(hero).to_have_attribute("data-offer", "spring_sale")
    expect(hero.locator('[data-field="text"]')).to_have_text(SPRING["text"])
    expect(hero.locator("img")).to_have_attribute("src", shop.site.origin + SPRING["image"])
    expect(hero.locator("a.cta")).to_have_attribute("href", shop.site.origin + SPRING["url"])
    expect(hero.locator("a.cta")).to_have_text("Shop now")  # a link's text is the site's
    # the offer's markup is text: no element made, nothing run, no javascript: link
    promo = page.locator('[data-placement="footer_promo"]')
    expect(promo).to_have_attribute("data-offer", "free_shipping")
    expect(promo.locator('[data-field="title"]')).to_have_text(SHIPPING["title"])
    assert promo.locator("img").count() == 0
    expect(promo.locator("a.cta")).to_have_attribute("href", "/newsletter")
    assert page.evaluate("window.__pwned") is None
    # one request: the page, the locale and the experiment asked along
    assert len(shop.decides) == 1
    sent = sent_body(shop.decides[0])
    assert sent["userId"] == "ann" and sent["writeKey"] == shop.tenant.write_key
    assert sent["placements"] == ["home_hero", "footer_promo"]
    assert sent["context"]["page"] == {"url": url, "path": url.removeprefix(shop.site.origin),
                                       "referrer": "", "title": "Sencha & Co."}  # fmt: skip
    assert sent["context"]["locale"] == "en-GB"
    assert shop.decides[0].headers["content-type"].startswith("text/plain")  # no preflight
    answer = shop.answer()
    assert answer["degraded"] is False
    assert answer["profile_id"] == Identity.objects.get(type="user_id", value="ann").profile_id
    chosen = page.evaluate("window.decide.variant('hero_test')")
    assert chosen == answer["experiments"]["hero_test"]
    assert chosen["variant"] in ("control", "bold")
    assert chosen["payload"] == {"color": {"control": "grey", "bold": "red"}[chosen["variant"]]}
    assert page.evaluate("window.decide.variant('nope')") == {"variant": None, "payload": None}

    # the hero is on screen: its impression reaches the collector; the promotion is not yet
    assert wait_until(page, lambda: len(viewed(shop.tenant, "home_hero")) == 1)
    page.wait_for_timeout(300)
    assert viewed(shop.tenant, "footer_promo") == []
    hero_seen = viewed(shop.tenant, "home_hero")[0]
    assert hero_seen.properties == {"offer_id": "spring_sale", "placement": "home_hero"}
    assert hero_seen.user_id == "ann" and hero_seen.anonymous_id
    assert hero_seen.context["page"]["url"] == url
    assert hero_seen.context["library"]["name"] == "cdp-decide.js"
    screenshot(page, "decide-js-shop-personalised")
    promo.scroll_into_view_if_needed()
    assert wait_until(page, lambda: len(viewed(shop.tenant, "footer_promo")) == 1)
    # once per page view and placement, whoever asks
    assert page.evaluate("window.decide.impression('home_hero', 'spring_sale')") is False
    page.wait_for_timeout(300)
    assert len(viewed(shop.tenant)) == 2

    # the next page view answers from the session cache, and is a new impression (a new
    # navigation rather than a reload, which would scroll back down to the promotion)
    page.goto(url)
    page.wait_for_selector("body[data-decided]", state="attached")
    expect(hero.locator('[data-field="title"]')).to_have_text(SPRING["title"])
    expect(hero).to_have_attribute("data-offer", "spring_sale")
    assert len(shop.decides) == 1
    assert shop.answer()["cached"] is True
    assert wait_until(page, lambda: len(viewed(shop.tenant, "home_hero")) == 2)
    assert len({e.message_id for e in viewed(shop.tenant, "home_hero")}) == 2
    assert len(viewed(shop.tenant, "footer_promo")) == 1

    # the pipeline counts them for the frequency caps
    while queue.drain(batch_size=500)[1]:
        pass
    ann = Identity.objects.get(type="user_id", value="ann").profile_id
    caps = DecisionRecord.objects.get(profile_id=ann).caps
    spring = Offer.objects.get(key="spring_sale")
    assert caps[str(spring.pk)]["n"] == 2


def test_an_anonymous_visitor_keeps_the_default_under_a_stable_id(shop: Shop) -> None:
    page = shop.page
    origin = json.dumps(shop.site.origin)
    # analytics.js on the page has given the visitor an id (JSON-encoded, as it keeps them)
    page.add_init_script(
        f"if (location.origin === {origin} && !sessionStorage.getItem('ajs_set')) {{"
        "  localStorage.setItem('ajs_anonymous_id', JSON.stringify('ajs-123'));"
        "  sessionStorage.setItem('ajs_set', '1'); }"
    )
    shop.open()
    assert sent_body(shop.decides[-1])["anonymousId"] == "ajs-123"
    hero = page.locator('[data-placement="home_hero"]')
    expect(hero.locator('[data-field="title"]')).to_have_text("Welcome")
    expect(hero.locator("img")).to_have_attribute("src", "/img/welcome.svg")
    assert hero.get_attribute("data-offer") is None
    answer = shop.answer()
    assert answer["degraded"] is False and answer["profile_id"] is None
    assert answer["placements"]["home_hero"]["reason"] == "default: unknown visitor"

    # without analytics.js: an id of our own, kept for the next page
    page.evaluate("localStorage.clear(); sessionStorage.setItem('ajs_set', '1')")
    shop.open()
    ours = page.evaluate("localStorage.getItem('cdp_anonymous_id')")
    assert len(ours) == 36 and sent_body(shop.decides[-1])["anonymousId"] == ours
    page.evaluate("sessionStorage.clear(); sessionStorage.setItem('ajs_set', '1')")
    shop.open()
    assert sent_body(shop.decides[-1])["anonymousId"] == ours
    assert len(shop.decides) == 3
    page.wait_for_timeout(300)
    assert viewed(shop.tenant) == []


@pytest.mark.parametrize("allowed", [[], ["https://shop.example.com"]], ids=["none", "other"])
def test_an_origin_the_source_does_not_allow_keeps_the_default(
    shop: Shop, console: Any, allowed: list[str]
) -> None:
    console.allow(CORS_REFUSED)
    shop.allow(*allowed)
    shop.open(userId="ann")
    hero = shop.page.locator('[data-placement="home_hero"]')
    expect(hero.locator('[data-field="title"]')).to_have_text("Welcome")
    assert hero.get_attribute("data-offer") is None
    answer = shop.answer()
    assert answer["degraded"] is True and answer["placements"] == {}
    assert answer["error"] == "network"  # the browser does not hand the refusal to the page
    assert answer["experiments"] == {"hero_test": {"variant": None, "payload": None}}
    assert len(shop.decides) == 1
    # nothing kept: allowed again, the next page asks and shows the offer
    shop.allow(shop.site.origin)
    shop.open(userId="ann")
    expect(hero).to_have_attribute("data-offer", "spring_sale")
    assert len(shop.decides) == 2


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("server", ["closed", "silent"])
def test_an_unreachable_or_slow_cdp_keeps_the_default(
    shop: Shop, console: Any, server: str
) -> None:
    console.allow(CONNECTION_REFUSED)
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = closed_port() if server == "closed" else silent.getsockname()[1]
        started = time.monotonic()
        shop.open(host=f"http://127.0.0.1:{port}", timeoutMs=400)
        took = time.monotonic() - started
    hero = shop.page.locator('[data-placement="home_hero"]')
    expect(hero.locator('[data-field="title"]')).to_have_text("Welcome")
    assert hero.get_attribute("data-offer") is None
    answer = shop.answer()
    assert answer["degraded"] is True and answer["placements"] == {}
    assert answer["error"] == {"closed": "network", "silent": "timeout"}[server]
    assert took < 5
    assert shop.page.evaluate("window.decide.variant('hero_test')") == {
        "variant": None, "payload": None,
    }  # fmt: skip
