# The events table becomes partitioned by UTC day of arrival (profiles/partitions.py). The
# existing rows are copied into one partition per day they arrived on (plus yesterday, today and
# the next 7 days, and a DEFAULT partition), the messageIds into their own table, and the queue
# rows learn their event's arrival time. The sequence continues where it was.

from datetime import UTC, datetime, timedelta

from django.db import migrations, models

_INDEXES = [
    "ALTER TABLE profiles_event ADD CONSTRAINT profiles_event_pkey PRIMARY KEY (id, received_at)",
    "CREATE INDEX event_ws_id ON profiles_event (workspace_id, id DESC)",
    "CREATE INDEX event_ws_source_id ON profiles_event (workspace_id, source_id, id DESC)",
    "CREATE INDEX event_ws_user ON profiles_event (workspace_id, user_id) "
    "WHERE user_id IS NOT NULL",
    "CREATE INDEX event_ws_anon ON profiles_event (workspace_id, anonymous_id) "
    "WHERE anonymous_id IS NOT NULL",
    "CREATE INDEX event_received_brin ON profiles_event USING brin (received_at)",
]


def _name_sequence(cursor):
    # the collector's insert names the sequence (it draws the ids first, for the dedup table)
    cursor.execute("SELECT pg_get_serial_sequence('profiles_event', 'id')")
    current = cursor.fetchone()[0]
    if current != "public.profiles_event_id_seq":
        cursor.execute(f"ALTER SEQUENCE {current} RENAME TO profiles_event_id_seq")


def partition_events(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'profiles_event'::regclass")
        if cursor.fetchone()[0] == "p":
            return  # already partitioned
        cursor.execute("ALTER TABLE profiles_event RENAME TO profiles_event_unpartitioned")
        cursor.execute(
            "CREATE TABLE profiles_event (LIKE profiles_event_unpartitioned "
            "INCLUDING DEFAULTS INCLUDING IDENTITY) PARTITION BY RANGE (received_at)"
        )
        cursor.execute("CREATE TABLE profiles_event_default PARTITION OF profiles_event DEFAULT")
        cursor.execute(
            "SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date "
            "FROM profiles_event_unpartitioned"
        )
        days = {row[0] for row in cursor.fetchall()}
        today = datetime.now(UTC).date()
        days |= {today + timedelta(days=n) for n in range(-1, 8)}
        for day in sorted(days):
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            cursor.execute(
                f'CREATE TABLE "profiles_event_p{day:%Y%m%d}" PARTITION OF profiles_event '
                "FOR VALUES FROM (%s) TO (%s)",
                [start, start + timedelta(days=1)],
            )
        cursor.execute(
            "INSERT INTO profiles_event SELECT * FROM profiles_event_unpartitioned ORDER BY id"
        )
        cursor.execute(
            "INSERT INTO profiles_eventmessage (workspace_id, message_id, event_id, received_at) "
            "SELECT workspace_id, message_id, id, received_at FROM profiles_event_unpartitioned"
        )
        cursor.execute(
            "UPDATE profiles_pendingevent q SET received_at = e.received_at "
            "FROM profiles_event_unpartitioned e WHERE e.id = q.event_id"
        )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('profiles_event', 'id'), "
            "(SELECT coalesce(max(id), 0) + 1 FROM profiles_event_unpartitioned), false)"
        )
        cursor.execute("DROP TABLE profiles_event_unpartitioned")
        _name_sequence(cursor)
        for statement in _INDEXES:
            cursor.execute(statement)


def unpartition_events(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'profiles_event'::regclass")
        if cursor.fetchone()[0] != "p":
            return
        cursor.execute("ALTER TABLE profiles_event RENAME TO profiles_event_partitioned")
        cursor.execute(
            "CREATE TABLE profiles_event (LIKE profiles_event_partitioned "
            "INCLUDING DEFAULTS INCLUDING IDENTITY)"
        )
        cursor.execute(
            "INSERT INTO profiles_event SELECT * FROM profiles_event_partitioned ORDER BY id"
        )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('profiles_event', 'id'), "
            "(SELECT coalesce(max(id), 0) + 1 FROM profiles_event_partitioned), false)"
        )
        cursor.execute("DROP TABLE profiles_event_partitioned")  # and its partitions
        _name_sequence(cursor)
        cursor.execute(
            "ALTER TABLE profiles_event ADD CONSTRAINT profiles_event_pkey PRIMARY KEY (id)"
        )
        cursor.execute(
            "ALTER TABLE profiles_event ADD CONSTRAINT uniq_event_message "
            "UNIQUE (workspace_id, message_id)"
        )
        for statement in _INDEXES[1:]:
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0007_dead_letter_quota"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventMessage",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "workspace_id",
                        "message_id",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("workspace_id", models.BigIntegerField()),
                ("message_id", models.CharField(max_length=255)),
                ("event_id", models.BigIntegerField()),
                ("received_at", models.DateTimeField()),
            ],
        ),
        migrations.AddField(
            model_name="pendingevent",
            name="received_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="event", name="uniq_event_message"),
            ],
            database_operations=[
                migrations.RunPython(partition_events, unpartition_events, elidable=False)
            ],
        ),
    ]
