"""One crawl of every page from the home page (every same-origin link, as an owner, with data on
each kind of page) checks two things on the way:

- the strict Content-Security-Policy: any violation — reported by the page
  (securitypolicyviolation) or in the console — and any response without the header fail;
- accessibility: axe-core (the engine behind Lighthouse's audit) on one page of each URL pattern
  fails on any serious or critical violation.

Both crawled the same pages in two tests before; one crawl visits each page once."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from consent import privacy
from consent.services import purposes_install_defaults
from profiles.pipeline import queue
from segments.services import segment_create
from tests.fixtures import Tenant, post_collector

pytestmark = pytest.mark.browser

WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${where}`);
});
"""
# pages reached by links that change things (or log out) are not followed
SKIP = ("/logout/", "/admin/logout/", "/api/schema/", "/api/v1/")  # API answers are not pages
SEEDS = ["/api/docs/", "/admin/login/", "/settings/identity/", "/no-such-page/"]
# the accessibility audit: WCAG 2.1 A/AA and axe's best practices, not on Django's admin or
# Swagger UI (not ours)
AXE_RULES = {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}
AXE_SKIP = ("/admin/", "/api/docs/")


def _pattern(path: str) -> str:
    """/segments/12/?page=2 -> /segments/N/: one page of each kind is audited."""
    return re.sub(r"\d+", "N", path.split("?")[0])


def _data(tenant: Tenant, client: Any) -> None:
    purposes_install_defaults(workspace=tenant.workspace)
    events = [
        {
            "type": "identify",
            "userId": "u-csp",
            "traits": {"email": "csp@example.com", "plan": "pro"},
        },
        {
            "type": "track",
            "userId": "u-csp",
            "event": "Order Completed",
            "properties": {"revenue": 9},
        },
        {"type": "identify", "anonymousId": "a-csp", "traits": {"email": "csp@example.com"}},
    ]
    assert (
        post_collector(
            client, "/v1/batch", {"batch": events}, write_key=tenant.write_key
        ).status_code
        == 200
    )
    queue.drain()
    segment_create(
        workspace=tenant.workspace,
        name="Pro",
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        actor=tenant.users["owner"],
        publish=True,
    )
    privacy.privacy_request_create(
        workspace=tenant.workspace, type="export", identifier="email:csp@example.com"
    )


def test_every_page_keeps_to_the_content_security_policy_and_is_accessible(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, client: Any, console: Any
) -> None:
    console.allow(r"404 \(Not Found\).*no-such-page")
    _data(tenant_a, client)
    page.add_init_script(WATCH)
    login_as(tenant_a.users["owner"])
    axe = Axe()
    base = live_server.url
    queue_: list[str] = ["/", *SEEDS]
    seen: set[str] = set()
    audited: set[str] = set()
    problems: list[str] = []
    inaccessible: list[str] = []
    while queue_ and len(seen) < 80:
        path = queue_.pop(0)
        if path in seen or path.startswith(SKIP):
            continue
        seen.add(path)
        response = page.goto(base + path)
        assert response is not None
        policy = response.headers.get("content-security-policy", "")
        if "default-src 'self'" not in policy or "frame-ancestors 'none'" not in policy:
            problems.append(f"{path}: no strict policy ({policy!r})")
        page.wait_for_load_state("networkidle")
        problems += [f"{path}: {v}" for v in page.evaluate("window.__csp")]
        if _pattern(path) not in audited and not path.startswith(AXE_SKIP):
            audited.add(_pattern(path))
            result = axe.run(page, options={"runOnly": AXE_RULES})
            for violation in result.response["violations"]:
                if violation["impact"] in ("serious", "critical"):
                    targets = [str(node["target"]) for node in violation["nodes"][:3]]
                    inaccessible.append(
                        f"{path}: {violation['id']} ({violation['help']}) at {targets}"
                    )
        for href in page.eval_on_selector_all(
            "a[href]", "els => els.map(e => e.getAttribute('href'))"
        ):
            target = urlsplit(urljoin(base + path, href))
            if target.netloc == urlsplit(base).netloc and target.path not in seen:
                queue_.append(target.path + (f"?{target.query}" if target.query else ""))
    assert not problems, "\n".join(problems)
    assert not inaccessible, "\n".join(inaccessible)
    # the crawl reached every kind of page
    for kind in ("/sources/", "/profiles/", "/segments/", "/privacy/", "/debugger/", "/schema/"):
        assert any(p.startswith(kind) and p != kind for p in seen) or kind in seen, kind
    assert len(seen) >= 25, sorted(seen)
    assert len(audited) >= 20, sorted(audited)
