from django.db import migrations, models


def forward(apps, schema_editor):
    # No release set these two; a row that has one reads as what the panel knows of it.
    Stack = apps.get_model("deployments", "Stack")
    Stack.objects.filter(status="deploying").update(status="draft")
    Stack.objects.filter(status="stopped").update(status="degraded")


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0006_model_config_gpu_memory"),
    ]

    operations = [
        migrations.RunPython(forward, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="stack",
            name="status",
            field=models.CharField(
                choices=[
                    ("draft", "Not deployed"),
                    ("running", "Running"),
                    ("degraded", "Degraded"),
                    ("torn_down", "Torn down"),
                ],
                default="draft",
                max_length=16,
            ),
        ),
    ]
