from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0018_idle_guard_note_codes"),
    ]

    operations = [
        migrations.RemoveField(model_name="idleguard", name="note"),
        migrations.RenameField(model_name="idleguard", old_name="note_parts", new_name="note"),
    ]
