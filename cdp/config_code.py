"""Workspace configuration as code: export a workspace's definitions (sources, purposes,
computed traits, segments, …) as one JSON/YAML document, see the difference a document would
make, and apply it — so staging and production stay in step (`manage.py cdp_config`, the
`config/` API).

Each app registers the kinds it owns in its `AppConfig.ready()` (the core imports none of
them). A kind's items are named by a stable key (a source's name, a purpose's key, …);
secrets are never exported (write keys, tokens and passwords stay where they are; a
destination would carry a reference). Applying is idempotent: an item equal to the document is
left alone, so applying twice changes nothing, and export → apply on an empty workspace →
export gives the same document. Items the workspace has and the document lacks are reported
(`extra`), never deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.db import transaction

from cdp.errors import ValidationFailed
from cdp.models import Workspace, audit

VERSION = 1


@dataclass(frozen=True, slots=True)
class Kind:
    key: str  # the document's section, e.g. "sources"
    order: int  # applied in this order (purposes before the segments that read consent…)
    identity: str  # the field naming an item, e.g. "key" or "name"
    export: Callable[[Workspace], list[dict[str, Any]]]
    # (workspace, item, current item or None, actor) -> None; raises ValidationFailed with
    # paths relative to the item
    apply: Callable[[Workspace, dict[str, Any], dict[str, Any] | None, Any], None]
    # (workspace, item equal to its export) -> the fields whose live value differs from what
    # the item's references resolve to now (a secret rotated behind the same reference):
    # such an item is applied although the documents are equal
    stale: Callable[[Workspace, dict[str, Any]], list[str]] | None = None
    # item -> the names of items of the same kind it refers to (a segment built on another):
    # those are applied first
    depends: Callable[[dict[str, Any]], set[str]] | None = None


_KINDS: dict[str, Kind] = {}


def register(
    *,
    key: str,
    order: int,
    identity: str,
    export: Callable[[Workspace], list[dict[str, Any]]],
    apply: Callable[[Workspace, dict[str, Any], dict[str, Any] | None, Any], None],
    stale: Callable[[Workspace, dict[str, Any]], list[str]] | None = None,
    depends: Callable[[dict[str, Any]], set[str]] | None = None,
) -> None:
    _KINDS[key] = Kind(key, order, identity, export, apply, stale, depends)


def _in_apply_order(kind: Kind, items: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """The items with their index in the document, each after the items it refers to
    (document order otherwise; a cycle is left as it is, for the apply to name)."""
    indexed = list(enumerate(items))
    if kind.depends is None:
        return indexed
    by_name = {item[kind.identity]: (index, item) for index, item in indexed}
    ordered: list[tuple[int, dict[str, Any]]] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        if state.get(name):
            return  # placed, or being placed (a cycle)
        state[name] = "visiting"
        index, item = by_name[name]
        for other in sorted(kind.depends(item) if kind.depends else ()):
            if other in by_name:
                visit(other)
        state[name] = "placed"
        ordered.append((index, item))

    for _, item in indexed:
        visit(item[kind.identity])
    return ordered


def kinds() -> list[Kind]:
    return sorted(_KINDS.values(), key=lambda k: (k.order, k.key))


def export(workspace: Workspace) -> dict[str, Any]:
    """The workspace's definitions, every list sorted by its items' names (stable output)."""
    doc: dict[str, Any] = {"version": VERSION}
    for kind in kinds():
        name = kind.identity
        doc[kind.key] = sorted(kind.export(workspace), key=lambda item: str(item[name]))
    return doc


@dataclass
class Change:
    kind: str
    name: str
    action: str  # create | update | extra
    fields: list[str] = field(default_factory=list)

    def text(self) -> str:
        if self.action == "update":
            return f"~ {self.kind} {self.name}: {', '.join(self.fields)}"
        sign = {"create": "+", "extra": "?"}[self.action]
        note = " (in the workspace, not in the document: left as it is)" if sign == "?" else ""
        return f"{sign} {self.kind} {self.name}{note}"


def _check_document(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ValidationFailed.at("$", "expected a document object (version, sources, …)")
    if doc.get("version") != VERSION:
        raise ValidationFailed.at("version", f"expected {VERSION}")
    unknown = sorted(set(doc) - {"version", *_KINDS})
    if unknown:
        raise ValidationFailed.at(
            unknown[0], f"unknown section (known: {', '.join(k.key for k in kinds())})"
        )
    errors: dict[str, list[str]] = {}
    for kind in kinds():
        items = doc.get(kind.key, [])
        if not isinstance(items, list):
            errors[kind.key] = ["expected a list"]
            continue
        seen: set[str] = set()
        for index, item in enumerate(items):
            path = f"{kind.key}[{index}]"
            if not isinstance(item, dict) or not isinstance(item.get(kind.identity), str):
                errors[path] = [f"expected an object with a {kind.identity!r}"]
            elif item[kind.identity] in seen:
                errors[f"{path}.{kind.identity}"] = [f"{item[kind.identity]!r} appears twice"]
            else:
                seen.add(item[kind.identity])
    if errors:
        raise ValidationFailed(errors)
    return doc


def diff(workspace: Workspace, doc: Any) -> list[Change]:
    """What applying `doc` would change, kind by kind in apply order."""
    doc = _check_document(doc)
    changes: list[Change] = []
    current = export(workspace)
    for kind in kinds():
        if kind.key not in doc:
            continue  # a document without a section leaves that kind alone
        have = {item[kind.identity]: item for item in current.get(kind.key, [])}
        want = {item[kind.identity]: item for item in doc[kind.key]}
        for name, item in want.items():
            old = have.get(name)
            if old is None:
                changes.append(Change(kind.key, name, "create"))
            else:
                fields = sorted(k for k in set(item) | set(old) if item.get(k) != old.get(k))
                if not fields and kind.stale is not None:
                    fields = kind.stale(workspace, item)
                if fields:
                    changes.append(Change(kind.key, name, "update", fields))
        changes.extend(Change(kind.key, name, "extra") for name in sorted(set(have) - set(want)))
    return changes


@transaction.atomic
def apply(workspace: Workspace, doc: Any, *, actor: Any = None) -> list[Change]:
    """Make the workspace match `doc` (creates and updates; nothing is deleted), all or
    nothing. Returns the changes made; errors name the item (`segments[2].rule.all[0].op`)."""
    changes = diff(workspace, doc)
    updated = {(c.kind, c.name) for c in changes if c.action == "update"}
    current = export(workspace)
    for kind in kinds():
        if kind.key not in doc:
            continue
        have = {item[kind.identity]: item for item in current.get(kind.key, [])}
        for index, item in _in_apply_order(kind, doc[kind.key]):
            old = have.get(item[kind.identity])
            if old == item and (kind.key, item[kind.identity]) not in updated:
                continue
            try:
                kind.apply(workspace, item, old, actor)
            except ValidationFailed as exc:
                raise ValidationFailed(
                    {f"{kind.key}[{index}].{path}": msgs for path, msgs in exc.fields.items()}
                ) from exc
    made = [c for c in changes if c.action != "extra"]
    if made:
        audit(
            workspace=workspace,
            actor=actor,
            action="config.apply",
            target=workspace,
            detail={"changes": [c.text() for c in made][:200]},
        )
    return changes


def dumps(doc: dict[str, Any], fmt: str = "yaml") -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def loads(text: str) -> Any:
    """A JSON or YAML document (JSON is YAML; a clear error for neither)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed.at("$", f"not JSON or YAML: {exc}") from exc


def only(item: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    """An item's fields: unknown ones and missing required ones are errors by path."""
    errors: dict[str, list[str]] = {}
    for name in sorted(set(item) - allowed):
        errors[name] = ["unknown field"]
    for name in sorted(required - set(item)):
        errors[name] = ["required"]
    if errors:
        raise ValidationFailed(errors)
