"""Failed logins and lockouts on the audit page: a user sees those of their own account, a
superuser those of every name tried, and the action filter picks them out."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from testkit.factories import make_user

ATTACKER = "198.51.100.66"

pytestmark = pytest.mark.django_db


def fail(client, username, times):
    for n in range(times):
        client.post(
            reverse("login"), {"login": username, "password": f"wrong-{n}"}, REMOTE_ADDR=ATTACKER
        )


def actions_listed(response) -> list[str]:
    return [event.action for event in response.context["page"].object_list]


def test_a_user_sees_the_failed_logins_and_the_lockout_of_their_account(client):
    alice = make_user("alice")
    fail(client, "alice", 5)
    client.force_login(alice)
    response = client.get(reverse("audit_list"))
    actions = actions_listed(response)
    assert actions.count("login_failed") == 5
    assert actions.count("login_locked_out") == 1
    html = response.content.decode()
    assert ATTACKER in html
    assert "username: alice" in html
    assert "locked: account, address" in html
    assert "anonymous" in html


def test_failed_logins_of_other_accounts_stay_hidden(client):
    alice = make_user("alice")
    make_user("bob")
    fail(client, "bob", 5)
    fail(client, "nobody", 1)
    client.force_login(alice)
    actions = actions_listed(client.get(reverse("audit_list")))
    assert "login_failed" not in actions
    assert "login_locked_out" not in actions


def test_a_superuser_sees_failed_logins_of_every_name_tried(client):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "Right-pw-1")
    make_user("bob")
    fail(client, "bob", 1)
    fail(client, "nobody", 1)
    client.force_login(root)
    response = client.get(reverse("audit_list"), {"action": "login_failed"})
    names = {event.details["username"] for event in response.context["page"].object_list}
    assert names == {"bob", "nobody"}


def test_the_filter_offers_and_picks_failed_logins_and_lockouts(client):
    alice = make_user("alice")
    fail(client, "alice", 6)
    client.force_login(alice)
    choices = dict(client.get(reverse("audit_list")).context["form"].fields["action"].choices)
    assert "login_failed" in choices
    assert "login_locked_out" in choices
    locked = client.get(reverse("audit_list"), {"action": "login_locked_out"})
    assert actions_listed(locked) == ["login_locked_out"]
    failed = client.get(reverse("audit_list"), {"action": "login_failed"})
    assert actions_listed(failed) == ["login_failed"] * 6
