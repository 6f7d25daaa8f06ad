"""Create the provider's database, its people and the client application it was started with
(directory.json in OIDC_PROVIDER_DIR), then serve on loopback until the process is ended."""

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from oauth2_provider.models import Application

from ...models import Person


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        directory = json.loads((settings.STATE / "directory.json").read_text())
        call_command("migrate", run_syncdb=True, verbosity=0)
        for entry in directory["people"]:
            user = get_user_model().objects.create_user(
                entry["username"], email=entry["email"], password=entry["password"]
            )
            Person.objects.create(user=user, email_verified=entry["email_verified"])
        client = directory["client"]
        Application.objects.create(
            name="panel",
            client_id=client["id"],
            client_secret=client["secret"],
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=client["redirect_uri"],
            algorithm=Application.RS256_ALGORITHM,
            # A first-party client: no consent page after the login.
            skip_authorization=True,
        )
        call_command(
            "runserver", f"127.0.0.1:{settings.PORT}", use_reloader=False, use_threading=True
        )
