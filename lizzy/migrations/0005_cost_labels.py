"""The cost page speaks to operators: the seeds' internal names ("Seed 000", "seed 001 (recommended)") become
plain labels. Rows an operator renamed are left alone (only the shipped texts are matched)."""

from django.db import migrations

PRICE_NAMES = {"Seed 000 (older list price)": "Older list price (before the November 2024 cut)"}
PRICE_SOURCES = {"seed 000, Cost Comparison": "the list price before AWS's November 2024 cut"}
NODE_SOURCES = {
    "seed 000": "",
    "seed 000 (break-even basis)": "break-even basis",
    "seed 001": "",
    "seed 001 (recommended)": "recommended size",
}


def relabel(apps, schema_editor, forward=True):
    DynamoDBPricing = apps.get_model("lizzy", "DynamoDBPricing")
    CacheNodePrice = apps.get_model("lizzy", "CacheNodePrice")
    for model, field, mapping in (
        (DynamoDBPricing, "name", PRICE_NAMES),
        (DynamoDBPricing, "source", PRICE_SOURCES),
        (CacheNodePrice, "source", NODE_SOURCES),
    ):
        pairs = mapping.items() if forward else ((new, old) for old, new in mapping.items() if new)
        for old, new in pairs:
            model.objects.filter(**{field: old}).update(**{field: new})


def unlabel(apps, schema_editor):
    relabel(apps, schema_editor, forward=False)


class Migration(migrations.Migration):
    dependencies = [("lizzy", "0004_read_customer_messages")]

    operations = [migrations.RunPython(relabel, unlabel)]
