# The pending-events queue is a hot insert-then-delete table: at thousands of events per second
# its index fills with dead entries that every claim (ORDER BY event_id, SKIP LOCKED) walks
# past until autovacuum runs, and the default trigger (20 % of the table dead) comes late for
# a table that is nearly empty when the pipeline keeps up. Vacuum it every 10,000 dead rows,
# without the cost-based pauses.

from django.db import migrations

_SET = """
ALTER TABLE profiles_pendingevent SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 50000
)
"""
_RESET = """
ALTER TABLE profiles_pendingevent RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold
)
"""


class Migration(migrations.Migration):
    dependencies = [("profiles", "0008_event_partitions")]

    operations = [migrations.RunSQL(_SET, _RESET)]
