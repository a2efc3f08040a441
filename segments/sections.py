"""Sections of the segment page that higher apps contribute (activation shows where the
segment is synced to): each registers a template and the function making its context in its
`AppConfig.ready()`; the segments app imports none of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from cdp import access
from cdp.models import Workspace
from segments.models import Segment

SectionContext = Callable[[HttpRequest, Workspace, Segment], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SegmentSection:
    key: str
    order: int
    template: str  # rendered with its context as `section`
    context_fn: SectionContext
    capability: str | None = None  # who sees it (None: whoever sees the segment)


_SECTIONS: dict[str, SegmentSection] = {}


def register(
    *,
    key: str,
    order: int,
    template: str,
    context_fn: SectionContext,
    capability: str | None = None,
) -> None:
    """Add (or replace, keyed by `key`) a section of the segment page."""
    if capability is not None and capability not in access.CAPABILITIES:
        raise KeyError(f"segment section {key!r}: unknown capability {capability!r}")
    _SECTIONS[key] = SegmentSection(key, order, template, context_fn, capability)


def sections() -> list[SegmentSection]:
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.key))


def page_sections(
    request: HttpRequest, workspace: Workspace, segment: Segment
) -> list[dict[str, Any]]:
    """[{"key", "template", "context"}] of the sections the user may see."""
    return [
        {"key": s.key, "template": s.template, "context": s.context_fn(request, workspace, segment)}
        for s in sections()
        if s.capability is None or access.can(request.user, workspace, s.capability)
    ]
