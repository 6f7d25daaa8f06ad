import pytest
from django.db import connection

from deployments import crypto
from testkit.factories import make_server

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


def test_encrypted_value_decrypts_to_the_original():
    token = crypto.encrypt("s3cret value ü")
    assert token != "s3cret value ü"
    assert crypto.decrypt(token) == "s3cret value ü"


def test_the_same_secret_encrypts_differently_each_time():
    assert crypto.encrypt("same") != crypto.encrypt("same")


def test_a_different_key_cannot_read_a_stored_secret(settings):
    token = crypto.encrypt("secret")
    settings.FIELD_ENCRYPTION_KEY = "another installation's key"
    with pytest.raises(crypto.SecretUnreadable, match="FIELD_ENCRYPTION_KEY"):
        crypto.decrypt(token)


def test_server_key_is_stored_encrypted_and_read_back_in_plain(team):
    server = make_server(team, ssh_private_key=PRIVATE_KEY)
    with connection.cursor() as cursor:
        cursor.execute("SELECT ssh_private_key FROM deployments_server WHERE id = %s", [server.pk])
        (raw,) = cursor.fetchone()
    assert "PRIVATE KEY" not in raw
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in raw
    server.refresh_from_db()
    assert server.ssh_private_key == PRIVATE_KEY


def test_an_empty_secret_stays_empty_in_the_database(team):
    server = make_server(team)
    with connection.cursor() as cursor:
        cursor.execute("SELECT ssh_private_key FROM deployments_server WHERE id = %s", [server.pk])
        (raw,) = cursor.fetchone()
    assert raw == ""
    assert not server.has_private_key
