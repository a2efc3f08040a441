"""Raw psycopg access on Django's connection, for the few statements where Django's
client-side parameter quoting costs more than the query (bulk unnest inserts and updates)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def server_cursor() -> Iterator[psycopg.Cursor]:
    """A psycopg cursor with server-side binding (use %b for binary parameters), in the same
    transaction as the surrounding Django code."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        yield cursor
