# ruff: noqa: S608, S611 - SQL from constants and %s placeholders only; values are parameters
"""Reads of the profile explorer, scoped by workspace: the profiles matching a query, in its
order, and a user's saved views."""

from __future__ import annotations

from typing import Any

from django.db.models import (
    BooleanField,
    DecimalField,
    F,
    FloatField,
    Prefetch,
    Q,
    QuerySet,
    TextField,
)
from django.db.models.expressions import RawSQL

from cdp.models import Workspace
from cdp.params import is_id
from profiles import identifiers
from profiles.coercion import numeric_sql
from profiles.explorer.query import ExplorerQuery, positional
from profiles.models import Identity, Profile, SavedView

# Search: a profile matches when every word of the text is found in its searched text
# (profiles_search_text(traits), migration 0013: names, email and phone, lower-cased; the
# GIN trigram index covers it), or when the whole text is one of its identifiers' values,
# exactly (also read as an email or a phone number) or by its beginning (the identity
# index), or its number. A text without any word of SEARCH_WORD_MIN characters matches
# identifiers only: the trigram index cannot narrow a search by shorter words.
SEARCH_WORD_MIN = 3
IDENTIFIER_MATCHES = 1000  # profiles found by an identifier's beginning ("u-1" …), at most


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _identifier_matches(workspace: Workspace, text: str) -> list[int]:
    forms = {text, text.lower()}
    for kind in (identifiers.EMAIL, identifiers.PHONE):
        normalized = identifiers.normalize(kind, text)
        if normalized:
            forms.add(normalized)
    matches = Identity.objects.filter(workspace=workspace).filter(
        Q(value__in=forms) | Q(value__startswith=text) | Q(value__startswith=text.lower())
    )
    ids = list(matches.values_list("profile_id", flat=True).distinct()[:IDENTIFIER_MATCHES])
    if is_id(text):
        ids.append(int(text))  # a profile's number typed into the search box
    return ids


def _search_condition(workspace: Workspace, text: str) -> Q:
    """The identifiers' matches are looked up first, so that the condition is one on the
    profile row: `words match OR id = ANY(ids)`. Postgres then answers it from the trigram
    and primary key indexes together (a bitmap OR), or, for a common word and the list's
    default order, by walking the newest profiles until a page is full."""
    condition = Q(pk__in=_identifier_matches(workspace, text))
    words = [w for w in text.lower().split() if w]
    if any(len(w) >= SEARCH_WORD_MIN for w in words):
        # written as in the index (a partial one: the list asks for live profiles only)
        likes = " AND ".join(
            'profiles_search_text("profiles_profile"."traits") LIKE %s' for _ in words
        )
        patterns = [f"%{_like_escape(w)}%" for w in words]
        condition |= Q(RawSQL(f"({likes})", patterns, output_field=BooleanField()))
    return condition


def _computed_number(key: str) -> RawSQL:
    """A value of Profile.computed as a number (JSON numbers and numeric strings, as the
    segment rules read them: profiles.coercion), else NULL."""
    names: dict[str, Any] = {"key": key}

    def param(value: Any) -> str:
        name = f"p{len(names)}"
        names[name] = value
        return f"%({name})s"

    sql, values = positional(
        numeric_sql('("profiles_profile"."computed" -> %(key)s)', param), names
    )
    return RawSQL(sql, values, output_field=DecimalField())


def _computed_float(key: str) -> RawSQL:
    """A value of Profile.computed that is always a JSON number (engagement score, RFM
    scores…) as float8: cheaper to read and sort over every profile than numeric."""
    return RawSQL(
        'CASE WHEN jsonb_typeof("profiles_profile"."computed" -> %s) = \'number\' '
        'THEN ("profiles_profile"."computed" -> %s)::float8 END',
        [key, key],
        output_field=FloatField(),
    )


def _computed_text(key: str) -> RawSQL:
    """A text value of Profile.computed (other JSON types: NULL)."""
    return RawSQL(
        'CASE WHEN jsonb_typeof("profiles_profile"."computed" -> %s) = \'string\' '
        'THEN "profiles_profile"."computed" ->> %s END',
        [key, key],
        output_field=TextField(),
    )


def profile_explore(*, workspace: Workspace, query: ExplorerQuery) -> QuerySet[Profile]:
    """The workspace's live profiles that match the explorer's query, in its order (values
    that are absent last in either direction, then by profile number). Page through its ids
    (`.values_list("id", flat=True)`: sorting narrow rows is cheaper) and load a page's rows
    with profiles_in_order()."""
    profiles = Profile.objects.filter(workspace=workspace, merged_into__isnull=True)
    if query.identifier:
        kind, _, value = query.identifier.partition(":")
        owners = Identity.objects.filter(workspace=workspace, type=kind, value=value)
        profiles = profiles.filter(pk__in=owners.values("profile_id"))
    if query.q:
        profiles = profiles.filter(_search_condition(workspace, query.q))
    if query.rfm:
        profiles = profiles.filter(computed__rfm_segment__in=list(query.rfm))
    for applied in query.applied:
        profiles = profiles.filter(applied.spec.condition(workspace, applied.value))
    sort, descending = query.sort, query.descending

    def by(expression: Any) -> Any:
        return expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)

    tie = "-id" if descending else "id"
    if sort.column == "id":
        ordering = [tie]
    elif sort.column is not None:
        ordering = [by(F(sort.column)), tie]
    else:
        assert sort.computed_key is not None
        key = sort.computed_key
        if sort.values == "number":
            profiles = profiles.annotate(sort_number=_computed_float(key))
            ordering = [by(F("sort_number"))]
        elif sort.values == "text":
            profiles = profiles.annotate(sort_text=_computed_text(key))
            ordering = [by(F("sort_text"))]
        else:  # numbers (and numeric strings) first, then other text, then absent values
            profiles = profiles.annotate(
                sort_number=_computed_number(key), sort_text=_computed_text(key)
            )
            ordering = [by(F("sort_number")), by(F("sort_text"))]
        ordering.append(tie)
    return profiles.order_by(*ordering)


def count_capped(profiles: QuerySet[Profile], cap: int) -> int:
    """How many there are, counting no further than cap + 1 (a search for a common word
    matches a quarter of a million profiles: there is no need to count them all)."""
    return profiles.order_by()[: cap + 1].count()


def profiles_in_order(*, workspace: Workspace, ids: list[int]) -> list[Profile]:
    """The profiles of a page of ids, in that order, with their identities."""
    rows = Profile.objects.filter(workspace=workspace, pk__in=ids).prefetch_related(
        Prefetch("identities", queryset=Identity.objects.order_by("id"))
    )
    by_id = {p.pk: p for p in rows}
    return [by_id[i] for i in ids if i in by_id]


def has_profiles(*, workspace: Workspace) -> bool:
    """Whether the workspace has any profile yet (live or merged)."""
    return Profile.objects.filter(workspace=workspace).exists()


def saved_view_list(*, workspace: Workspace, owner: Any) -> QuerySet[SavedView]:
    return SavedView.objects.filter(workspace=workspace, owner=owner).order_by("name", "id")
