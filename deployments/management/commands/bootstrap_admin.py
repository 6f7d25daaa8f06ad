"""Create the first user and team on a fresh installation, with a generated password.

Does nothing once any user exists, so it is safe to run at every start.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from deployments import audit
from deployments.choices import Role
from deployments.models import Membership, Team


class Command(BaseCommand):
    help = "Create the first administrator and team, printing a generated password once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--team", default="Default")

    def handle(self, *args, username: str, team: str, **options):
        User = get_user_model()
        with transaction.atomic():
            if User.objects.exists():
                self.stdout.write(
                    "Users exist already: log in with your account "
                    "(`manage.py createsuperuser` adds another)."
                )
                return
            password = secrets.token_urlsafe(15)
            user = User.objects.create_superuser(username=username, password=password)
            first_team, _ = Team.objects.get_or_create(name=team)
            Membership.objects.create(team=first_team, user=user, role=Role.OWNER)
            audit.record("user.bootstrap", actor=user, target=first_team, team=first_team)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the first user '{username}', owner of team '{team}'.\n"
                f"  Password: {password}\n"
                "  It is shown only this once: change it after logging in (Admin > Users)."
            )
        )
