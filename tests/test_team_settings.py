"""Teams started from the panel, and a team's rule that its owners use two-factor
authentication."""

import pytest
from allauth.mfa.models import Authenticator
from django.urls import reverse

from deployments import access
from deployments.actions import ActionError
from deployments.actions.invitations import do_create_invitation
from deployments.actions.teams import do_set_owner_two_factor
from deployments.choices import Role
from deployments.models import AuditEvent, Invitation, Membership, Team
from deployments.templatetags.panel import account_url
from testkit.factories import add_member, make_server, make_user

TWO_FACTOR_SENTENCE = "This team asks its owners for two-factor authentication"


def with_two_factor(user):
    Authenticator.objects.create(
        user=user, type=Authenticator.Type.TOTP, data={"secret": "not-a-real-secret"}
    )
    return user


# Teams started from the panel.


def test_a_user_starts_a_team_and_owns_it(client, team, viewer):
    client.force_login(viewer)
    page = client.get(reverse("team_list")).content.decode()
    assert reverse("team_create") in page and "New team" in page

    response = client.post(reverse("team_create"), {"name": "  Research   lab "})

    new = Team.objects.get(name="Research lab")
    assert response.status_code == 302 and response.url == reverse("team_detail", args=[new.pk])
    assert Membership.objects.get(team=new, user=viewer).role == Role.OWNER
    assert new.memberships.count() == 1
    event = AuditEvent.objects.get(action="team.create")
    assert event.actor == viewer and event.team == new
    # The new team changes nothing in the teams they were in.
    assert access.role_in(viewer, team) == Role.VIEWER


@pytest.mark.parametrize("name", ["alpha", "ALPHA", "", "   ", "bad\x00name", "x" * 101])
def test_a_taken_or_bad_team_name_is_refused_beside_the_field(client, team, viewer, name):
    client.force_login(viewer)

    response = client.post(reverse("team_create"), {"name": name})

    assert response.status_code == 200
    assert "name" in response.context["team_form"].errors
    assert Team.objects.count() == 1
    assert not AuditEvent.objects.filter(action="team.create").exists()


def test_a_user_in_no_team_can_start_one(client, db):
    loner = make_user("loner")
    client.force_login(loner)

    client.post(reverse("team_create"), {"name": "Solo"})

    assert access.role_in(loner, Team.objects.get(name="Solo")) == Role.OWNER


# Two-factor authentication of owners.


def test_an_owner_without_two_factor_cannot_turn_the_rule_on(client, team, owner):
    client.force_login(owner)

    response = client.post(
        reverse("team_owner_two_factor", args=[team.pk]),
        {"require_owner_two_factor": "on"},
        follow=True,
    )

    team.refresh_from_db()
    assert not team.require_owner_two_factor
    assert "Turn on two-factor authentication for your own account first" in (
        response.content.decode()
    )


def test_an_owner_with_two_factor_turns_the_rule_on_and_off(client, team, owner):
    client.force_login(with_two_factor(owner))
    url = reverse("team_owner_two_factor", args=[team.pk])

    client.post(url, {"require_owner_two_factor": "on"})
    team.refresh_from_db()
    assert team.require_owner_two_factor

    client.post(url, {})
    team.refresh_from_db()
    assert not team.require_owner_two_factor
    assert [e.details for e in AuditEvent.objects.filter(action="team.owner_two_factor")] == [
        {"required": False},
        {"required": True},
    ]


@pytest.fixture
def strict_team(team, owner):
    """Alpha requires two-factor of its owners; `owner` has it."""
    do_set_owner_two_factor(team, required=True, user=with_two_factor(owner))
    team.refresh_from_db()
    return team


def test_an_owner_without_two_factor_gets_a_sentence_and_a_link_not_the_owner_actions(
    client, strict_team, owner
):
    team = strict_team
    lax = add_member(team, make_user("lax-owner"), role=Role.OWNER)
    client.force_login(lax)
    target = Membership.objects.get(team=team, user=owner)

    responses = [
        client.post(reverse("team_invitation_create", args=[team.pk]), {"role": "owner"}),
        client.post(reverse("team_member_role", args=[team.pk, target.pk]), {"role": "viewer"}),
        client.post(reverse("team_member_remove", args=[team.pk, target.pk])),
        client.post(reverse("team_owner_two_factor", args=[team.pk]), {}),
    ]

    for response in responses:
        assert response.status_code == 403
        html = response.content.decode()
        assert TWO_FACTOR_SENTENCE in html
        assert account_url() and f'href="{account_url()}"' in html
        assert "Traceback" not in html
    team.refresh_from_db()
    assert team.require_owner_two_factor
    assert not Invitation.objects.exists()
    assert Membership.objects.get(pk=target.pk).role == Role.OWNER


def test_an_owner_without_two_factor_keeps_the_operator_abilities(client, strict_team):
    team = strict_team
    lax = add_member(team, make_user("lax-owner"), role=Role.OWNER)
    server = make_server(team)
    client.force_login(lax)

    assert access.has_role(lax, team, Role.OPERATOR)
    assert not access.has_role(lax, team, Role.OWNER)
    assert client.get(reverse("server_edit", args=[server.pk])).status_code == 200
    assert client.get(reverse("stack_create")).status_code == 200
    page = client.get(reverse("team_detail", args=[team.pk])).content.decode()
    assert "until you turn it on, you act as an operator" in page
    assert reverse("team_invitation_create", args=[team.pk]) not in page
    # The server's owner-only action answers with the same sentence.
    response = client.post(reverse("server_accept_host_key", args=[server.pk]))
    assert response.status_code == 403 and TWO_FACTOR_SENTENCE in response.content.decode()


def test_an_owner_who_turns_two_factor_on_acts_as_owner_again(client, strict_team):
    team = strict_team
    lax = add_member(team, make_user("lax-owner"), role=Role.OWNER)
    assert not access.has_role(lax, team, Role.OWNER)

    with_two_factor(lax)

    assert access.has_role(lax, team, Role.OWNER)
    invitation, _token = do_create_invitation(team, role=Role.VIEWER, user=lax)
    assert invitation.created_by == lax


def test_the_rule_binds_owners_of_that_team_only(strict_team, other_team):
    lax = add_member(strict_team, make_user("lax-owner"), role=Role.OWNER)
    add_member(other_team, lax, role=Role.OWNER)

    assert not access.has_role(lax, strict_team, Role.OWNER)
    assert access.has_role(lax, other_team, Role.OWNER)
    with pytest.raises(ActionError):
        do_set_owner_two_factor(other_team, required=True, user=lax)
