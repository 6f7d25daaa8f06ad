"""Re-encrypt every stored secret with FIELD_ENCRYPTION_KEY.

Run after setting a new FIELD_ENCRYPTION_KEY and moving the old one to FIELD_ENCRYPTION_OLD_KEYS;
afterwards the old keys can go. Safe to run again: values already written with the current key
are left alone. Prints counts per model, never a value.
"""

from django.core.management.base import BaseCommand, CommandError

from deployments import panel_backup


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted field of every model with FIELD_ENCRYPTION_KEY; values "
        "written with a key in FIELD_ENCRYPTION_OLD_KEYS are read with it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size", type=int, default=panel_backup.BATCH_SIZE, help="rows read at once"
        )

    def handle(self, *args, batch_size: int, **options):
        try:
            check = panel_backup.walk_stored_secrets(write=True, batch_size=batch_size)
        except panel_backup.KeysMissing as error:
            raise CommandError(str(error)) from error
        for label, count in sorted(check.counts.items()):
            self.stdout.write(
                f"{label}: {count.older} re-encrypted, {count.current} already on the current key"
            )
        total = sum(count.older for count in check.counts.values())
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {total} value(s) re-encrypted. Every stored secret now reads with "
                "FIELD_ENCRYPTION_KEY alone: FIELD_ENCRYPTION_OLD_KEYS can be emptied."
            )
        )
