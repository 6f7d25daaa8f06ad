"""What the Sessions page says of a session (address, browser, last seen) is written now and
then, not on every page: at most once every SessionActivityMiddleware.ACTIVITY_SECONDS, and at
once when the address or the browser changes."""

import time

import pytest
from allauth.usersessions.models import UserSession
from allauth.usersessions.signals import session_client_changed
from django.conf import settings as django_settings
from django.test import override_settings
from django.urls import reverse

from controlpanel.middleware import SessionActivityMiddleware


@pytest.fixture
def signed_in(client, owner):
    """A session opened through the login form, as allauth records one."""
    response = client.post(
        reverse("login"), {"login": owner.username, "password": owner.raw_password}
    )
    assert response.status_code == 302
    return client


def last_seen(client):
    return UserSession.objects.get(session_key=client.session.session_key).last_seen_at


@pytest.fixture
def one_second(monkeypatch):
    monkeypatch.setattr(SessionActivityMiddleware, "ACTIVITY_SECONDS", 1)


def test_pages_within_the_interval_write_the_session_once_then_again_after_it(
    signed_in, one_second
):
    signed_in.get(reverse("dashboard"))
    first = last_seen(signed_in)
    signed_in.get(reverse("server_list"))
    signed_in.get(reverse("dashboard"))
    assert last_seen(signed_in) == first

    time.sleep(1.1)
    signed_in.get(reverse("dashboard"))
    assert last_seen(signed_in) > first


def test_a_new_browser_on_the_session_is_written_at_once(signed_in, one_second):
    changes = []

    def note(sender, from_session, to_session, **kwargs):
        changes.append((from_session.user_agent, to_session.user_agent))

    signed_in.get(reverse("dashboard"), headers={"user-agent": "Firefox"})
    session_client_changed.connect(note)
    try:
        signed_in.get(reverse("dashboard"), headers={"user-agent": "Chromium"})
    finally:
        session_client_changed.disconnect(note)
    assert changes == [("Firefox", "Chromium")]
    assert UserSession.objects.get(session_key=signed_in.session.session_key).user_agent == (
        "Chromium"
    )


def test_while_redis_is_away_pages_answer_and_the_session_is_written(signed_in):
    signed_in.get(reverse("dashboard"))
    first = last_seen(signed_in)
    away = {**django_settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    with override_settings(CACHES={**django_settings.CACHES, "default": away}):
        assert signed_in.get(reverse("dashboard")).status_code == 200
    assert last_seen(signed_in) > first
