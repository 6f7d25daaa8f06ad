"""Login throttling (django-axes): failed logins lock the account and, apart from it, the address
they came from; both login pages then refuse even the right password and say how long to wait."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from axes.models import AccessAttempt
from channels.testing import HttpCommunicator
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from controlpanel.asgi import application
from deployments.models import AuditEvent
from testkit.factories import make_user

ROOT = Path(__file__).resolve().parent.parent
ATTACKER = "198.51.100.66"
ELSEWHERE = "203.0.113.9"

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def superuser(db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "Right-pw-1")
    user.raw_password = "Right-pw-1"
    return user


def log_in(client, username, password, *, address=ATTACKER, url=None):
    return client.post(
        url or reverse("login"),
        {"login": username, "password": password},
        REMOTE_ADDR=address,
    )


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def fail(client, username, times, *, address=ATTACKER, url=None):
    for n in range(times):
        log_in(client, username, f"wrong-{n}", address=address, url=url)


def test_twenty_wrong_passwords_then_the_right_one_is_refused_with_the_wait(client, user):
    fail(client, user.username, 20)
    response = log_in(client, user.username, user.raw_password)
    assert response.status_code == 429
    assert not logged_in(client)
    html = response.content.decode()
    assert "Too many failed logins" in html
    assert "Wait 15 minutes, then try again." in html
    # Still the login form, with the name typed in.
    assert 'name="password"' in html
    assert f'value="{user.username}"' in html


def test_the_admin_login_checks_no_password_and_sends_to_the_throttled_login(client, superuser):
    # The admin has no login of its own that could be used to guess passwords past the
    # throttle or the second factor: it sends to the panel's login.
    url = reverse("admin:login")
    for n in range(20):
        response = client.post(
            url, {"username": superuser.username, "password": f"wrong-{n}"}, REMOTE_ADDR=ATTACKER
        )
        assert response.status_code == 302
        assert response.url.startswith(reverse("login") + "?next=")
    response = client.post(
        url, {"username": superuser.username, "password": superuser.raw_password}
    )
    assert response.status_code == 302
    assert not logged_in(client)
    assert not AccessAttempt.objects.exists()
    assert client.get(reverse("admin:index")).status_code == 302
    # The panel's login, where the admin sends, locks as always.
    fail(client, superuser.username, 5)
    assert log_in(client, superuser.username, superuser.raw_password).status_code == 429


def test_fewer_failures_than_the_limit_leave_the_login_open(client, user):
    fail(client, user.username, 4)
    response = log_in(client, user.username, user.raw_password)
    assert response.status_code == 302
    assert logged_in(client)


def test_a_wrong_password_below_the_limit_says_only_that_it_is_wrong(client, user):
    response = log_in(client, user.username, "wrong")
    assert response.status_code == 200
    assert "Too many failed logins" not in response.content.decode()
    assert (
        response.context["form"].errors["__all__"].as_data()[0].code == "username_password_mismatch"
    )


def test_the_failure_that_reaches_the_limit_already_says_to_wait(client, user):
    fail(client, user.username, 4)
    response = log_in(client, user.username, "wrong-again")
    assert response.status_code == 429
    assert response.context["form"].errors["__all__"].as_data()[0].code == "locked_out"


def test_a_locked_account_is_refused_from_every_address(client, user):
    fail(client, user.username, 5, address=ATTACKER)
    response = log_in(client, user.username, user.raw_password, address=ELSEWHERE)
    assert response.status_code == 429
    assert not logged_in(client)


def test_an_address_trying_many_accounts_is_locked_for_all_of_them(client, user):
    for n in range(5):
        log_in(client, f"guess{n}", "wrong", address=ATTACKER)
    assert log_in(client, user.username, user.raw_password, address=ATTACKER).status_code == 429
    assert not logged_in(client)
    # The account itself was never named: from another address it logs in.
    assert log_in(client, user.username, user.raw_password, address=ELSEWHERE).status_code == 302
    assert logged_in(client)


def test_the_login_opens_again_after_the_cool_off(client, user):
    fail(client, user.username, 5)
    assert log_in(client, user.username, user.raw_password).status_code == 429
    past = timezone.now() - timedelta(minutes=16)
    AccessAttempt.objects.update(attempt_time=past)
    response = log_in(client, user.username, user.raw_password)
    assert response.status_code == 302
    assert logged_in(client)


def test_the_limit_and_the_wait_follow_the_settings(client, user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    fail(client, user.username, 2)
    response = log_in(client, user.username, user.raw_password)
    assert response.status_code == 429
    assert "Wait 1 minute, then try again." in response.content.decode()


def test_the_environment_sets_the_limit_and_the_cool_off(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds())"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "testkit.settings",
        "LOGIN_FAILURE_LIMIT": "7",
        "LOGIN_COOLOFF_MINUTES": "45",
        "CONTROLPANEL_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["7", "2700.0"]


def test_the_test_client_and_force_login_still_log_in(client, user):
    # Logins without a request (the test client's login(), management commands) are not
    # counted by axes, and must not fail because of it.
    assert client.login(username=user.username, password=user.raw_password)
    client.logout()
    client.force_login(user)
    assert logged_in(client)


def test_failed_logins_and_the_lockout_go_to_the_audit_trail_once(client, user):
    fail(client, user.username, 20)
    log_in(client, user.username, user.raw_password)
    failed = AuditEvent.objects.filter(action="login_failed")
    assert failed.count() == 21
    assert {event.details["username"] for event in failed} == {user.username}
    assert {event.ip_address for event in failed} == {ATTACKER}
    lockout = AuditEvent.objects.get(action="login_locked_out")
    assert lockout.details == {
        "username": user.username,
        "locked": ["account", "address"],
        "minutes": 15,
    }
    assert lockout.ip_address == ATTACKER
    assert lockout.actor is None


def test_an_address_locked_later_than_the_account_is_recorded_apart(client, user):
    fail(client, user.username, 5, address=ATTACKER)
    for n in range(4):
        log_in(client, f"guess{n}", "wrong", address=ELSEWHERE)
    log_in(client, user.username, "wrong", address=ELSEWHERE)
    lockouts = AuditEvent.objects.filter(action="login_locked_out").order_by("id")
    assert [(e.ip_address, e.details["locked"]) for e in lockouts] == [
        (ATTACKER, ["account", "address"]),
        (ELSEWHERE, ["address"]),
    ]


# Under ASGI (as the panel is served) Django runs the middleware chain asynchronously.


async def asgi(method, path, *, body=b"", cookies=""):
    headers = [(b"host", b"localhost")]
    if cookies:
        headers.append((b"cookie", cookies.encode()))
    if body:
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
    communicator = HttpCommunicator(application, method, path, body=body, headers=headers)
    # Hashing a password takes a while on a busy machine.
    return await communicator.get_response(timeout=30)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_lockout_answers_429_with_the_wait_under_asgi():
    await get_user_model().objects.acreate_user("bob", password="Right-pw-1")
    page = await asgi("GET", "/login/")
    cookie = next(v for k, v in page["headers"] if k == b"Set-Cookie").decode().split(";")[0]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page["body"]).group(1)

    def form(password):
        fields = {"csrfmiddlewaretoken": token.decode(), "login": "bob", "password": password}
        return urlencode(fields).encode()

    for n in range(5):
        await asgi("POST", "/login/", body=form(f"wrong-{n}"), cookies=cookie)
    response = await asgi("POST", "/login/", body=form("Right-pw-1"), cookies=cookie)
    assert response["status"] == 429
    assert b"Wait 15 minutes, then try again." in response["body"]
