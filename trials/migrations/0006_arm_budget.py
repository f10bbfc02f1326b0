from django.db import migrations, models


def budgets_from_definitions(apps, schema_editor):
    # The budget was read from the trial's definition JSON; the Arm row now holds it.
    Arm = apps.get_model("trials", "Arm")
    for arm in Arm.objects.select_related("trial"):
        for table in arm.trial.definition.get("arms", []):
            if table.get("key") == arm.key and table.get("budget"):
                arm.budget = table["budget"]
                arm.save(update_fields=["budget"])


class Migration(migrations.Migration):
    dependencies = [
        ("trials", "0005_participant_identity"),
    ]

    operations = [
        migrations.AddField(
            model_name="arm",
            name="budget",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(budgets_from_definitions, migrations.RunPython.noop),
    ]
