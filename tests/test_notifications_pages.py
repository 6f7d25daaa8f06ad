"""A team's Notifications page: owners add, edit, test and delete channels; the URL's token and
the signing secret are never in a page once saved; other members see the list only."""

import hashlib
import hmac
import json

import pytest
from django.db import connection
from django.urls import reverse

from deployments.choices import Role
from deployments.models import AuditEvent, ChannelKind, NotificationChannel
from testkit.factories import add_member
from testkit.receivers import http_receiver


@pytest.fixture
def owner(team):
    return add_member(team, role=Role.OWNER)


def form_post(**fields) -> dict:
    data = {
        "name": "ops hook",
        "kind": ChannelKind.WEBHOOK,
        "url": "",
        "addresses": "",
        "secret": "",
        "events": ["run_failed", "server_unreachable"],
        "allow_private": "on",
        "enabled": "on",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def test_a_webhook_channel_shows_its_signing_secret_once_and_then_never(client, team, owner):
    client.force_login(owner)
    url = "http://127.0.0.1:9/hooks/token-abc-123456"
    response = client.post(reverse("notification_create", args=[team.pk]), form_post(url=url))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    channel = NotificationChannel.objects.get(team=team)
    assert channel.secret.startswith("whsec_")
    page = response.content.decode()
    assert channel.secret in page
    assert "token-abc-123456" not in page

    for name, args in (
        ("notification_list", [team.pk]),
        ("notification_edit", [channel.pk]),
        ("notification_delete", [channel.pk]),
        ("team_detail", [team.pk]),
    ):
        later = client.get(reverse(name, args=args)).content.decode()
        assert channel.secret not in later, name
        assert "token-abc-123456" not in later, name
    edit = client.get(reverse("notification_edit", args=[channel.pk])).content.decode()
    assert "Saved; enter a new one to replace it." in edit


def test_the_stored_url_and_secret_are_encrypted(team, owner, client):
    client.force_login(owner)
    url = "http://127.0.0.1:9/hooks/token-xyz-987654"
    client.post(reverse("notification_create", args=[team.pk]), form_post(url=url))
    channel = NotificationChannel.objects.get(team=team)
    # Read past the field's decryption: what the database holds.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT target, secret FROM deployments_notificationchannel WHERE id = %s",
            [channel.pk],
        )
        raw_target, raw_secret = cursor.fetchone()
    assert channel.target == url
    assert "token-xyz-987654" not in raw_target
    assert channel.secret not in raw_secret


def test_editing_with_the_url_left_blank_keeps_it(client, team, owner):
    client.force_login(owner)
    url = "http://127.0.0.1:9/hooks/token-keep-111111"
    client.post(reverse("notification_create", args=[team.pk]), form_post(url=url))
    channel = NotificationChannel.objects.get(team=team)
    secret = channel.secret

    response = client.post(
        reverse("notification_edit", args=[channel.pk]),
        form_post(name="ops renamed", url="", events=["document_failed"]),
    )

    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.target, channel.secret) == ("ops renamed", url, secret)
    assert channel.events == ["document_failed"]
    assert AuditEvent.objects.filter(action="notification_channel.edit").exists()


def test_a_new_signing_secret_is_shown_once_and_replaces_the_old(client, team, owner):
    client.force_login(owner)
    client.post(
        reverse("notification_create", args=[team.pk]),
        form_post(url="http://127.0.0.1:9/h"),
    )
    channel = NotificationChannel.objects.get(team=team)
    old = channel.secret
    response = client.post(
        reverse("notification_edit", args=[channel.pk]), form_post(new_secret="on")
    )
    channel.refresh_from_db()
    assert channel.secret != old
    assert channel.secret in response.content.decode()


def test_a_chat_bot_secret_is_never_shown_after_saving(client, team, owner):
    client.force_login(owner)
    response = client.post(
        reverse("notification_create", args=[team.pk]),
        form_post(
            kind=ChannelKind.DINGTALK,
            url="http://127.0.0.1:9/robot/send?access_token=tok-222222",
            secret="SECdingtalk-333333",
        ),
    )
    assert response.status_code == 302
    channel = NotificationChannel.objects.get(team=team)
    assert channel.secret == "SECdingtalk-333333"
    for name, args in (("notification_list", [team.pk]), ("notification_edit", [channel.pk])):
        page = client.get(reverse(name, args=args)).content.decode()
        assert "SECdingtalk-333333" not in page and "tok-222222" not in page
    details = json.dumps(list(AuditEvent.objects.values_list("details", flat=True)))
    assert "SECdingtalk-333333" not in details and "tok-222222" not in details


