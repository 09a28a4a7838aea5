"""A reference a customer can quote on every parts order and service request (issue 16).

Added nullable, filled row by row (a callable default on AddField would give every existing row the same
value), then made required and unique per customer.
"""

from django.db import migrations, models

import sessions_app.models


def _fill(apps, schema_editor):
    for model_name, generate in (
        ("PartsOrder", sessions_app.models.parts_order_reference),
        ("ServiceRequest", sessions_app.models.service_request_reference),
    ):
        model = apps.get_model("sessions_app", model_name)
        taken: set[tuple[int, str]] = set()
        for row in model.objects.filter(reference__isnull=True).only("pk", "customer_id").iterator():
            reference = generate()
            while (row.customer_id, reference) in taken:
                reference = generate()
            taken.add((row.customer_id, reference))
            model.objects.filter(pk=row.pk).update(reference=reference)


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0003_store_modes")]

    operations = [
        migrations.AddField(
            model_name="partsorder",
            name="reference",
            field=models.CharField(max_length=16, null=True, editable=False),
        ),
        migrations.AddField(
            model_name="servicerequest",
            name="reference",
            field=models.CharField(max_length=16, null=True, editable=False),
        ),
        migrations.RunPython(_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="partsorder",
            name="reference",
            field=models.CharField(
                db_index=True, default=sessions_app.models.parts_order_reference, editable=False, max_length=16
            ),
        ),
        migrations.AlterField(
            model_name="servicerequest",
            name="reference",
            field=models.CharField(
                db_index=True, default=sessions_app.models.service_request_reference, editable=False, max_length=16
            ),
        ),
        migrations.AddConstraint(
            model_name="partsorder",
            constraint=models.UniqueConstraint(
                fields=("customer", "reference"), name="parts_order_reference_per_customer"
            ),
        ),
        migrations.AddConstraint(
            model_name="servicerequest",
            constraint=models.UniqueConstraint(
                fields=("customer", "reference"), name="service_request_reference_per_customer"
            ),
        ),
    ]
