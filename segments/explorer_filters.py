# ruff: noqa: S611 - the rule compiler's SQL: constants and placeholders, values are parameters
"""What the segments app adds to the profile explorer (profiles/explorer), registered in
SegmentsConfig.ready():

- `segment=<key or id>`: current members of a published segment;
- `rule=<JSON>`: profiles matching a rule of the segment rule language, checked and compiled
  exactly as a segment's (segments/rules), edited on the page with the builder's own
  condition editor (segments/static/segments/tree.js, loaded by the explorer's script);
- model scores (Profile.computed) as sort keys;
- the action "Create segment from this filter": a new, unpublished segment whose draft rule
  says what the explorer's filters say, opened in the builder."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone

from cdp.errors import ValidationFailed
from cdp.models import Workspace
from profiles import explorer
from profiles.computed import builtin
from segments import services
from segments.ml.models import SCORE_KINDS, MLModel
from segments.models import Membership, Segment, SegmentStatus
from segments.rules import compile as compiler
from segments.rules import nodes as n
from segments.rules.schema import builder_language
from segments.selectors import builder_suggestions

SEGMENT_NAME_MAX = 200


# ---- segment membership --------------------------------------------------------------------


def _published(workspace: Workspace) -> Any:
    return Segment.objects.filter(workspace=workspace, status=SegmentStatus.PUBLISHED)


def _parse_segment(workspace: Workspace, text: str) -> Segment:
    rows = _published(workspace)
    found = (rows.filter(pk=int(text)) if text.isascii() and text.isdigit() else rows.none()) or (
        rows.filter(key=text)
    )
    segment = found.first()
    if segment is None:
        raise ValidationFailed.at(
            "segment", f"no published segment {text[:60]!r} in this workspace"
        )
    return segment


def _members(workspace: Workspace, segment: Segment) -> Q:
    current = Membership.objects.filter(segment=segment, exited_at__isnull=True)
    return Q(pk__in=current.values("profile_id"))


def _segment_choices(workspace: Workspace) -> list[tuple[str, str]]:
    return [(s.key, s.name) for s in _published(workspace).order_by("name", "key")]


# ---- rule conditions -----------------------------------------------------------------------


def _parse_rule(workspace: Workspace, text: str) -> tuple[Any, n.Node]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed.at("rule", f"not JSON: {exc}") from exc
    return data, services.rule_parse(workspace=workspace, rule=data)


def _matching(workspace: Workspace, value: tuple[Any, n.Node], now: datetime | None = None) -> Q:
    sql, named = compiler.members_query(
        value[1], workspace_id=workspace.pk, now=now or timezone.now()
    )
    return Q(pk__in=RawSQL(*explorer.positional(sql, named)))


def _condition_text(node: Any) -> str:
    """One condition in words ("plan is pro", "did Order Completed"), for chips and names."""
    if not isinstance(node, dict):
        return "a condition"
    if "not" in node and len(node) == 1:
        return f"not ({_condition_text(node['not'])})"
    if isinstance(node.get("trait"), str):
        op = n.OP_LABELS.get(str(node.get("op")), str(node.get("op")))
        value = node.get("value")
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        return f"{node['trait']} {op}" + ("" if value is None else f" {shown}")
    if isinstance(node.get("event"), str):
        return f"never did {node['event']}" if node.get("never") else f"did {node['event']}"
    if node.get("segment") is not None:
        return f"in segment {node['segment']}"
    if isinstance(node.get("consent"), str):
        return f"consent {node['consent']} {node.get('status', 'granted')}"
    return "a condition"


def _rule_text(data: Any, limit: int = 60) -> str:
    """The rule in words: its first condition, and how many more."""
    children = data.get("all") or data.get("any") if isinstance(data, dict) else None
    if isinstance(children, list) and len(data) == 1:
        if not children:
            return "no condition"
        first = _condition_text(children[0])[:limit]
        more = len(children) - 1
        joiner = "and" if "all" in data else "or"
        return first + (f" {joiner} {more} more" if more else "")
    return _condition_text(data)[:limit]


def _describe_rule(workspace: Workspace, value: tuple[Any, n.Node]) -> str:
    return f"Conditions: {_rule_text(value[0])}"


def _rule_editor(workspace: Workspace) -> dict[str, Any]:
    """The builder's condition editor as the explorer's script loads it."""
    return {
        "kind": "rule",
        "modules": {
            "tree": static("segments/tree.js"),
            "model": static("segments/rule_model.js"),
            "controls": static("segments/controls.js"),
        },
        "language": builder_language(),
        "suggestions": builder_suggestions(workspace=workspace, exclude_segment=None),
    }


# ---- model scores as sort keys -------------------------------------------------------------


def _score_sorts(workspace: Workspace) -> list[tuple[str, str, str]]:
    """Propensity and churn models' scores (0–1), as their scoring writes them."""
    models = MLModel.objects.filter(workspace=workspace, kind__in=SCORE_KINDS).order_by("name")
    return [(model.key, f"{model.name} (score)", "number") for model in models]


