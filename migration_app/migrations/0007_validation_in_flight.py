from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("migration_app", "0006_quarantine_cdc"),
    ]

    operations = [
        migrations.AddField(
            model_name="validationreport",
            name="in_flight",
            field=models.BigIntegerField(
                default=0,
                help_text="Keys that differed only because a change was on its way: equal once the CDC worker "
                "applied it.",
            ),
        ),
        migrations.AddField(
            model_name="validationreport",
            name="unsettled",
            field=models.BigIntegerField(
                default=0,
                help_text="Keys (and counts) still changing, or not settled because the CDC worker did not advance: "
                "neither a difference nor a match; the report is not clean.",
            ),
        ),
    ]
