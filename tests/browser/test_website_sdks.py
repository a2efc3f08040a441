"""The published website SDKs in headless Chromium, on a shop page served from another origin
than the collector: analytics.js 2.0 (@segment/analytics-next) and RudderStack's JavaScript SDK
v3 (@rudderstack/analytics-js), installed by `npm ci` at the versions pinned in
tests/browser/sdk/package.json, nothing vendored.

Every delivery mode stores each call once with its page context; the drop-in set-up (only
the settings URL changed) sends here; consent is kept as sent; a source restricted to other
origins refuses the shop until the shop is allowed; a retried request is not stored twice.
No request leaves the two origins (the SDKs' CDNs and telemetry are never called)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, Route

from profiles import services
from profiles.models import Event, FailedEvent
from tests.fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SDK_DIR = Path(__file__).resolve().parent / "sdk"
NODE_MODULES = SDK_DIR / "node_modules"
STAMP = NODE_MODULES / ".cdp-package-lock.sha256"  # removed with node_modules by `npm ci`
PINNED: dict[str, str] = json.loads((SDK_DIR / "package.json").read_text())["dependencies"]
SEGMENT = "@segment/analytics-next"
RUDDER = "@rudderstack/analytics-js"
BUILDS = {
    # analytics.js 2.0: standalone.js is the snippet's build (reads window.analytics), index.js
    # the UMD one (window.AnalyticsNext)
    "segment": NODE_MODULES / SEGMENT / "dist" / "umd",
    # the "bundled" build has all its plugins inside: nothing is fetched from RudderStack's CDN
    "rudder": NODE_MODULES / RUDDER / "dist" / "npm" / "modern" / "bundled" / "umd",
}
TYPES = ["alias", "group", "identify", "page", "track"]
WAIT_SECONDS = 10.0
LOCALE = "en-GB"  # the browser context's (tests/browser/conftest.py)


# ---- the SDKs, from npm --------------------------------------------------------------------


def _npm_ci() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "npm is not installed: the website SDK tests install the published SDKs with "
            f"`npm ci` in {SDK_DIR}. Install Node.js and npm (bin/test does: apt-get install "
            "nodejs npm).",
            pytrace=False,
        )
    done = subprocess.run(  # noqa: S603 - npm from PATH, fixed arguments
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=SDK_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"`npm ci` in {SDK_DIR} failed (exit {done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def sdk_builds() -> dict[str, Path]:
    """node_modules as the lock file says: `npm ci` when it is missing or was installed from
    another lock file (a stamp holds the lock file's hash)."""
    digest = hashlib.sha256((SDK_DIR / "package-lock.json").read_bytes()).hexdigest()
    lock_name = hashlib.sha256(str(SDK_DIR).encode()).hexdigest()[:12]
    with (Path(tempfile.gettempdir()) / f"cdp-sdk-npm-{lock_name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test processes: one `npm ci` at a time
        if not (STAMP.is_file() and STAMP.read_text().strip() == digest):
            _npm_ci()
            STAMP.write_text(digest + "\n")
    for package, version in PINNED.items():
        installed = json.loads((NODE_MODULES / package / "package.json").read_text())["version"]
        assert installed == version, f"{package} {installed} installed, {version} pinned"
    for build in ("segment/standalone.js", "segment/index.js", "rudder/index.js"):
        sdk, name = build.split("/")
        assert (BUILDS[sdk] / name).is_file(), f"{build}: no such file in the npm package"
    return BUILDS


# ---- the shop: another origin ------------------------------------------------------------------


class Shop:
    """The web shop's own server (127.0.0.1, a free port): a different origin from the
    collector's live server (localhost). Serves the pages a test writes and the SDK builds
    from node_modules."""

    def __init__(self, builds: dict[str, Path]) -> None:
        self.builds = builds
        self.pages: dict[str, str] = {"/shop/bye.html": page_html("Thank you", "", "")}
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                found = shop.resolve(urlsplit(self.path).path)
                if found is None:
                    self.send_error(404)
                    return
                body, content_type = found
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def resolve(self, path: str) -> tuple[bytes, str] | None:
        if path in self.pages:
            return self.pages[path].encode(), "text/html; charset=utf-8"
        match = re.fullmatch(r"/sdk/(segment|rudder)/([\w.-]+\.js)", path)
        if match and (self.builds[match[1]] / match[2]).is_file():
            return (self.builds[match[1]] / match[2]).read_bytes(), "text/javascript"
        return None

    def add(self, name: str, html: str) -> str:
        path = f"/shop/{name}-{uuid.uuid4().hex[:8]}.html"
        self.pages[path] = html
        return self.origin + path

    @property
    def bye(self) -> str:
        return f"{self.origin}/shop/bye.html"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def shop(sdk_builds: dict[str, Path]) -> Iterator[Shop]:
    server = Shop(sdk_builds)
    yield server
    server.stop()


def page_html(title: str, head: str, script: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="data:,">
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1d2433; }}
header {{ background: #2f5d50; color: #fff; padding: 16px 32px; }}
header p {{ margin: 0; opacity: .8; font-size: 14px; }}
main {{ padding: 24px 32px; }}
.product {{ border: 1px solid #d5dbe3; border-radius: 8px; padding: 16px; width: 280px; }}
#status {{ font-family: monospace; }}
</style>
{head}
</head><body>
<header><h1>Sencha &amp; Co. tea shop</h1><p>{title}</p></header>
<main>
<div class="product"><h2>Sencha, 100 g</h2><p>EUR 12.50</p><button>Add to basket</button></div>
<p id="status"></p>
</main>
<script>{script}</script>
</body></html>"""


def js(value: Any) -> str:
    return json.dumps(value)


# what the page records of each call (its type and messageId, as the SDK made it), shown on
# the page too
RECORD = """
window.__sent = {};
function sent(type, messageId) {
  window.__sent[type] = messageId;
  document.getElementById('status').textContent =
    Object.keys(window.__sent).sort().join(', ') + ': handed to the SDK';
}
"""
SEGMENT_CALLS = """
function done(ctx) { sent(ctx.event.type, ctx.event.messageId); }
ajs.identify('user-123', {email: 'jane@example.com', name: 'Jane'}).then(done);
ajs.track('Order Completed', {order_id: 'o-1', revenue: 12.5, currency: 'EUR'}).then(done);
ajs.page('Shop', 'Sencha', {extra: 'x'}).then(done);
ajs.group('group-42', {name: 'Acme Inc', plan: 'enterprise'}).then(done);
ajs.alias('user-123-new', 'user-123').then(done);
"""
RUDDER_CALLS = """
function done(event) { sent(event.type, event.messageId); }
ra.identify('user-123', {email: 'jane@example.com', name: 'Jane'}, done);
ra.track('Order Completed', {order_id: 'o-1', revenue: 12.5, currency: 'EUR'}, done);
ra.page('Shop', 'Sencha', {extra: 'x'}, done);
ra.group('group-42', {name: 'Acme Inc', plan: 'enterprise'}, done);
ra.alias('user-123-new', 'user-123', done);
"""


def segment_page(live: str, write_key: str, options: Any = None, setup: str = "") -> str:
    """analytics.js 2.0's npm build as UMD: `AnalyticsBrowser.load({writeKey, cdnURL})`."""
    settings = {"writeKey": write_key, "cdnURL": live}
    load = f"AnalyticsNext.AnalyticsBrowser.load({js(settings)}"
    load += f", {js(options)})" if options is not None else ")"
    return page_html(
        f"analytics.js 2.0 ({SEGMENT} {PINNED[SEGMENT]})",
        '<script src="/sdk/segment/index.js"></script>',
        f"{RECORD}\nvar ajs = {load};\n{setup}\n{SEGMENT_CALLS}",
    )


def segment_snippet_page(live: str, write_key: str) -> str:
    """Segment's snippet as a site has it, with the one drop-in change: `_cdn` (where the
    settings come from); the build is the shop's copy of standalone.js."""
    snippet = f"""
!function () {{
  var i = 'analytics', analytics = window[i] = window[i] || [];
  if (analytics.initialize) return;
  if (analytics.invoked) {{ console.error('Segment snippet included twice.'); return; }}
  analytics.invoked = !0;
  analytics.methods = ['trackSubmit', 'trackClick', 'trackLink', 'trackForm', 'pageview',
    'identify', 'reset', 'group', 'track', 'ready', 'alias', 'debug', 'page', 'screen', 'once',
    'off', 'on', 'addSourceMiddleware', 'addIntegrationMiddleware', 'setAnonymousId',
    'addDestinationMiddleware', 'register'];
  analytics.factory = function (e) {{
    return function () {{
      if (window[i].initialized) return window[i][e].apply(window[i], arguments);
      var n = Array.prototype.slice.call(arguments);
      if (['track', 'screen', 'alias', 'group', 'page', 'identify'].indexOf(e) > -1) {{
        var c = document.querySelector("link[rel='canonical']");
        n.push({{__t: 'bpc', c: c && c.getAttribute('href') || void 0, p: location.pathname,
          u: location.href, s: location.search, t: document.title, r: document.referrer}});
      }}
      n.unshift(e); analytics.push(n); return analytics;
    }};
  }};
  for (var k = 0; k < analytics.methods.length; k++) {{
    var key = analytics.methods[k]; analytics[key] = analytics.factory(key);
  }}
  analytics.load = function (key, opts) {{
    var t = document.createElement('script'); t.type = 'text/javascript'; t.async = !0;
    t.setAttribute('data-global-segment-analytics-key', i);
    t.src = '/sdk/segment/standalone.js';
    var r = document.getElementsByTagName('script')[0]; r.parentNode.insertBefore(t, r);
    analytics._loadOptions = opts;
  }};
  analytics._writeKey = {js(write_key)};
  analytics._cdn = {js(live)};
  analytics.SNIPPET_VERSION = '5.2.1';
  analytics.load({js(write_key)});
}}();
"""
    calls = """
analytics.identify('user-123', {email: 'jane@example.com', name: 'Jane'});
analytics.track('Order Completed', {order_id: 'o-1', revenue: 12.5, currency: 'EUR'});
analytics.page('Shop', 'Sencha', {extra: 'x'});
analytics.group('group-42', {name: 'Acme Inc', plan: 'enterprise'});
analytics.alias('user-123-new', 'user-123');
"""
    return page_html(
        f"analytics.js 2.0 snippet ({SEGMENT} {PINNED[SEGMENT]})",
        f"<script>{snippet}</script>",
        calls,
    )


def rudder_page(live: str, write_key: str, options: dict[str, Any]) -> str:
    """RudderStack's bundled UMD build: `new RudderAnalytics().load(writeKey, dataPlaneUrl,
    options)`."""
    return page_html(
        f"RudderStack JS SDK v3 ({RUDDER} {PINNED[RUDDER]})",
        '<script src="/sdk/rudder/index.js"></script>',
        f"{RECORD}\nvar ra = new window.rudderanalytics.RudderAnalytics();\n"
        f"ra.load({js(write_key)}, {js(live)}, {js(options)});\n{RUDDER_CALLS}",
    )


def rudder_options(live: str, **extra: Any) -> dict[str, Any]:
    return {"configUrl": live, "polyfillIfRequired": False, "loadIntegration": False, **extra}


def segment_io(live: str, **extra: Any) -> dict[str, Any]:
    """Load options naming the collector outright (`apiHost` has no scheme)."""
    parts = urlsplit(live)
    return {
        "integrations": {
            "Segment.io": {"apiHost": f"{parts.netloc}/v1", "protocol": parts.scheme, **extra}
        }
    }


# ---- a visit ------------------------------------------------------------------------------------


@dataclass
class Visit:
    page: Page
    url: str
    user_agent: str = ""
    collector: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, url), all origins


@pytest.fixture
def visit(page: Page, shop: Shop, live_server: Any) -> Iterator[Callable[[str, str], Visit]]:
    """Open a shop page; afterwards, check that the browser asked nothing of any other host
    than the shop and the collector (the SDKs' CDNs, api.segment.io, polyfill services)."""
    seen: list[tuple[str, str]] = []
    page.context.on("request", lambda request: seen.append((request.method, request.url)))

    def open_page(name: str, html: str) -> Visit:
        url = shop.add(name, html)
        page.goto(url)
        return Visit(page, url, page.evaluate("navigator.userAgent"), live_server.url, seen)

    yield open_page
    ours = (shop.origin + "/", live_server.url + "/")
    foreign = [url for _, url in seen if not url.startswith((*ours, "data:", "about:"))]
    assert not foreign, f"requests to other hosts: {foreign}"


def wait_until(page: Page, done: Callable[[], bool], seconds: float = WAIT_SECONDS) -> bool:
    """Poll with the browser's clock running (Playwright's event handlers run meanwhile)."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= deadline:
            return False
        page.wait_for_timeout(100)
    return True


def posts(shop_visit: Visit) -> set[str]:
    """The collector paths the page has POSTed to."""
    return {
        urlsplit(url).path
        for method, url in shop_visit.requests
        if method == "POST" and url.startswith(shop_visit.collector + "/")
    }


def stored(tenant: Tenant) -> list[Event]:
    return list(Event.objects.filter(source_id=tenant.source.pk).order_by("id"))


def arrived(page: Page, tenant: Tenant, seconds: float = WAIT_SECONDS) -> list[Event]:
    wait_until(page, lambda: len(stored(tenant)) >= len(TYPES), seconds)
    page.wait_for_timeout(300)  # a late duplicate would be in by now
    return stored(tenant)


def handed_over(visit: Visit) -> dict[str, str]:
    """Wait until the SDK has taken all five calls; their messageIds by type."""
    visit.page.wait_for_function("Object.keys(window.__sent || {}).length === 5")
    sent: dict[str, str] = visit.page.evaluate("window.__sent")
    return sent


def assert_delivered(
    events: list[Event], visit: Visit, library: str, sent: dict[str, str] | None = None
) -> None:
    """One stored event per call, as the SDK made it, with the page's context."""
    assert sorted(e.type for e in events) == TYPES, [(e.type, e.message_id) for e in events]
    if sent is not None:
        assert {e.type: e.message_id for e in events} == sent
    assert not FailedEvent.objects.exists(), list(FailedEvent.objects.values("reason", "message"))
    for event in events:
        context = event.context
        assert context["page"]["url"] == visit.url, context["page"]
        assert context["page"]["path"] == urlsplit(visit.url).path
        assert context["userAgent"] == visit.user_agent
        assert context["locale"] == LOCALE
        assert context["library"]["version"].endswith(PINNED[library]), context["library"]
    by_type = {e.type: e for e in events}
    assert by_type["identify"].user_id == "user-123"
    assert by_type["track"].event == "Order Completed"
    assert by_type["track"].properties["revenue"] == 12.5
    assert by_type["page"].name == "Sencha"
    assert by_type["group"].group_id == "group-42"
    assert by_type["alias"].previous_id == "user-123"


# ---- every delivery mode ------------------------------------------------------------------------

SEGMENT_MODES: dict[str, dict[str, Any] | None] = {
    "per-event": None,
    "batching": {"strategy": "batching", "config": {"size": 10, "timeout": 1000}},
    # nothing would go before a minute: the page leave sends it (fetch with keepalive)
    "batching-on-leave": {"strategy": "batching", "config": {"size": 10, "timeout": 60_000}},
}


def leave_after_checking_nothing_went(shop_visit: Visit, tenant: Tenant, shop: Shop) -> None:
    shop_visit.page.wait_for_timeout(300)
    assert posts(shop_visit) == set()  # all in the SDK's queue
    assert stored(tenant) == []
    shop_visit.page.goto(shop.bye)
    # (Playwright does not report the requests a page sends while it is left)


@pytest.mark.parametrize("mode", list(SEGMENT_MODES))
def test_segment_delivers_each_call_once(
    visit: Callable[[str, str], Visit],
    shop: Shop,
    live_server: Any,
    tenant_a: Tenant,
    mode: str,
    screenshot: Any,
) -> None:
    strategy = SEGMENT_MODES[mode]
    extra = {"deliveryStrategy": strategy} if strategy else {}
    html = segment_page(live_server.url, tenant_a.write_key, segment_io(live_server.url, **extra))
    shop_visit = visit(f"segment-{mode}", html)
    sent = handed_over(shop_visit)
    if mode.endswith("on-leave"):
        leave_after_checking_nothing_went(shop_visit, tenant_a, shop)
    events = arrived(shop_visit.page, tenant_a)
    assert_delivered(events, shop_visit, SEGMENT, sent)
    if mode == "per-event":
        assert posts(shop_visit) == {"/v1/i", "/v1/t", "/v1/p", "/v1/g", "/v1/a"}
        shop_visit.page.evaluate(
            "document.getElementById('status').textContent += ' - stored by the collector'"
        )
        screenshot(shop_visit.page, "website-sdk-segment-shop")
    elif mode == "batching":
        assert posts(shop_visit) == {"/v1/b"}


RUDDER_MODES: dict[str, dict[str, Any]] = {
    "xhr": {},
    "batch": {"queueOptions": {"batch": {"enabled": True, "maxItems": 10, "flushInterval": 1000}}},
    # beacons wait for 10 events or 10 minutes: the page leave sends them
    "beacon-on-leave": {"useBeacon": True, "beaconQueueOptions": {"flushQueueInterval": 600_000}},
}


@pytest.mark.parametrize("mode", list(RUDDER_MODES))
def test_rudderstack_delivers_each_call_once(
    visit: Callable[[str, str], Visit], shop: Shop, live_server: Any, tenant_a: Tenant, mode: str
) -> None:
    options = rudder_options(live_server.url, **RUDDER_MODES[mode])
    shop_visit = visit(f"rudder-{mode}", rudder_page(live_server.url, tenant_a.write_key, options))
    sent = handed_over(shop_visit)
    if mode.endswith("on-leave"):
        leave_after_checking_nothing_went(shop_visit, tenant_a, shop)
    events = arrived(shop_visit.page, tenant_a)
    assert_delivered(events, shop_visit, RUDDER, sent)
    if mode == "xhr":
        assert posts(shop_visit) == {f"/v1/{t}" for t in TYPES}
    elif mode == "batch":
        assert posts(shop_visit) == {"/v1/batch"}


# ---- drop-in: only the settings URL points here -------------------------------------------------


@pytest.mark.parametrize("setup", ["segment-npm", "segment-snippet", "rudderstack"])
def test_drop_in_only_the_settings_url_changes(
    visit: Callable[[str, str], Visit], live_server: Any, tenant_a: Tenant, setup: str
) -> None:
    """No collector address in the page but the settings URL: the settings served point the
    SDK back at the host they came from."""
    live, key = live_server.url, tenant_a.write_key
    html = {
        "segment-npm": lambda: segment_page(live, key),
        "segment-snippet": lambda: segment_snippet_page(live, key),
        "rudderstack": lambda: rudder_page(live, key, {"configUrl": live}),
    }[setup]()
    shop_visit = visit(f"drop-in-{setup}", html)
    events = arrived(shop_visit.page, tenant_a)
    assert_delivered(events, shop_visit, RUDDER if setup == "rudderstack" else SEGMENT)


# ---- consent ------------------------------------------------------------------------------------


def test_segment_consent_preferences_are_stored_as_sent(
    visit: Callable[[str, str], Visit], live_server: Any, tenant_a: Tenant
) -> None:
    """What Segment's consent wrapper does: a source middleware stamping every event with
    the visitor's category preferences."""
    preferences = {"C0001": True, "C0002": False, "marketing": False}
    stamp = f"""
ajs.addSourceMiddleware(function (ctx) {{
  var event = ctx.payload.obj;
  event.context = event.context || {{}};
  event.context.consent = {{categoryPreferences: {js(preferences)}}};
  ctx.next(ctx.payload);
}});
"""
    html = segment_page(live_server.url, tenant_a.write_key, setup=stamp)
    shop_visit = visit("segment-consent", html)
    sent = handed_over(shop_visit)
    events = arrived(shop_visit.page, tenant_a)
    assert_delivered(events, shop_visit, SEGMENT, sent)
    for event in events:
        assert event.context["consent"] == {"categoryPreferences": preferences}


# ---- a source restricted to some origins --------------------------------------------------------


def sdk_page(sdk: str, live: str, write_key: str) -> str:
    """The SDK's page with the collector named outright (per-event delivery)."""
    if sdk == "segment":
        return segment_page(live, write_key, segment_io(live))
    return rudder_page(live, write_key, rudder_options(live))


def collector_post(request: Request, live_url: str) -> str | None:
    """The path of an event POST to the collector (None for anything else)."""
    if request.method == "POST" and request.url.startswith(live_url + "/"):
        return urlsplit(request.url).path
    return None


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_restricted_source_refuses_the_shop_until_allowed(
    visit: Callable[[str, str], Visit],
    page: Page,
    shop: Shop,
    live_server: Any,
    tenant_a: Tenant,
    console: Any,
    sdk: str,
) -> None:
    # the refusals carry no CORS headers: the browser says so, and the SDK, seeing a network
    # error, tries again later
    console.allow(r"has been blocked by CORS policy")
    console.allow(r"Failed to load resource: net::ERR_FAILED")
    services.source_update(source=tenant_a.source, allowed_origins=["https://shop.example.com"])
    refused: set[str] = set()
    blocked = re.compile(
        rf"at '{re.escape(live_server.url)}(/[^']*)' from origin '{re.escape(shop.origin)}' "
        r"has been blocked by CORS policy: No 'Access-Control-Allow-Origin' header"
    )

    def on_console(message: ConsoleMessage) -> None:
        found = blocked.search(message.text)
        if found:
            refused.add(found[1])

    page.on("console", on_console)
    shop_visit = visit(f"restricted-{sdk}", sdk_page(sdk, live_server.url, tenant_a.write_key))
    sent = handed_over(shop_visit)
    # every call was answered, without CORS headers (the collector's 403 origin_not_allowed)
    assert wait_until(page, lambda: refused == posts(shop_visit) and len(refused) == 5), refused
    assert stored(tenant_a) == []
    assert not FailedEvent.objects.exists()

    services.source_update(source=tenant_a.source, allowed_origins=[shop.origin])
    events = arrived(page, tenant_a, seconds=20)  # the SDK's next try
    assert_delivered(events, shop_visit, SEGMENT if sdk == "segment" else RUDDER, sent)


# ---- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_retried_requests_are_stored_once(
    visit: Callable[[str, str], Visit],
    page: Page,
    live_server: Any,
    tenant_a: Tenant,
    console: Any,
    sdk: str,
) -> None:
    """The first POST of each call reaches the collector (and is stored) but the page gets a
    500 in place of the answer, so the SDK sends it again with the same messageId: the
    collector must recognise the retry. (While requests are routed, Playwright answers the
    CORS preflights itself.)"""
    console.allow(r"status of 500")
    answers: dict[str, list[tuple[int, Any]]] = {}  # path: the collector's answers, in order

    def lose_first_answer(route: Route, request: Request) -> None:
        path = collector_post(request, live_server.url)
        if path is None:
            route.continue_()
            return
        response = route.fetch()  # the request as the page sent it, to the collector
        tries = answers.setdefault(path, [])
        tries.append((response.status, response.json()))
        if len(tries) == 1:
            route.fulfill(
                status=500,
                headers={
                    "Access-Control-Allow-Origin": request.headers.get("origin", "*"),
                    "Content-Type": "text/plain",
                },
                body="the answer was lost",
            )
        else:
            route.fulfill(response=response)

    page.route(f"{live_server.url}/**", lose_first_answer)
    shop_visit = visit(f"retry-{sdk}", sdk_page(sdk, live_server.url, tenant_a.write_key))
    sent = handed_over(shop_visit)

    def retried() -> bool:
        return len(answers) == len(TYPES) and all(len(a) >= 2 for a in answers.values())

    assert wait_until(page, retried), answers
    events = arrived(page, tenant_a)
    assert_delivered(events, shop_visit, SEGMENT if sdk == "segment" else RUDDER, sent)
    for path, tries in answers.items():
        # stored the first time; every retry answered 200 as a duplicate
        assert tries[0] == (200, {"success": True, "accepted": 1, "duplicates": 0, "failed": 0})
        duplicate = (200, {"success": True, "accepted": 0, "duplicates": 1, "failed": 0})
        assert all(t == duplicate for t in tries[1:]), (path, tries)
