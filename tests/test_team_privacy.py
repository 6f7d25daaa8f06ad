"""Adding a member must not tell an owner which usernames exist on the panel.

A name nobody has and a disabled account get one and the same error; only "already a member"
differs, which the team's page shows anyway. (An existing account is still added at once: asking
for its consent comes with invitations.)
"""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from deployments.models import AuditEvent
from testkit.factories import add_member


def add_error(client, team, username: str) -> str:
    """The username error that adding `username` to `team` shows, with the name taken out."""
    response = client.post(
        reverse("team_member_add", args=[team.pk]), {"username": username, "role": "viewer"}
    )
    assert response.status_code == 200
    [error] = response.context["add_form"].errors["username"]
    return error.replace(username, "NAME")


@pytest.fixture
def disabled(db):
    return get_user_model().objects.create(username="sleeper", is_active=False)


def test_an_unknown_name_and_a_disabled_account_get_the_same_error(client, team, owner, disabled):
    client.force_login(owner)

    unknown = add_error(client, team, "nobody-at-all")
    existing = add_error(client, team, disabled.username)

    assert unknown == existing
    assert team.memberships.count() == 1
    assert not AuditEvent.objects.filter(action="team.member_add").exists()


@pytest.mark.parametrize("username", ["nobody-at-all", "sleeper"])
def test_the_error_neither_denies_nor_confirms_an_account(client, team, owner, disabled, username):
    client.force_login(owner)

    error = add_error(client, team, username).lower()

    for telling in ("no user", "not exist", "no such", "unknown", "disabled", "inactive"):
        assert telling not in error


def test_a_disabled_member_is_not_told_apart_from_an_unknown_name(client, team, owner, disabled):
    # On the team's page already: being refused like a stranger reveals nothing either way.
    add_member(team, disabled)
    client.force_login(owner)

    assert add_error(client, team, disabled.username) == add_error(client, team, "nobody-at-all")


def test_a_member_of_the_team_is_still_told_they_are_one(client, team, owner, operator):
    client.force_login(owner)
    page = client.get(reverse("team_detail", args=[team.pk])).content.decode()
    assert operator.username in page  # what the error below says, the page shows

    assert "already a member" in add_error(client, team, operator.username)
