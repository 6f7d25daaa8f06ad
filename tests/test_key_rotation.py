"""FIELD_ENCRYPTION_KEY can change: earlier keys listed in FIELD_ENCRYPTION_OLD_KEYS still read,
new values are written with the newest key, and `rotate_encryption_key` re-encrypts what is stored
so that the new key alone reads everything."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from deployments import crypto, panel_backup
from deployments.models import Server
from testkit.factories import make_server, make_stack

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
OLD, NEW, LOST = "the key of last year", "the key of this year", "a key nobody kept"


def stored(server: Server) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT ssh_private_key FROM deployments_server WHERE id = %s", [server.pk])
        return cursor.fetchone()[0]


def rotate(**options) -> str:
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out, stderr=out, **options)
    return out.getvalue()


def test_a_value_written_with_an_old_key_reads_while_that_key_is_listed(settings):
    settings.FIELD_ENCRYPTION_KEY = OLD
    token = crypto.encrypt("password")
    settings.FIELD_ENCRYPTION_KEY, settings.FIELD_ENCRYPTION_OLD_KEYS = NEW, [OLD]
    assert crypto.decrypt(token) == "password"
    settings.FIELD_ENCRYPTION_OLD_KEYS = []
    with pytest.raises(crypto.SecretUnreadable, match="FIELD_ENCRYPTION_OLD_KEYS"):
        crypto.decrypt(token)


def test_new_values_are_written_with_the_newest_key_while_old_ones_are_listed(settings):
    settings.FIELD_ENCRYPTION_KEY, settings.FIELD_ENCRYPTION_OLD_KEYS = NEW, [OLD]
    token = crypto.encrypt("password")
    settings.FIELD_ENCRYPTION_OLD_KEYS = []
    assert crypto.decrypt(token) == "password"
    assert crypto.is_current(token)


def test_every_encrypted_field_of_every_model_is_found():
    found = {(model._meta.label, field.name) for model, field in panel_backup.encrypted_fields()}
    assert {
        ("deployments.Server", "ssh_private_key"),
        ("deployments.Stack", "secrets"),
        ("deployments.RemoteProvider", "api_key"),
        ("deployments.NotificationChannel", "target"),
        ("deployments.NotificationChannel", "secret"),
    } <= found


def test_after_the_command_every_value_decrypts_with_the_new_key_alone(settings, team):
    settings.FIELD_ENCRYPTION_KEY = OLD
    servers = [make_server(team, ssh_private_key=f"{PRIVATE_KEY}{n}") for n in range(3)]
    stack = make_stack(servers[0], secrets='{"ROOT_KEY": "root-secret"}')
    before = [stored(server) for server in servers]
    settings.FIELD_ENCRYPTION_KEY, settings.FIELD_ENCRYPTION_OLD_KEYS = NEW, [OLD]

    output = rotate(batch_size=2)

    assert "deployments.Server: 3 re-encrypted, 0 already on the current key" in output
    assert "deployments.Stack: 1 re-encrypted" in output
    settings.FIELD_ENCRYPTION_OLD_KEYS = []
    assert [stored(server) for server in servers] != before
    for n, server in enumerate(servers):
        server.refresh_from_db()
        assert server.ssh_private_key == f"{PRIVATE_KEY}{n}"
    stack.refresh_from_db()
    assert stack.secrets == '{"ROOT_KEY": "root-secret"}'
    for secret in (PRIVATE_KEY, "root-secret", OLD, NEW, *before):
        assert secret not in output


def test_running_the_command_again_changes_nothing(settings, team):
    settings.FIELD_ENCRYPTION_KEY = OLD
    server = make_server(team, ssh_private_key=PRIVATE_KEY)
    settings.FIELD_ENCRYPTION_KEY, settings.FIELD_ENCRYPTION_OLD_KEYS = NEW, [OLD]
    rotate()
    after_first = stored(server)

    output = rotate()

    assert "deployments.Server: 0 re-encrypted, 1 already on the current key" in output
    assert stored(server) == after_first


def test_an_unreadable_value_stops_the_command_naming_it_and_changes_nothing(settings, team):
    settings.FIELD_ENCRYPTION_KEY = LOST
    lost = make_server(team, ssh_private_key=PRIVATE_KEY)
    settings.FIELD_ENCRYPTION_KEY = OLD
    readable = make_server(team, ssh_private_key=PRIVATE_KEY)
    before = stored(readable)
    settings.FIELD_ENCRYPTION_KEY, settings.FIELD_ENCRYPTION_OLD_KEYS = NEW, [OLD]

    with pytest.raises(CommandError) as refused:
        rotate()

    message = str(refused.value)
    assert "1 stored value(s) cannot be read" in message
    assert f"deployments.Server.ssh_private_key pk={lost.pk}" in message
    assert f"pk={readable.pk}" not in message
    assert "Nothing was changed" in message
    assert stored(readable) == before
    for secret in (PRIVATE_KEY, OLD, NEW, LOST):
        assert secret not in message
