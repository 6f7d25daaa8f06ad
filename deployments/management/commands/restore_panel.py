"""Restore an archive written by backup_panel into the configured database, after checking every
member against the manifest's checksums. The panel (web, worker and beat) must be stopped."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from deployments import panel_backup


class Command(BaseCommand):
    help = (
        "Restore the panel's database from a backup_panel archive. Stop the panel first; "
        "--yes confirms that the configured database is replaced."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the archive written by backup_panel")
        parser.add_argument(
            "--yes", action="store_true", help="replace what the configured database holds"
        )

    def handle(self, *args, path: str, yes: bool, **options):
        # This process holds no connection of its own while the database is replaced.
        connections.close_all()
        try:
            restored = panel_backup.restore_backup(
                Path(path), db=connections[DEFAULT_DB_ALIAS].settings_dict, confirmed=yes
            )
        except panel_backup.BackupError as error:
            raise CommandError(str(error)) from error
        manifest = restored.manifest
        engine = panel_backup.ENGINE_NAMES[manifest["database_engine"]]
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored the {engine} database into {restored.target}: the backup of "
                f"{manifest['created_at']}, made by panel version {manifest['panel_version']}."
            )
        )
        self.stdout.write(
            "Run `manage.py migrate` before starting the panel, in case this version's schema is "
            "newer than the backup's."
        )
        if restored.keys_in_archive and not restored.archive_key_matches:
            self.stdout.write(
                "The archive's FIELD_ENCRYPTION_KEY is not the one this panel is configured with: "
                "set it (from keys.json in the archive) before starting the panel."
            )
        elif restored.keys_in_archive:
            self.stdout.write("The archive's FIELD_ENCRYPTION_KEY is the one this panel uses.")
        if restored.secrets is not None:
            unreadable = restored.secrets.unreadable
            self.stdout.write(
                f"Stored secrets: {restored.secrets.readable} readable with the configured keys, "
                f"{len(unreadable)} not."
            )
            if unreadable:
                self.stderr.write(
                    self.style.WARNING(
                        "Some stored secrets cannot be read: set FIELD_ENCRYPTION_KEY to the key "
                        "the backup was made with (or add it to FIELD_ENCRYPTION_OLD_KEYS)."
                    )
                )
        else:
            self.stdout.write(
                "The stored secrets could not be checked before `manage.py migrate`: "
                f"{restored.secrets_error}"
            )
