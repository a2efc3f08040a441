"""API tokens are kept as a SHA-256 digest and a display prefix; existing keys are hashed and
their clear text dropped."""

import hashlib

from django.db import migrations, models


def hash_keys(apps, schema_editor):  # type: ignore[no-untyped-def]
    ApiToken = apps.get_model("cdp", "ApiToken")
    for token in ApiToken.objects.all().only("id", "key"):
        token.digest = hashlib.sha256(token.key.encode()).hexdigest()
        token.prefix = token.key[:10]
        token.save(update_fields=["digest", "prefix"])


class Migration(migrations.Migration):
    dependencies = [("cdp", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="digest",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="prefix",
            field=models.CharField(max_length=10, default=""),
            preserve_default=False,
        ),
        migrations.RunPython(hash_keys, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apitoken",
            name="digest",
            field=models.CharField(max_length=64, unique=True),
        ),
        migrations.RemoveField(model_name="apitoken", name="key"),
    ]
