"""The data subject of a privacy request, and the registry of privacy handlers.

A subject is found from one identifier: the profiles it resolves to (the live one and every
profile merged into it), then every identifier of those profiles. Each app registers a
handler (in its `AppConfig.ready()`) that exports and deletes the subject's rows in its own
tables; consent's privacy requests orchestrate them in one transaction and write the receipt,
so a table added by a later app is covered by that app's own handler. The residual test scans
every table found through information_schema after a deletion, so a table whose app forgot
its handler fails it.

Export runs the handlers in registration order (INSTALLED_APPS order), deletion in reverse:
higher apps' rows point at profiles, so they go first and the profiles last."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection


@dataclass
class Subject:
    workspace_id: int
    profile_ids: list[int] = field(default_factory=list)  # live ones and those merged into them
    identifiers: set[tuple[str, str]] = field(default_factory=set)  # (type, normalised value)
    digests: list[str] = field(default_factory=list)  # keyed hashes of the identifiers
    request_id: int | None = None  # the privacy request being executed, when there is one

    def values(self, *kinds: str) -> list[str]:
        return sorted({v for t, v in self.identifiers if not kinds or t in kinds})


@dataclass(frozen=True, slots=True)
class PrivacyHandler:
    app: str
    export: Callable[[Subject], dict[str, list[Any]]]  # section -> records
    delete: Callable[[Subject], dict[str, int]]  # section -> rows deleted (or scrubbed)


_HANDLERS: dict[str, PrivacyHandler] = {}


def register_handler(
    app: str,
    *,
    export: Callable[[Subject], dict[str, list[Any]]],
    delete: Callable[[Subject], dict[str, int]],
) -> None:
    _HANDLERS[app] = PrivacyHandler(app, export, delete)


def register_sql_handler(
    app: str,
    *,
    export_sections: dict[str, str],
    delete_steps: list[tuple[str, str]],
    params: Callable[[Subject], dict[str, Any]] | None = None,
) -> None:
    """A handler made of SQL: each export section returns one JSON record per row, each
    delete step is a statement counted in the receipt (unless its name starts with "_").
    Statements take the subject's parameters (`subject_params`, or `params` when given):
    %(ws)s, %(p)s (profile ids), %(users)s, %(anons)s, %(all)s (identifier values) and
    %(digests)s."""
    parameters = params or subject_params

    def export(subject: Subject) -> dict[str, list[Any]]:
        values = parameters(subject)
        return {name: rows(sql, values) for name, sql in export_sections.items()}

    def delete(subject: Subject) -> dict[str, int]:
        return run_steps(delete_steps, parameters(subject))

    register_handler(app, export=export, delete=delete)


def handlers() -> list[PrivacyHandler]:
    return list(_HANDLERS.values())


def rows(sql: str, params: dict[str, Any]) -> list[Any]:
    """The first column of every row (the JSON records of an export section)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def run_steps(steps: Iterable[tuple[str, str]], params: dict[str, Any]) -> dict[str, int]:
    """Delete statements in order; a step whose name starts with "_" is not counted."""
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        for name, sql in steps:
            cursor.execute(sql, params)
            if not name.startswith("_"):
                counts[name] = cursor.rowcount
    return counts


def subject_params(subject: Subject) -> dict[str, Any]:
    """The subject as query parameters: workspace, profiles, identifiers, digests."""
    return {
        "ws": subject.workspace_id,
        "p": subject.profile_ids,
        "users": subject.values("user_id"),
        "anons": subject.values("anonymous_id"),
        "all": subject.values(),
        "digests": subject.digests,
    }


# ---- finding the subject ---------------------------------------------------------------------

_SUBJECT_PROFILES = """
WITH RECURSIVE found AS (
    SELECT DISTINCT i.profile_id AS id FROM profiles_identity i
    WHERE i.workspace_id = %(ws)s AND i.type = %(type)s AND i.value = %(value)s
),
live AS (  -- follow merged_into to the survivor
    SELECT p.id, p.merged_into_id FROM profiles_profile p WHERE p.id IN (SELECT id FROM found)
    UNION
    SELECT p.id, p.merged_into_id FROM profiles_profile p JOIN live ON p.id = live.merged_into_id
),
family AS (  -- the survivors and everything ever merged into them
    SELECT id FROM live WHERE merged_into_id IS NULL
    UNION
    SELECT p.id FROM profiles_profile p JOIN family f ON p.merged_into_id = f.id
)
SELECT id FROM family
"""


