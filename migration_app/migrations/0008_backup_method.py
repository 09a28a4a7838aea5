from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("migration_app", "0007_validation_in_flight"),
    ]

    operations = [
        migrations.AddField(
            model_name="backup",
            name="method",
            field=models.CharField(
                choices=[
                    ("export", "JSON Lines export (parallel Scan)"),
                    ("native", "DynamoDB on-demand backup (CreateBackup)"),
                ],
                default="export",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="backup",
            name="native_details",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="DescribeBackup's details and the table's PITR status (native method).",
            ),
        ),
        migrations.AlterField(
            model_name="backup",
            name="location",
            field=models.CharField(blank=True, help_text="JSON Lines export path (export method).", max_length=1000),
        ),
        migrations.AlterField(
            model_name="backup",
            name="item_count",
            field=models.BigIntegerField(
                blank=True, help_text="Items counted by a Scan at backup time; empty: not counted.", null=True
            ),
        ),
        migrations.AlterField(
            model_name="backup",
            name="checksum",
            field=models.CharField(
                blank=True, help_text="SetChecksum of a Scan at backup time; empty: not taken.", max_length=64
            ),
        ),
    ]
