"""The idle guard's note as sentence codes with their values, read in each reader's language;
the notes written before, in English, are read into codes here (what no sentence fits is kept
as text)."""

import re

from django.db import migrations, models

# The English sentences the notes were written in, by the code each becomes.
SENTENCES = (
    ("used", "The models of %(stacks)s received requests since the last check."),
    ("first", "First reading of the request counter of %(stacks)s."),
    ("gpu_busy", "The GPUs were in use at %(at)s UTC."),
    ("unread", "Could not read the requests of %(reasons)s"),
    (
        "no_gpu_reading",
        "No GPU reading in the last %(minutes)s min: the server's checks record them "
        "(is the periodic check on?).",
    ),
    ("idle", "Idle for %(minutes)s min: no model request and the GPUs quiet."),
    ("quiet", "Quiet for %(minutes)s min of %(idle_minutes)s."),
    ("off", "The idle guard is off for this server."),
    ("no_price", "The server has no hourly price: the idle guard leaves it alone."),
    ("step_failed", "The step “%(title)s” did not succeed: %(error)s"),
    ("run_under_way", "“%(title)s” is under way: the guard waits until it has finished."),
    ("kept_running", "Kept running."),
    ("started_again", "Started again."),
)


def _pattern(sentence):
    """SENTENCE at the start of a note, its %(name)s as groups; one ending in a value takes
    the rest of the note."""
    parts = re.split(r"%\((\w+)\)s", sentence)
    pattern = ""
    for position, part in enumerate(parts):
        if position % 2 == 0:
            pattern += re.escape(part)
        elif position == len(parts) - 2 and parts[-1] == "":
            pattern += f"(?P<{part}>.*)"
        else:
            pattern += f"(?P<{part}>.*?)"
    end = r"\Z" if parts[-1] == "" and len(parts) > 1 else r"(?:\s+|\Z)"
    return re.compile(pattern + end, re.DOTALL)


PATTERNS = [(code, _pattern(sentence)) for code, sentence in SENTENCES]


def note_parts(note):
    parts = []
    rest = note.strip()
    while rest:
        for code, pattern in PATTERNS:
            found = pattern.match(rest)
            if found:
                parts.append({"code": code, "params": found.groupdict()})
                rest = rest[found.end() :]
                break
        else:
            parts.append({"code": "text", "params": {"text": rest}})
            break
    return parts


def forwards(apps, schema_editor):
    IdleGuard = apps.get_model("deployments", "IdleGuard")
    for guard in IdleGuard.objects.exclude(note="").only("pk", "note"):
        IdleGuard.objects.filter(pk=guard.pk).update(note_parts=note_parts(guard.note))


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0017_backup_before_upgrade"),
    ]

    operations = [
        migrations.AddField(
            model_name="idleguard",
            name="note_parts",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