def subject_find(*, workspace_id: int, identifier_type: str, value: str) -> Subject:
    subject = Subject(workspace_id=workspace_id, identifiers={(identifier_type, value)})
    with connection.cursor() as cursor:
        cursor.execute(
            _SUBJECT_PROFILES, {"ws": workspace_id, "type": identifier_type, "value": value}
        )
        subject.profile_ids = sorted(row[0] for row in cursor.fetchall())
        if subject.profile_ids:
            cursor.execute(
                "SELECT type, value FROM profiles_identity WHERE profile_id = ANY(%s)",
                [subject.profile_ids],
            )
            subject.identifiers |= {(t, v) for t, v in cursor.fetchall()}
    return subject


# ---- the profiles app's own handler ----------------------------------------------------------


def _patterns(values: Iterable[str]) -> list[str]:
    """ILIKE patterns matching each value anywhere in a text (LIKE wildcards escaped)."""
    out = []
    for value in values:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        out.append(f"%{escaped}%")
    return out


# failed events that carry one of the identifiers: the ids they were sent with, or the value
# anywhere in what was received (failed events are stored as sent, not normalised)
_FAILED = (
    "SELECT id FROM profiles_failedevent WHERE workspace_id = %(ws)s AND ("
    " payload->>'userId' = ANY(%(all)s) OR payload->>'anonymousId' = ANY(%(all)s)"
    " OR payload::text ILIKE ANY(%(patterns)s) OR raw ILIKE ANY(%(patterns)s))"
)

_SUBJECT_EVENTS = """
SELECT event_id FROM profiles_profileevent WHERE profile_id = ANY(%(p)s)
UNION
SELECT id FROM profiles_event WHERE workspace_id = %(ws)s
  AND (user_id = ANY(%(users)s) OR anonymous_id = ANY(%(anons)s) OR previous_id = ANY(%(all)s))
"""

# emails and phones as the person's SDKs sent them (before normalisation): a dead letter
# carries them in that form
_SENT_FORMS = """
SELECT DISTINCT v FROM profiles_event e,
    LATERAL (VALUES (e.traits->>'email'), (e.traits->>'phone'),
                    (e.context->'traits'->>'email'), (e.context->'traits'->>'phone')) AS x(v)
WHERE e.id = ANY(%(events)s) AND v IS NOT NULL AND length(v) >= 5
"""

# The subject's string trait values long enough to be distinctive (for scrubbing the examples
# of the observed schema).
_TRAIT_VALUES = """
SELECT DISTINCT t.value #>> '{}' FROM profiles_profile p, jsonb_each(p.traits) t
WHERE p.id = ANY(%(p)s) AND jsonb_typeof(t.value) = 'string'
"""


def _params(subject: Subject) -> dict[str, Any]:
    """The subject's parameters plus their events (found before anything is deleted) and
    ILIKE patterns of every form of their identifiers."""
    params = subject_params(subject)
    params["events"] = rows(_SUBJECT_EVENTS, params)
    sent = sorted(rows(_SENT_FORMS, params))
    params["patterns"] = _patterns(sorted(set(subject.values()) | set(sent)))
    traits = [v for v in rows(_TRAIT_VALUES, params) if v and len(v) >= 5]
    params["scrub"] = _patterns(sorted(set(subject.values()) | set(sent) | set(traits)))
    return params


# each section: SQL returning one JSON row per record (row_to_json: every column, so a column
# added later is exported without touching this list)
_EXPORT_SECTIONS: dict[str, str] = {
    "profiles": "SELECT row_to_json(t) FROM profiles_profile t WHERE t.id = ANY(%(p)s) "
    "ORDER BY t.id",
    "identities": "SELECT row_to_json(t) FROM profiles_identity t WHERE t.profile_id = ANY(%(p)s)"
    " ORDER BY t.id",
    "events": "SELECT row_to_json(t) FROM profiles_event t WHERE t.id = ANY(%(events)s)"
    " ORDER BY t.timestamp, t.id",
    # constant SQL: the failed events' condition is shared with the delete step
    "failed_events": "SELECT row_to_json(t) FROM profiles_failedevent t WHERE t.id IN ("  # noqa: S608
    f"SELECT id FROM ({_FAILED}) AS f) ORDER BY t.id",
    "merges": "SELECT row_to_json(t) FROM profiles_profilemerge t WHERE t.workspace_id = %(ws)s"
    " AND (t.winner_id = ANY(%(p)s) OR t.loser_id = ANY(%(p)s)) ORDER BY t.id",
    "identity_conflicts": "SELECT row_to_json(t) FROM profiles_identityconflict t"
    " WHERE t.workspace_id = %(ws)s AND (t.profile_id = ANY(%(p)s)"
    " OR t.identifier_value = ANY(%(all)s)) ORDER BY t.id",
}