def test_a_url_on_loopback_needs_private_addresses_allowed(client, team, owner):
    client.force_login(owner)
    response = client.post(
        reverse("notification_create", args=[team.pk]),
        form_post(url="http://127.0.0.1:8080/hook", allow_private=None),
    )
    assert response.status_code == 200
    assert "Allow private addresses" in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_an_e_mail_channel_takes_addresses_and_refuses_a_bad_one(client, team, owner):
    client.force_login(owner)
    response = client.post(
        reverse("notification_create", args=[team.pk]),
        form_post(kind=ChannelKind.EMAIL, addresses="ops@example.com, not-an-address"),
    )
    assert "Not an e-mail address: not-an-address" in response.content.decode()
    response = client.post(
        reverse("notification_create", args=[team.pk]),
        form_post(kind=ChannelKind.EMAIL, addresses="ops@example.com, oncall@example.com"),
    )
    assert response.status_code == 302
    channel = NotificationChannel.objects.get(team=team)
    assert channel.target == "ops@example.com\noncall@example.com"
    page = client.get(reverse("notification_list", args=[team.pk])).content.decode()
    assert "ops@example.com, oncall@example.com" in page


def test_send_a_test_says_in_words_that_it_arrived(client, team, owner):
    client.force_login(owner)
    with http_receiver() as receiver:
        client.post(
            reverse("notification_create", args=[team.pk]), form_post(url=f"{receiver.url}/in")
        )
        channel = NotificationChannel.objects.get(team=team)
        response = client.post(reverse("notification_test", args=[channel.pk]), follow=True)

    page = response.content.decode()
    assert "Test sent to “ops hook”: The receiver answered 200." in page
    [request] = receiver.requests
    body = json.loads(request.body)
    assert body["test"] is True and body["event"] == "test"
    signed = "sha256=" + hmac.new(channel.secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Panel-Signature"] == signed
    assert "Working" in page


def test_a_failing_test_is_said_in_words_and_the_channel_shows_failing(
    client, team, owner, operator
):
    client.force_login(owner)
    with http_receiver() as receiver:
        gone = receiver.url
    client.post(reverse("notification_create", args=[team.pk]), form_post(url=f"{gone}/in"))
    channel = NotificationChannel.objects.get(team=team)

    client.force_login(operator)
    response = client.post(reverse("notification_test", args=[channel.pk]), follow=True)

    page = response.content.decode()
    assert "The test to “ops hook” was not delivered: Could not reach 127.0.0.1" in page
    assert "Failing" in page


def test_deleting_asks_first_then_removes_the_channel(client, team, owner):
    client.force_login(owner)
    client.post(
        reverse("notification_create", args=[team.pk]), form_post(url="http://127.0.0.1:9/h")
    )
    channel = NotificationChannel.objects.get(team=team)
    url = reverse("notification_delete", args=[channel.pk])

    asked = client.get(url)
    assert asked.status_code == 200 and NotificationChannel.objects.filter(pk=channel.pk).exists()
    client.post(url)

    assert not NotificationChannel.objects.filter(pk=channel.pk).exists()
    assert AuditEvent.objects.filter(action="notification_channel.delete").exists()


def test_a_viewer_sees_the_list_without_secrets_or_buttons(client, team, owner, viewer):
    client.force_login(owner)
    client.post(
        reverse("notification_create", args=[team.pk]),
        form_post(url="http://127.0.0.1:9/hooks/token-view-444444"),
    )
    channel = NotificationChannel.objects.get(team=team)
    client.force_login(viewer)
    page = client.get(reverse("notification_list", args=[team.pk])).content.decode()
    assert "ops hook" in page and "http://127.0.0.1:9/…" in page
    assert "token-view-444444" not in page and channel.secret not in page
    assert reverse("notification_test", args=[channel.pk]) not in page
    assert reverse("notification_edit", args=[channel.pk]) not in page
    assert client.post(reverse("notification_test", args=[channel.pk])).status_code == 403


def test_the_team_page_links_to_notifications(client, team, viewer):
    client.force_login(viewer)
    page = client.get(reverse("team_detail", args=[team.pk])).content.decode()
    assert reverse("notification_list", args=[team.pk]) in page