# ---- create a segment from the explorer's filter -------------------------------------------


def explorer_rule(query: explorer.ExplorerQuery) -> dict[str, Any]:
    """The rule that says what the query's filters say: RFM segments, segment membership and
    conditions, all of them (ALL). The search text is not part of it (it reads identifiers,
    which the rule language does not)."""
    parts: list[Any] = []
    if query.rfm:
        key = builtin.BY_KEY["rfm_segment"].key
        if len(query.rfm) == 1:
            parts.append({"trait": key, "op": "eq", "value": query.rfm[0]})
        else:
            parts.append({"trait": key, "op": "in", "value": list(query.rfm)})
    segment = query.value("segment")
    if segment is not None:
        parts.append({"segment": segment.key})
    rule = query.value("rule")
    if rule is not None:
        data = rule[0]
        if isinstance(data, dict) and list(data) == ["all"] and isinstance(data["all"], list):
            parts.extend(data["all"])  # one ALL group, not two nested
        else:
            parts.append(data)
    return {"all": parts}


def _segment_name(workspace: Workspace, query: explorer.ExplorerQuery) -> str:
    """What the filter says, in words: "Champions, in VIPs, plan is pro"."""
    words = [", ".join(query.rfm)] if query.rfm else []
    segment = query.value("segment")
    if segment is not None:
        words.append(f"in {segment.name}")
    rule = query.value("rule")
    if rule is not None:
        words.append(_rule_text(rule[0]))
    base = ", ".join(words)[: SEGMENT_NAME_MAX - 20]
    base = base[:1].upper() + base[1:]
    name, number = base, 2
    while Segment.objects.filter(workspace=workspace, name=name).exists():
        name, number = f"{base} ({number})", number + 1
    return name


def create_segment(workspace: Workspace, actor: Any, query: explorer.ExplorerQuery) -> str:
    if not query.has_filter:
        raise ValidationFailed.at("rule", "filter by an RFM segment, a segment or conditions first")
    segment = services.segment_create(
        workspace=workspace,
        name=_segment_name(workspace, query),
        description="Made from a filter of the profile explorer.",
        rule=explorer_rule(query),
        actor=actor,
    )
    return reverse("ui-segment", args=[segment.pk])


def register() -> None:
    explorer.register_filter(
        explorer.ExplorerFilter(
            param="segment",
            label="Segment",
            capability="segments.view",
            parse=_parse_segment,
            condition=_members,
            describe=lambda workspace, segment: f"In segment: {segment.name}",
            choices=_segment_choices,
            order=10,
        )
    )
    explorer.register_filter(
        explorer.ExplorerFilter(
            param="rule",
            label="Conditions",
            capability="segments.view",
            parse=_parse_rule,
            condition=_matching,
            describe=_describe_rule,
            editor=_rule_editor,
            order=20,
        )
    )
    explorer.register_sort_source("model_scores", _score_sorts)
    explorer.register_action(
        explorer.ExplorerAction(
            key="create-segment",
            label="Create segment from this filter",
            capability="segments.create",
            run=create_segment,
            title="A new, unpublished segment whose rule is this filter, opened in the "
            "segment builder",
        )
    )
