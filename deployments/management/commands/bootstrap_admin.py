"""Create the first user and team on a fresh installation, with a generated password.

The first user is an ordinary account that owns the first team: the panel's own pages do all a
team owner needs (inviting people included), so it does not need Django's admin. `--superuser`
makes it a Django superuser too. Does nothing once any user exists, so it is safe to run at every
start.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.urls import reverse

from deployments import audit
from deployments.choices import Role
from deployments.models import Membership, Team


class Command(BaseCommand):
    help = "Create the first user, owner of the first team, printing a generated password once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--team", default="Default")
        parser.add_argument(
            "--superuser",
            action="store_true",
            help="Make the first user a Django superuser as well (the admin site at /admin/).",
        )

    def handle(self, *args, username: str, team: str, superuser: bool, **options):
        User = get_user_model()
        with transaction.atomic():
            if User.objects.exists():
                self.stdout.write(
                    "Users exist already: log in with your account (owners invite others "
                    "from their team's page)."
                )
                return
            password = secrets.token_urlsafe(15)
            create = User.objects.create_superuser if superuser else User.objects.create_user
            user = create(username=username, password=password)
            first_team, _ = Team.objects.get_or_create(name=team)
            Membership.objects.create(team=first_team, user=user, role=Role.OWNER)
            audit.record(
                "user.bootstrap",
                actor=user,
                target=first_team,
                team=first_team,
                details={"superuser": superuser},
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the first user '{username}', owner of team '{team}'.\n"
                f"  Password: {password}\n"
                "  It is shown only this once: change it after logging in, on your Account page "
                f"({reverse('account_change_password')})."
            )
        )
