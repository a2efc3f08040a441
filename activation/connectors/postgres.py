"""Postgres ("warehouse"): mirrors audiences into a table of another PostgreSQL database,
and appends events to a sibling `<table>_events`.

- The table is created when missing: one row per (audience_key, profile_id) with the
  identifiers and fields sent and when. An upsert inserts or replaces the row; a removal
  deletes it; a deletion notice deletes every row of the person's profiles, in every
  audience, and their events. Events are inserted by key, ON CONFLICT DO NOTHING.
- All items of a send run in one transaction, in delivery order: a batch lands whole or
  not at all, and a retried batch leaves the same rows (upserts and deletes are
  idempotent; an event's key is its primary key).
- The DSN is a secret (it carries the password) and never appears in an error: libpq
  repeats a malformed connection string in its message, so messages are scrubbed.
- The CDP's own database is refused as a target: a workspace must not be able to create
  or change tables there."""

from __future__ import annotations

import hashlib
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from activation.connectors import register
from activation.connectors.base import (
    ConfigField,
    Connector,
    Item,
    Outcome,
    Target,
    TestResult,
    scrub,
)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_IDENT = 63 - len("_events")  # Postgres truncates names beyond 63 bytes

_ensured: set[tuple[str, str]] = set()  # (dsn digest, table) whose tables exist
_ensured_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Table:
    schema: str | None
    name: str

    @property
    def display(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def ident(self, suffix: str = "") -> Any:
        from psycopg import sql

        parts = (self.schema, self.name + suffix) if self.schema else (self.name + suffix,)
        return sql.Identifier(*parts)


def parse_table(value: Any) -> Table | None:
    if not isinstance(value, str):
        return None
    parts = value.strip().split(".")
    if not 1 <= len(parts) <= 2 or not all(_IDENT.match(p) and len(p) <= _MAX_IDENT for p in parts):
        return None
    return Table(parts[0], parts[1]) if len(parts) == 2 else Table(None, parts[0])


def dsn_problem(dsn: Any) -> str | None:
    """Why `dsn` is not a usable connection string (the message never repeats it)."""
    from psycopg import conninfo

    if not isinstance(dsn, str) or not dsn.strip():
        return "required"
    if "://" in dsn and not dsn.startswith(("postgresql://", "postgres://")):
        return "expected postgresql://user:password@host:5432/database"
    try:
        conninfo.conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - libpq's message repeats the DSN, password and all
        return "not a valid connection string: expected postgresql://user:password@host/db"
    return None


def display_dsn(dsn: str) -> str:
    """host:port/database, without the user or password."""
    from psycopg import conninfo

    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001
        return "(invalid connection string)"
    host, port = parts.get("host") or "localhost", parts.get("port") or 5432
    return f"{host}:{port}/{parts.get('dbname') or ''}"


def _scrub(text: str, target: Target) -> str:
    text = scrub(text, target.secrets)
    from psycopg import conninfo

    try:  # the password alone, too: libpq may quote parts of the DSN
        password = conninfo.conninfo_to_dict(target.secrets.get("dsn", "")).get("password")
    except Exception:  # noqa: BLE001
        password = None
    if password and len(str(password)) >= 4:
        text = text.replace(str(password), "***")
    return text


# ---- SQL ------------------------------------------------------------------------------------

_CREATE = """
CREATE TABLE IF NOT EXISTS {table} (
    profile_id bigint NOT NULL,
    audience_key text NOT NULL,
    identifiers jsonb NOT NULL DEFAULT '{{}}',
    fields jsonb NOT NULL DEFAULT '{{}}',
    synced_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (audience_key, profile_id)
);
CREATE TABLE IF NOT EXISTS {events} (
    key uuid PRIMARY KEY,
    profile_id bigint,
    type text,
    event text,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
"""

_UPSERT = """
INSERT INTO {table} (profile_id, audience_key, identifiers, fields, synced_at)
VALUES (%s, %s, %s, %s, now())
ON CONFLICT (audience_key, profile_id) DO UPDATE
SET identifiers = EXCLUDED.identifiers, fields = EXCLUDED.fields, synced_at = now()
"""
_REMOVE = "DELETE FROM {table} WHERE audience_key = %s AND profile_id = %s"
_FORGET = "DELETE FROM {table} WHERE profile_id = ANY(%s)"
_FORGET_EVENTS = "DELETE FROM {events} WHERE profile_id = ANY(%s)"
_EVENT = """
INSERT INTO {events} (key, profile_id, type, event, payload) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (key) DO NOTHING
"""


def _statements(
    items: list[Item],
) -> tuple[list[tuple[str, list[tuple[Any, ...]]]], dict[int, str]]:
    """Items as runs of (statement, rows), consecutive items of a kind batched together so
    delivery order is kept; items that cannot be written, with their reason."""
    from psycopg.types.json import Jsonb

    runs: list[tuple[str, list[tuple[Any, ...]]]] = []
    rejected: dict[int, str] = {}

    def add(statement: str, row: tuple[Any, ...]) -> None:
        if runs and runs[-1][0] == statement:
            runs[-1][1].append(row)
        else:
            runs.append((statement, [row]))

    for item in items:
        p = item.payload
        audience = str((p.get("audience") or {}).get("key") or "")
        if item.kind in ("upsert", "remove") and (item.profile_id is None or not audience):
            rejected[item.delivery_id] = "invalid_item"
        elif item.kind == "upsert":
            add(
                _UPSERT,
                (
                    item.profile_id,
                    audience,
                    Jsonb(p.get("identifiers") or {}),
                    Jsonb(p.get("fields") or {}),
                ),
            )
        elif item.kind == "remove":
            add(_REMOVE, (audience, item.profile_id))
        elif item.kind == "deletion":
            ids = [int(i) for i in p.get("profile_ids") or []]
            add(_FORGET, (ids,))
            add(_FORGET_EVENTS, (ids,))
        elif item.kind == "event":
            add(
                _EVENT,
                (
                    item.key,
                    item.profile_id,
                    p.get("type"),
                    p.get("event") or p.get("name"),
                    Jsonb(p),
                ),
            )
        else:
            rejected[item.delivery_id] = "unsupported_kind"
    return runs, rejected


# ---- errors ---------------------------------------------------------------------------------

# after connecting: SQLSTATEs a retry cannot fix
_PERMANENT_STATES = {
    "42501": ("pg_permission_denied", "the user may not create or write the table"),
    "3F000": ("pg_no_schema", "the table's schema does not exist"),
    "42703": ("pg_table_mismatch", "the table exists with other columns"),
    "42804": ("pg_table_mismatch", "the table exists with other column types"),
    "42P10": ("pg_table_mismatch", "the table exists without the expected primary key"),
    "42809": ("pg_table_mismatch", "the name belongs to something that is not a table"),
}


def outcome_of(exc: BaseException, where: str) -> Outcome:
    import psycopg

    state = getattr(exc, "sqlstate", None) or ""
    text = str(exc).strip().replace("connection failed: ", "")
    if state in _PERMANENT_STATES:
        reason, why = _PERMANENT_STATES[state]
        return Outcome.fail(reason, f"{why} ({where}): {text}")
    if state == "42P01":  # dropped since we created it: the next send creates it again
        _forget_ensured()
        return Outcome.retry("pg_table_missing", f"the table is gone ({where}): {text}")
    if state[:2] in ("22", "23"):
        return Outcome.fail("pg_data_error", f"the database refused a row ({where}): {text}")
    if state == "57014":
        return Outcome.retry("timeout", f"a statement ran longer than allowed ({where})")
    if state:  # serialization failures, deadlocks, lost connections, full disks, …
        return Outcome.retry(f"pg_{state.lower()}", f"{where}: {text}")
    if isinstance(exc, psycopg.OperationalError):
        lowered = text.lower()
        if (
            "password authentication failed" in lowered
            or ("role" in lowered and "does not exist" in lowered)
            or "no pg_hba.conf entry" in lowered
            or "authentication" in lowered
        ):
            return Outcome.fail(
                "pg_auth_failed", f"the server refused the user or password ({where}): {text}"
            )
        if "database" in lowered and "does not exist" in lowered:
            return Outcome.fail("pg_unknown_database", f"no such database ({where}): {text}")
        if "timeout" in lowered:
            return Outcome.retry("timeout", f"no answer from {where} in time: {text}")
        if "resolve host" in lowered or "translate host name" in lowered:
            return Outcome.retry("dns_error", f"cannot resolve the host of {where}: {text}")
        if "ssl" in lowered or "certificate" in lowered:
            return Outcome.retry("tls_error", f"TLS with {where} failed: {text}")
        return Outcome.retry("connection_error", f"cannot connect to {where}: {text}")
    if isinstance(exc, psycopg.Error):
        return Outcome.retry("pg_error", f"{where}: {text}")
    return Outcome.retry("pg_error", f"{type(exc).__name__}: {text}")


def _remember(created: tuple[str, str] | None) -> None:
    if created is not None:
        with _ensured_lock:
            _ensured.add(created)


def _forget_ensured() -> None:
    with _ensured_lock:
        _ensured.clear()


# ---- the connector --------------------------------------------------------------------------


class OwnDatabase(Exception):
    """The DSN leads to the CDP's own database."""


def _identity(cursor: Any) -> tuple[Any, ...]:
    # the same database of the same running server (a restart changes the start time)
    cursor.execute("SELECT current_database(), pg_postmaster_start_time()")
    return tuple(cursor.fetchone())


def _refuse_own_database(conn: Any) -> None:
    from django.db import connection as own

    with conn.cursor() as theirs, own.cursor() as ours:
        if _identity(theirs) == _identity(ours):
            raise OwnDatabase


class Postgres(Connector):
    kind = "postgres"
    label = "PostgreSQL (warehouse table)"
    description = "Audience members mirrored into a table of your PostgreSQL database."
    fields = (
        ConfigField(
            "table",
            "Table",
            required=True,
            default="cdp_audience_members",
            help="table or schema.table; created when missing (events go to <table>_events)",
        ),
        ConfigField(
            "dsn",
            "Connection string",
            "secret",
            required=True,
            help="postgresql://user:password@host:5432/database (add ?sslmode=require for TLS)",
        ),
    )
    max_batch = 5_000

    def validate(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, list[str]]:
        errors = super().validate(config, secrets)
        if config.get("table") not in (None, "") and parse_table(config.get("table")) is None:
            errors.setdefault("table", []).append(
                f"table or schema.table: letters, digits and _, up to {_MAX_IDENT} characters"
            )
        if secrets.get("dsn"):
            problem = dsn_problem(secrets["dsn"])
            if problem:
                errors.setdefault("dsn", []).append(problem)
        return errors

    def _connect(self, target: Target) -> Any:
        import psycopg

        # libpq rounds connect_timeout down and treats values under 2 as 2
        return psycopg.connect(
            target.secrets.get("dsn", ""),
            connect_timeout=max(2, math.ceil(target.timeout)),
            application_name="cdp-activation",
            autocommit=True,  # transactions are explicit: conn.transaction()
        )

    def _prepare(self, conn: Any, target: Target, table: Table) -> tuple[str, str] | None:
        """In the open transaction: statement limits, and the tables when not yet known
        (returns the key to remember once the transaction has committed)."""
        from psycopg import sql

        millis = str(int(target.timeout * 1000))
        conn.execute("SELECT set_config('statement_timeout', %s, true)", [millis])
        conn.execute("SELECT set_config('lock_timeout', %s, true)", [millis])
        key = (hashlib.sha256(target.secrets.get("dsn", "").encode()).hexdigest(), table.display)
        if key in _ensured:
            return None
        # concurrent senders must not race to create the same table
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [table.display])
        conn.execute(sql.SQL(_CREATE).format(table=table.ident(), events=table.ident("_events")))
        return key

    def _precheck(self, target: Target) -> tuple[Table | None, Outcome | None]:
        dsn = target.secrets.get("dsn", "")
        problem = dsn_problem(dsn)
        if problem:
            return None, Outcome.fail("invalid_dsn", f"dsn: {problem}")
        table = parse_table(target.config.get("table"))
        if table is None:
            return None, Outcome.fail("invalid_config", "table: expected table or schema.table")
        return table, None

    def send(self, target: Target, items: list[Item]) -> Outcome:
        from psycopg import sql

        table, invalid = self._precheck(target)
        where = display_dsn(target.secrets.get("dsn", ""))
        request: dict[str, Any] = {"method": "transaction", "target": where, "items": len(items)}
        if invalid or table is None:
            return invalid or Outcome.fail("invalid_config", "no table")
        request["table"] = table.display
        runs, rejected = _statements(items)
        written = 0
        try:
            with self._connect(target) as conn:
                _refuse_own_database(conn)
                with conn.transaction():
                    created = self._prepare(conn, target, table)
                    with conn.cursor() as cursor:
                        for statement, rows in runs:
                            query = sql.SQL(statement).format(
                                table=table.ident(), events=table.ident("_events")
                            )
                            cursor.executemany(query, rows)
                            written += max(cursor.rowcount, 0)
        except OwnDatabase:
            return Outcome.fail(
                "pg_own_database",
                "the connection string leads to the CDP's own database: use another one",
                request=request,
            )
        except Exception as exc:  # noqa: BLE001 - every failure is classified
            outcome = outcome_of(exc, f"{where} table {table.display}")
            outcome.error = _scrub(outcome.error, target)
            outcome.request = request
            return outcome
        _remember(created)
        request["rows_changed"] = written
        return Outcome.success(
            request=request,
            rejected=rejected,
            response=f"committed {len(items) - len(rejected)} item(s); {written} row(s) changed",
        )

    def test(self, target: Target) -> TestResult:
        from psycopg import sql

        table, invalid = self._precheck(target)
        if invalid or table is None:
            return TestResult(ok=False, message=invalid.error if invalid else "no table")
        where = display_dsn(target.secrets.get("dsn", ""))
        request = {"method": "connect", "target": where, "table": table.display}
        try:
            with self._connect(target) as conn:
                _refuse_own_database(conn)
                with conn.transaction():
                    created = self._prepare(conn, target, table)
                    count = conn.execute(
                        sql.SQL("SELECT count(*) FROM {}").format(table.ident())
                    ).fetchone()[0]
        except OwnDatabase:
            return TestResult(
                ok=False,
                message="the connection string leads to the CDP's own database: use another one",
                request=request,
            )
        except Exception as exc:  # noqa: BLE001 - the test button reports, never raises
            outcome = outcome_of(exc, f"{where} table {table.display}")
            return TestResult(ok=False, message=_scrub(outcome.error, target), request=request)
        _remember(created)
        return TestResult(
            ok=True,
            message=f"connected to {where}; table {table.display} is ready and holds "
            f"{count} row(s)",
            request=request,
            response={"rows": count},
        )


register(Postgres())
