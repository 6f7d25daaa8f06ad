"""Write the panel's own data into one archive: its database and a manifest, and with
--include-keys its SECRET_KEY and FIELD_ENCRYPTION_KEY (see deployments/panel_backup.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from deployments import panel_backup


class Command(BaseCommand):
    help = (
        "Back up the panel's database into one .tar.gz archive (default: "
        "var/backups/panel-<UTC time>.tar.gz), readable by this user only."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="the archive to write (must not exist)")
        parser.add_argument(
            "--include-keys",
            action="store_true",
            help="add SECRET_KEY and FIELD_ENCRYPTION_KEY: keep the archive as secret as the keys",
        )

    def handle(self, *args, path: str | None, include_keys: bool, **options):
        now = timezone.now()
        target = Path(path) if path else panel_backup.default_archive_path(now)
        try:
            backup = panel_backup.create_backup(
                target.absolute(), include_keys=include_keys, now=now, ours=path is None
            )
        except panel_backup.BackupError as error:
            raise CommandError(str(error)) from error
        manifest = backup.manifest
        engine = panel_backup.ENGINE_NAMES[manifest["database_engine"]]
        size = target.stat().st_size
        self.stdout.write(
            f"Wrote {target} ({size} bytes): the {engine} database of panel version "
            f"{manifest['panel_version']}, with a manifest of checksums."
        )
        if not backup.folder_private:
            self.stderr.write(
                self.style.WARNING(
                    f"Other users may open the folder {target.parent}: the archive itself is "
                    "readable by this user only."
                )
            )
        if include_keys:
            self.stderr.write(
                self.style.WARNING(
                    "The archive holds SECRET_KEY and FIELD_ENCRYPTION_KEY: keep it as secret "
                    "as the keys themselves: whoever has it can read every stored SSH key and "
                    "password."
                )
            )
        else:
            self.stdout.write(
                "The archive does not hold FIELD_ENCRYPTION_KEY: keep the key with the backup "
                "(apart from it, and as safely), or nothing encrypted in it can be read."
            )
