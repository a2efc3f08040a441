"""No template holds code that a strict Content-Security-Policy (`script-src 'self'`) would
block: no inline <script> (page data goes through json_script, whose type="application/json"
blocks are data), no on<event>= handler attributes, no javascript: URLs. Scripts are native ES
modules loaded by src.

Every template under the template directories is scanned with Django's own syntax blanked out
first, so a handler written inside {% if %} … {% endif %} is found like any other."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template import engines
from django.template.backends.django import DjangoTemplates
from django.template.loader import get_template

TEMPLATE_DIRS = [
    Path(d) for e in engines.all() if isinstance(e, DjangoTemplates) for d in e.engine.dirs
]
TEMPLATES = {str(p.relative_to(d)): p for d in TEMPLATE_DIRS for p in sorted(d.rglob("*.html"))}
DJANGO_SYNTAX = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.S)
DJANGO_VALUE = re.compile(r"\{\{.*?\}\}", re.S)
DATA_TYPES = {"application/json", "application/ld+json"}


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        where = f"line {self.getpos()[0]}: <{tag}>"
        for name, value in attrs:
            if re.fullmatch(r"on[a-z]+", name):
                self.problems.append(f"{where} has an inline handler {name}=")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"{where} has a javascript: URL in {name}")
        if tag != "script":
            return
        kind = (names.get("type") or "").strip().lower()
        if "src" in names:
            if kind != "module":
                self.problems.append(f'{where} loads a script that is not type="module"')
        elif kind not in DATA_TYPES:
            self.problems.append(f"{where} is an inline script")


def problems(source: str) -> list[str]:
    scan = _Scan()
    # keep line numbers: a blanked tag keeps its newlines
    blank = DJANGO_SYNTAX.sub(lambda m: " " + "\n" * m.group(0).count("\n"), source)
    scan.feed(DJANGO_VALUE.sub("x", blank))
    scan.close()
    return scan.problems


def test_the_template_directories_are_scanned() -> None:
    assert len(TEMPLATES) > 20
    assert "base.html" in TEMPLATES


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_no_inline_script_or_handler(name: str) -> None:
    get_template(name)  # a template Django reads (and finds by this name)
    assert problems(TEMPLATES[name].read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("html", "found"),
    [
        ("<script>alert(1)</script>", "inline script"),
        ('<script type="text/javascript">x()</script>', "inline script"),
        ("<script src='/static/a.js'></script>", 'not type="module"'),
        ('<form onsubmit="return confirm(1)">', "inline handler onsubmit="),
        ('<select {% if a %}onchange="this.form.submit()"{% endif %}>', "inline handler onchange="),
        ('<button ONCLICK="x()">', "inline handler onclick="),
        ('<a href="javascript:void(0)">', "javascript: URL"),
    ],
)
def test_the_scan_finds_what_csp_blocks(html: str, found: str) -> None:
    found_problems = problems(html)
    assert len(found_problems) == 1 and found in found_problems[0], found_problems


@pytest.mark.parametrize(
    "html",
    [
        '<script type="module" src="/static/cdp/app.js"></script>',
        '<script id="segment-config" type="application/json">{"a": 1}</script>',
        '{{ config|json_script:"segment-config" }}',
        '<form data-confirm="Revoke {{ t.name }}?"><select data-autosubmit></select></form>',
        '<p class="online" data-on="x">on=1</p>',
    ],
)
def test_the_scan_lets_modules_data_and_attributes_through(html: str) -> None:
    assert problems(html) == []
