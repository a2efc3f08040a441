"""The segments app's part of workspace configuration as code (cdp.config_code): segments,
with their live rule (or their draft's, for one never published)."""

from __future__ import annotations

from typing import Any

from cdp import config_code
from cdp.errors import ValidationFailed
from cdp.models import Workspace
from segments.models import Segment, SegmentStatus
from segments.services import segment_create, segment_publish, segment_update

FIELDS = ("key", "name", "description", "tags", "status", "rule")
STATUSES = (SegmentStatus.PUBLISHED, SegmentStatus.DRAFT)


def rule_with_keys(workspace: Workspace, rule: Any, keys: dict[int, str] | None = None) -> Any:
    """A rule (a segment's, an experiment's targeting, an offer's eligibility) with its
    `{"segment": id}` conditions naming the segment by key: ids differ between workspaces, and
    the rule language takes either."""
    if rule is None:
        return None
    if keys is None:
        keys = dict(Segment.objects.filter(workspace=workspace).values_list("pk", "key"))

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(child) for child in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("segment")
        if set(node) == {"segment"} and isinstance(ref, int) and not isinstance(ref, bool):
            return {"segment": keys.get(ref, ref)}
        return {k: walk(v) for k, v in node.items()}

    return walk(rule)


def referenced_keys(item: dict[str, Any]) -> set[str]:
    """The segments (by key) an item's rule refers to: they are applied before it."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            ref = node.get("segment")
            if set(node) == {"segment"} and isinstance(ref, str):
                found.add(ref)
            for value in node.values():
                walk(value)

    walk(item.get("rule"))
    return found


def export_segments(workspace: Workspace) -> list[dict[str, Any]]:
    rows = Segment.objects.filter(workspace=workspace, status__in=STATUSES).select_related(
        "published_version", "draft_version"
    )
    keys = dict(Segment.objects.filter(workspace=workspace).values_list("pk", "key"))
    out = []
    for segment in rows:
        version = segment.published_version or segment.draft_version
        out.append(
            {
                "key": segment.key,
                "name": segment.name,
                "description": segment.description,
                "tags": list(segment.tags),
                "status": segment.status,
                "rule": rule_with_keys(workspace, version.rule, keys) if version else None,
            }
        )
    return out


def apply_segment(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    config_code.only(item, set(FIELDS), {"key", "name", "rule"})
    status = item.get("status", SegmentStatus.DRAFT)
    if status not in STATUSES:
        raise ValidationFailed.at("status", f"expected one of {', '.join(STATUSES)}")
    if current is None:
        segment_create(
            workspace=workspace,
            key=item["key"],
            name=item["name"],
            rule=item["rule"],
            description=item.get("description", ""),
            tags=item.get("tags", []),
            publish=status == SegmentStatus.PUBLISHED,
            actor=actor,
        )
        return
    if current["status"] == SegmentStatus.PUBLISHED and status != SegmentStatus.PUBLISHED:
        raise ValidationFailed.at("status", "a live segment cannot go back to draft")
    segment = Segment.objects.get(workspace=workspace, key=item["key"])
    segment = segment_update(
        segment=segment,
        actor=actor,
        name=item["name"],
        description=item.get("description", ""),
        tags=item.get("tags", []),
        rule=item["rule"],
    )
    if status == SegmentStatus.PUBLISHED and segment.pending_draft is not None:
        segment_publish(segment=segment, actor=actor)


def register() -> None:
    config_code.register(
        key="segments",
        order=50,
        identity="key",
        export=export_segments,
        apply=apply_segment,
        depends=referenced_keys,
    )
