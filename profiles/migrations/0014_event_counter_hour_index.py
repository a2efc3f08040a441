"""The hourly event counters by (workspace, hour): the throughput charts (System page, source
pages) read a workspace's recent hours. Built CONCURRENTLY so the pipeline keeps counting."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("profiles", "0013_profile_search"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="eventcounter",
            index=models.Index(fields=["workspace", "hour"], name="event_counter_hour"),
        ),
    ]
