from django.db import migrations, models


MODES = [
    ("redis_only", "Redis only (legacy)"),
    ("parallel", "Parallel: write both, read Redis"),
    ("cutover", "Cutover: read DynamoDB, still write Redis"),
    ("dynamodb_only", "DynamoDB only"),
    ("cached", "Cached: Redis hot tier, write-through"),
    ("cached_write_behind", "Cached: Redis hot tier, write-behind"),
]


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0002_workflow")]

    operations = [
        migrations.CreateModel(
            name="SessionStoreSetting",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("mode", models.CharField(choices=MODES, max_length=32)),
                ("changed_at", models.DateTimeField()),
                ("changed_by", models.CharField(max_length=150)),
                ("reason", models.TextField(blank=True)),
            ],
            options={"verbose_name": "session store mode", "verbose_name_plural": "session store mode"},
        ),
        migrations.CreateModel(
            name="SessionStoreModeChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("from_mode", models.CharField(blank=True, choices=MODES, max_length=32)),
                ("to_mode", models.CharField(choices=MODES, max_length=32)),
                ("changed_at", models.DateTimeField(db_index=True)),
                ("changed_by", models.CharField(max_length=150)),
                ("reason", models.TextField(blank=True)),
                ("forced", models.BooleanField(default=False)),
            ],
            options={"ordering": ["-changed_at", "-id"]},
        ),
    ]
