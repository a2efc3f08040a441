"""A membership can be deactivated: kept for the record, granting nothing."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("cdp", "0002_api_token_digest")]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="deactivated_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
