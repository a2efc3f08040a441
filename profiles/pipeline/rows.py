"""Events as the pipeline reads them: plain slotted rows decoded with orjson, several times
cheaper than Django model instances (whose JSON fields go through json.loads one by one)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import orjson

from cdp.db import server_cursor


class EventLike(Protocol):
    """What pipeline stages read from an event (a stored Event or an EventRow)."""

    @property
    def pk(self) -> Any: ...
    @property
    def workspace_id(self) -> Any: ...
    @property
    def source_id(self) -> Any: ...
    @property
    def message_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def event(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def anonymous_id(self) -> str | None: ...
    @property
    def group_id(self) -> str | None: ...
    @property
    def previous_id(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def properties(self) -> Any: ...
    @property
    def traits(self) -> Any: ...
    @property
    def context(self) -> Any: ...


class EventRow:
    __slots__ = (
        "id",
        "workspace_id",
        "source_id",
        "message_id",
        "type",
        "event",
        "name",
        "user_id",
        "anonymous_id",
        "group_id",
        "previous_id",
        "timestamp",
        "received_at",
        "properties",
        "properties_json",
        "traits",
        "context",
    )

    def __init__(self, row: Sequence[Any]) -> None:
        (
            self.id,
            self.workspace_id,
            self.source_id,
            self.message_id,
            self.type,
            self.event,
            self.name,
            self.user_id,
            self.anonymous_id,
            self.group_id,
            self.previous_id,
            self.timestamp,
            self.received_at,
        ) = row[:13]
        self.properties_json = row[13]  # kept as sent, for copies (no re-encoding)
        self.properties = orjson.loads(row[13])
        self.traits = orjson.loads(row[14])
        self.context = orjson.loads(row[15])

    @property
    def pk(self) -> int:
        return int(self.id)

    def __repr__(self) -> str:
        return f"EventRow({self.id}, {self.type}, {self.event or self.name or ''})"


_SELECT = """
SELECT id, workspace_id, source_id, message_id, type, event, name, user_id, anonymous_id,
       group_id, previous_id, "timestamp", received_at, properties::text, traits::text,
       context::text
FROM profiles_event WHERE id = ANY(%b) {bounds} ORDER BY id
"""


def load_events(
    ids: Sequence[int], arrived: tuple[datetime, datetime] | None = None
) -> list[EventRow]:
    """The events of these ids; `arrived` (the earliest and latest arrival among them, which
    the queue knows) lets Postgres read only the partitions of those days."""
    if not ids:
        return []
    sql = _SELECT.format(bounds="")
    params: list[Any] = [list(ids)]
    if arrived is not None:
        sql = _SELECT.format(bounds="AND received_at BETWEEN %b AND %b")
        params += list(arrived)
    with server_cursor() as cursor:
        cursor.execute(sql, params, binary=True)  # C loaders for timestamps
        return [EventRow(row) for row in cursor.fetchall()]
