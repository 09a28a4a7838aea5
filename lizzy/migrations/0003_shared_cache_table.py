"""The table of the ``shared`` cache when Redis is not configured (settings: CACHES["shared"]).

Created whatever the current configuration, so switching Redis off later finds it in place. Django's
``createcachetable`` makes the same table; this migration makes it part of ``migrate``.
"""

from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations

TABLE = "lizzy_shared_cache"


def create(apps, schema_editor):
    command = CreateCacheTable()
    command.verbosity = 0
    command.create_table(schema_editor.connection.alias, TABLE, dry_run=False)


def drop(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("lizzy", "0002_api_access")]

    operations = [migrations.RunPython(create, drop)]
