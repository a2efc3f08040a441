"""The segments app's privacy handler (registered in SegmentsConfig.ready()): a subject's
memberships with their history, membership change events and scheduled window expiries."""

from __future__ import annotations

from profiles import privacy

_EXPORT_SECTIONS: dict[str, str] = {
    "segment_memberships": "SELECT json_build_object('segment', s.name, 'segment_key', s.key,"
    " 'entered_at', m.entered_at, 'exited_at', m.exited_at, 'version', m.version,"
    " 'profile_id', m.profile_id) FROM segments_membership m"
    " JOIN segments_segment s ON s.id = m.segment_id"
    " WHERE s.workspace_id = %(ws)s AND m.profile_id = ANY(%(p)s) ORDER BY m.entered_at, m.id",
    "segment_changes": "SELECT json_build_object('segment', s.name, 'kind', c.kind, 'at', c.at,"
    " 'version', c.version, 'profile_id', c.profile_id) FROM segments_membershipchange c"
    " JOIN segments_segment s ON s.id = c.segment_id"
    " WHERE c.workspace_id = %(ws)s AND c.profile_id = ANY(%(p)s) ORDER BY c.at, c.id",
}

_DELETE_STEPS: list[tuple[str, str]] = [
    (
        "segment_memberships",
        "DELETE FROM segments_membership m USING segments_segment s "
        "WHERE s.id = m.segment_id AND s.workspace_id = %(ws)s AND m.profile_id = ANY(%(p)s)",
    ),
    (
        "segment_changes",
        "DELETE FROM segments_membershipchange WHERE workspace_id = %(ws)s "
        "AND profile_id = ANY(%(p)s)",
    ),
    (
        "segment_expiries",
        "DELETE FROM segments_expiry x USING segments_segment s "
        "WHERE s.id = x.segment_id AND s.workspace_id = %(ws)s AND x.profile_id = ANY(%(p)s)",
    ),
]


def register() -> None:
    privacy.register_sql_handler(
        "segments", export_sections=_EXPORT_SECTIONS, delete_steps=_DELETE_STEPS
    )
