"""Search over people's names, emails and phones for the profile explorer.

`profiles_search_text(traits)` is the one definition of the searched text (the explorer's
selector filters on the same expression). A GIN trigram index over it (pg_trgm) makes a
substring search ("novak", "kevin novak", "@acme.io", "0958") an index scan at a million
profiles.

Why an expression index on the profile row rather than a separate search table kept by the
pipeline: the index reads only the `traits` column.
Postgres keeps an update HOT when no indexed column changes, and the per-event updates
(last_seen, counts, revenue, engagement) leave `traits` byte-for-byte equal: only identify
calls that change a trait pay for the index, as they would for a search table — without a
second copy of personal data to keep in step through merges, splits and privacy deletions.

pg_trgm is a contrib extension: the machine's Postgres has it, the embedded one (pgserver)
does not. Without it the function and the searches still work, by a scan instead of the index.
The index is built CONCURRENTLY (a non-atomic migration) so that an installation with many
profiles keeps ingesting while it is built."""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION profiles_search_text(traits jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT lower(
    coalesce(traits ->> 'name', '') || ' ' ||
    coalesce(traits ->> 'full_name', '') || ' ' ||
    coalesce(traits ->> 'first_name', '') || ' ' ||
    coalesce(traits ->> 'last_name', '') || ' ' ||
    coalesce(traits ->> 'email', '') || ' ' ||
    coalesce(traits ->> 'phone', '') || ' ' ||
    translate(coalesce(traits ->> 'phone', ''), ' ()-./+', ''))
$$
"""

# Not a partial index (live profiles only): the planner ignores the statistics ANALYZE keeps
# for a partial index's expression, and without them it guesses that any word is rare and
# rechecks a quarter of a million rows for a word that is on every fourth profile
INDEX = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS profile_search_trgm ON profiles_profile "
    "USING gin (profiles_search_text(traits) gin_trgm_ops)"
)


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FUNCTION)
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        if cursor.fetchone() is None:
            return  # the embedded Postgres: searches scan instead
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        cursor.execute(INDEX)


def backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DROP INDEX CONCURRENTLY IF EXISTS profile_search_trgm")
        cursor.execute("DROP FUNCTION IF EXISTS profiles_search_text(jsonb)")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("profiles", "0012_saved_views")]

    operations = [migrations.RunPython(forwards, backwards)]
