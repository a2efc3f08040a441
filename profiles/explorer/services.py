"""Saved views of the profile explorer: a user names the current search, sort and filters to
come back to them; each is its owner's alone, in one workspace. Saving and deleting are
audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import QueryDict
from django.utils import timezone

from cdp import access
from cdp.errors import NotFound, ValidationFailed
from cdp.models import Workspace, audit
from profiles.explorer.query import parse_query
from profiles.models import SavedView

NAME_MAX = 100
VIEWS_PER_USER = 50


@transaction.atomic
def saved_view_save(*, workspace: Workspace, owner: Any, name: str, query: str) -> SavedView:
    """Save `query` (an explorer query string) under `name`; a view of the owner's with that
    name is replaced. The query is checked as the explorer would read it, with the owner's
    capabilities, and kept in its canonical form."""
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed.at("name", "give the view a name")
    if len(name) > NAME_MAX:
        raise ValidationFailed.at("name", f"at most {NAME_MAX} characters")
    parsed = parse_query(
        workspace=workspace,
        params=QueryDict(query),
        can=lambda capability: access.can(owner, workspace, capability),
    )
    canonical = [[key, value] for key, value in parsed.params()]
    view = (
        SavedView.objects.select_for_update()
        .filter(workspace=workspace, owner=owner, name=name)
        .first()
    )
    if view is None:
        if SavedView.objects.filter(workspace=workspace, owner=owner).count() >= VIEWS_PER_USER:
            raise ValidationFailed.at(
                "name", f"you have {VIEWS_PER_USER} saved views already: delete one first"
            )
        view = SavedView.objects.create(
            workspace=workspace, owner=owner, name=name, params=canonical
        )
        action = "saved_view.create"
    else:
        view.params = canonical
        view.updated_at = timezone.now()
        view.save(update_fields=["params", "updated_at"])
        action = "saved_view.update"
    audit(
        workspace=workspace,
        actor=owner,
        action=action,
        target=view,
        # the parameters' names only: a search text may be someone's email, and the audit
        # log outlives privacy deletions
        detail={"name": view.name, "params": sorted({key for key, _ in parsed.params()})},
    )
    return view


@transaction.atomic
def saved_view_delete(*, workspace: Workspace, owner: Any, view_id: Any) -> SavedView:
    """Delete one of the owner's views (anyone else's, or another workspace's, is not found)."""
    view = (
        SavedView.objects.filter(workspace=workspace, owner=owner, pk=view_id).first()
        if str(view_id).isdigit()
        else None
    )
    if view is None:
        raise NotFound("No such saved view of yours in this workspace.")
    audit(
        workspace=workspace,
        actor=owner,
        action="saved_view.delete",
        target=view,
        detail={"name": view.name},
    )
    view.delete()
    return view
