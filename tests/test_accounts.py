"""Accounts through django-allauth: two-factor login with real TOTP codes and recovery codes,
password change, reset by a code sent by e-mail (Django's mail path, locmem in tests), closed
sign-up, and revoking another session (its browser and its open log socket end). The OpenID
Connect login is in test_accounts_oidc.py."""

import logging
import re
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from controlpanel.accounts import has_two_factor
from testkit.factories import make_user
from tests.test_live_access import (  # noqa: F401 (fixtures)
    _quick_checks,
    open_live,
    remote,
    service,
)

pytestmark = pytest.mark.django_db

ADDRESS = "alice@example.com"


@pytest.fixture
def user(db):
    user = make_user("alice")
    user.email = ADDRESS
    user.save(update_fields=["email"])
    EmailAddress.objects.create(user=user, email=ADDRESS, verified=True, primary=True)
    return user


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def log_in(client, user, password=None):
    return client.post(
        reverse("login"), {"login": user.username, "password": password or user.raw_password}
    )


def totp_code(secret: str, *, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows now (RFC 6238: 30-second steps, 6 digits)."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + steps_ahead))


@pytest.fixture
def totp_secret(user) -> str:
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    RecoveryCodes.activate(user)
    return secret


# Two-factor


def test_without_two_factor_the_password_logs_in(client, user):
    assert not has_two_factor(user)
    response = log_in(client, user)
    assert response.url == reverse("dashboard")
    assert logged_in(client)


def test_with_totp_the_password_alone_does_not_log_in_and_the_code_does(client, user, totp_secret):
    assert has_two_factor(user)
    response = log_in(client, user)
    assert response.url == reverse("mfa_authenticate")
    assert not logged_in(client)
    assert client.get(reverse("dashboard")).status_code == 302

    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(totp_secret)})
    assert response.url == reverse("dashboard")
    assert logged_in(client)
    assert client.get(reverse("dashboard")).status_code == 200


def test_a_wrong_code_is_refused(client, user, totp_secret):
    log_in(client, user)
    wrong = totp_code(totp_secret, steps_ahead=10)
    response = client.post(reverse("mfa_authenticate"), {"code": wrong})
    assert response.status_code == 200
    assert response.context["form"].errors["code"]
    assert not logged_in(client)


def test_a_recovery_code_logs_in_once(client, user, totp_secret):
    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    code = RecoveryCodes(authenticator).get_unused_codes()[0]
    log_in(client, user)
    response = client.post(reverse("mfa_authenticate"), {"code": code})
    assert response.url == reverse("dashboard")
    assert logged_in(client)

    again = Client()
    log_in(again, user)
    response = again.post(reverse("mfa_authenticate"), {"code": code})
    assert response.status_code == 200
    assert not logged_in(again)


def test_turning_totp_on_asks_for_a_code_from_the_secret_it_shows(client, user):
    client.force_login(user)
    # Turning two-factor on asks for the password again first.
    response = client.get(reverse("mfa_activate_totp"))
    assert response.url.startswith(reverse("account_reauthenticate"))
    client.post(reverse("account_reauthenticate"), {"password": user.raw_password})
    page = client.get(reverse("mfa_activate_totp"))
    secret = page.context["form"].secret
    assert "LLM%20stack%20panel" in page.context["totp_url"]
    response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert has_two_factor(user)


def test_the_admin_login_goes_through_the_panel_login_and_its_second_factor(client):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "Right-pw-1")
    secret = generate_totp_secret()
    TOTP.activate(root, secret)
    response = client.get(reverse("admin:index"), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("login"))
    response = client.post(
        reverse("login") + "?next=/admin/", {"login": "root", "password": "Right-pw-1"}
    )
    assert response.url.startswith(reverse("mfa_authenticate"))
    assert client.get(reverse("admin:index")).status_code == 302
    client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert client.get(reverse("admin:index")).status_code == 200


# Passwords


def test_a_user_changes_their_password_and_logs_in_with_the_new_one(client, user):
    client.force_login(user)
    response = client.post(
        reverse("account_change_password"),
        {
            "oldpassword": user.raw_password,
            "password1": "A-new-long-passphrase-7",
            "password2": "A-new-long-passphrase-7",
        },
    )
    assert response.status_code == 302
    fresh = Client()
    assert log_in(fresh, user).status_code == 200
    assert log_in(fresh, user, "A-new-long-passphrase-7").url == reverse("dashboard")