# (name, statement) run in order; %(events)s are the raw events found before the first delete
_DELETE_STEPS: list[tuple[str, str]] = [
    # examples in the observed schema that are a value the person sent (compared as JSON, so
    # a string matches only a whole string), or contain one of their identifiers or traits
    (
        "schema_examples",
        "UPDATE profiles_observedproperty o SET example = NULL "
        "WHERE o.workspace_id = %(ws)s AND jsonb_typeof(o.example) = 'string' AND ("
        " o.example::text ILIKE ANY(%(scrub)s) OR EXISTS (SELECT 1 FROM profiles_event e"
        "  WHERE e.id = ANY(%(events)s) AND (strpos(e.properties::text, o.example::text) > 0"
        "   OR strpos(e.traits::text, o.example::text) > 0"
        "   OR strpos(e.context::text, o.example::text) > 0)))",
    ),
    # the schema page's links to the newest event of each type: none to the person's events
    (
        "schema_example_events",
        "UPDATE profiles_observedproperty o SET type_examples = ("
        " SELECT COALESCE(jsonb_object_agg(t.key, t.value), '{}'::jsonb)"
        " FROM jsonb_each(o.type_examples) t WHERE t.value ->> 'message_id' <> ALL(m.ids))"
        " FROM (SELECT array_agg(e.message_id) AS ids FROM profiles_event e"
        "  WHERE e.id = ANY(%(events)s)) m"
        " WHERE o.workspace_id = %(ws)s AND m.ids IS NOT NULL AND EXISTS ("
        "  SELECT 1 FROM jsonb_each(o.type_examples) t"
        "  WHERE t.value ->> 'message_id' = ANY(m.ids))",
    ),
    ("pending_events", "DELETE FROM profiles_pendingevent WHERE event_id = ANY(%(events)s)"),
    (
        "profile_events",
        "DELETE FROM profiles_profileevent WHERE profile_id = ANY(%(p)s) "
        "OR event_id = ANY(%(events)s)",
    ),
    ("events", "DELETE FROM profiles_event WHERE id = ANY(%(events)s)"),
    (
        "failed_events",
        f"DELETE FROM profiles_failedevent WHERE id IN (SELECT id FROM ({_FAILED}) f)",  # noqa: S608
    ),
    (
        "identity_conflicts",
        "DELETE FROM profiles_identityconflict WHERE workspace_id = %(ws)s "
        "AND (profile_id = ANY(%(p)s) OR other_profile_id = ANY(%(p)s) "
        "OR identifier_value = ANY(%(all)s))",
    ),
    (
        "split_blocks",
        "DELETE FROM profiles_splitblock WHERE workspace_id = %(ws)s "
        "AND (profile_a_id = ANY(%(p)s) OR profile_b_id = ANY(%(p)s))",
    ),
    (
        "merges",
        "DELETE FROM profiles_profilemerge WHERE workspace_id = %(ws)s "
        "AND (winner_id = ANY(%(p)s) OR loser_id = ANY(%(p)s) "
        "OR identifiers::text ILIKE ANY(%(patterns)s))",
    ),
    (
        "identity_links",
        "DELETE FROM profiles_identitylink WHERE workspace_id = %(ws)s AND "
        "(a_id IN (SELECT id FROM profiles_identity WHERE profile_id = ANY(%(p)s)) "
        "OR b_id IN (SELECT id FROM profiles_identity WHERE profile_id = ANY(%(p)s)))",
    ),
    ("identities", "DELETE FROM profiles_identity WHERE profile_id = ANY(%(p)s)"),
    # explorer views saved with a search for one of the subject's identifiers or traits
    (
        "saved_views",
        "DELETE FROM profiles_savedview WHERE workspace_id = %(ws)s "
        "AND params::text ILIKE ANY(%(scrub)s)",
    ),
    # merged_into points among them: clear the pointers first (not counted), then delete
    ("_unlink", "UPDATE profiles_profile SET merged_into_id = NULL WHERE id = ANY(%(p)s)"),
    ("profiles", "DELETE FROM profiles_profile WHERE id = ANY(%(p)s)"),
]


def register() -> None:
    register_sql_handler(
        "profiles", export_sections=_EXPORT_SECTIONS, delete_steps=_DELETE_STEPS, params=_params
    )