def test_a_password_reset_mails_a_code_that_sets_a_new_password_and_is_never_logged(
    client, user, caplog
):
    caplog.set_level(logging.DEBUG)
    response = client.post(reverse("account_reset_password"), {"email": ADDRESS})
    assert response.url == reverse("account_confirm_password_reset_code")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [ADDRESS]
    # The secret is a code to type, no link: nothing secret goes into an address that an
    # access log would write down.
    assert "http" not in message.body
    code = next(line for line in message.body.splitlines() if re.fullmatch(r"[A-Z0-9-]{6,}", line))
    assert all(code not in record.getMessage() for record in caplog.records)

    wrong = client.post(reverse("account_confirm_password_reset_code"), {"code": "WRONG123"})
    assert wrong.status_code == 200
    response = client.post(reverse("account_confirm_password_reset_code"), {"code": code})
    assert response.url == reverse("account_complete_password_reset")
    response = client.post(
        reverse("account_complete_password_reset"),
        {"password1": "Reset-passphrase-42", "password2": "Reset-passphrase-42"},
    )
    assert response.status_code == 302
    assert log_in(Client(), user, "Reset-passphrase-42").status_code == 302
    assert log_in(Client(), user).status_code == 200
    assert all(code not in record.getMessage() for record in caplog.records)


def test_without_a_mail_server_the_reset_page_says_so_and_sends_nothing(client, user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = ""
    html = client.get(reverse("account_reset_password")).content.decode()
    assert "no mail server is configured" in html
    assert "set a new password for you in the admin" in html
    response = client.post(reverse("account_reset_password"), {"email": ADDRESS})
    assert response.status_code == 200
    assert mail.outbox == []


def test_a_user_adds_an_email_address(client):
    bob = make_user("bob")
    client.force_login(bob)
    response = client.post(reverse("account_email"), {"action_add": "", "email": "bob@example.com"})
    assert response.status_code == 302
    assert EmailAddress.objects.filter(user=bob, email="bob@example.com").exists()


def test_nobody_signs_up(client):
    response = client.post(
        reverse("account_signup"),
        {"username": "mallory", "password1": "Some-pass-123", "password2": "Some-pass-123"},
    )
    assert "Ask a team owner for an invitation" in response.content.decode()
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_the_account_page_links_what_a_user_manages(client, user):
    client.force_login(user)
    html = client.get(reverse("dashboard")).content.decode()
    assert f'href="{reverse("account_index")}"' in html
    html = client.get(reverse("account_index")).content.decode()
    for name in ("account_change_password", "account_email", "mfa_index", "usersessions_list"):
        assert f'href="{reverse(name)}"' in html


# Sessions


def test_logging_out_the_other_sessions_logs_that_browser_out(client, user):
    elsewhere = Client(HTTP_USER_AGENT="Elsewhere/1.0")
    log_in(elsewhere, user)
    log_in(client, user)
    page = client.get(reverse("usersessions_list"))
    assert "Elsewhere/1.0" in page.content.decode()

    assert client.post(reverse("usersessions_list")).status_code == 302

    assert elsewhere.get(reverse("dashboard")).status_code == 302
    assert client.get(reverse("dashboard")).status_code == 200


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_open_log_socket_of_a_revoked_session_closes(team, service, viewer, remote):  # noqa: F811
    from deployments.consumers import live_access
    from testkit.websockets import in_thread

    live = await open_live("service logs", {"service": service}, viewer)

    def load_the_page_then_revoke_from_another_browser():
        # The browser loaded the page that opened the socket: its session is listed.
        page = Client()
        page.cookies[django_settings.SESSION_COOKIE_NAME] = live.session_key
        assert page.get(reverse("dashboard")).status_code == 200
        other = Client()
        log_in(other, viewer)
        listed = other.get(reverse("usersessions_list")).context["sessions"]
        assert live.session_key in {session.session_key for session in listed}
        assert other.post(reverse("usersessions_list")).status_code == 302

    await in_thread(load_the_page_then_revoke_from_another_browser)
    assert await live.close_code() == live_access.CLOSE_NOT_LOGGED_IN
    await live.communicator.disconnect()
