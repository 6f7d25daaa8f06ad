import pytest
from django.urls import reverse

from deployments.actions import ActionError
from deployments.actions.teams import do_change_role, do_remove_member
from deployments.choices import Role
from deployments.models import AuditEvent, Invitation, Membership
from testkit.factories import add_member, make_team


def membership(user, team) -> Membership:
    return Membership.objects.get(user=user, team=team)


def test_team_list_shows_the_users_teams_and_roles(client, team, operator):
    add_member(make_team("Gamma"), operator, role=Role.VIEWER)
    make_team("Hidden")
    client.force_login(operator)
    html = client.get(reverse("team_list")).content.decode()
    assert "Alpha" in html and "Gamma" in html
    assert "Hidden" not in html
    assert "Operator" in html and "Viewer" in html


def test_team_page_lists_members_and_roles_read_only_for_non_owners(client, team, owner, operator):
    client.force_login(operator)
    response = client.get(reverse("team_detail", args=[team.pk]))
    html = response.content.decode()
    assert owner.username in html and operator.username in html
    assert reverse("team_invitation_create", args=[team.pk]) not in html
    assert reverse("team_owner_two_factor", args=[team.pk]) not in html
    for member in team.memberships.all():
        assert reverse("team_member_role", args=[team.pk, member.pk]) not in html
    assert "invitation_form" not in response.context


def test_owner_sees_the_member_and_invitation_forms(client, team, owner, operator):
    client.force_login(owner)
    html = client.get(reverse("team_detail", args=[team.pk])).content.decode()
    assert reverse("team_invitation_create", args=[team.pk]) in html
    member = membership(operator, team)
    assert reverse("team_member_role", args=[team.pk, member.pk]) in html
    assert reverse("team_member_remove", args=[team.pk, member.pk]) in html


def test_owner_changes_a_role(client, team, owner, operator):
    client.force_login(owner)
    member = membership(operator, team)
    response = client.post(
        reverse("team_member_role", args=[team.pk, member.pk]), {"role": "viewer"}, follow=True
    )
    assert f"{operator.username} is now Viewer." in response.content.decode()
    member.refresh_from_db()
    assert member.role == Role.VIEWER
    event = AuditEvent.objects.get(action="team.member_role")
    assert event.details == {"member": operator.username, "from": "operator", "to": "viewer"}


def test_a_bad_role_value_is_refused_with_a_message(client, team, owner, operator):
    client.force_login(owner)
    member = membership(operator, team)
    response = client.post(
        reverse("team_member_role", args=[team.pk, member.pk]), {"role": "root"}, follow=True
    )
    assert response.status_code == 200
    assert "Choose one of the roles" in response.content.decode()
    member.refresh_from_db()
    assert member.role == Role.OPERATOR


def test_owner_removes_a_member(client, team, owner, operator):
    client.force_login(owner)
    member = membership(operator, team)
    response = client.post(reverse("team_member_remove", args=[team.pk, member.pk]))
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=member.pk).exists()
    event = AuditEvent.objects.get(action="team.member_remove")
    assert event.details == {"member": operator.username, "role": "operator"}
    assert event.team == team


def test_the_last_owner_cannot_be_demoted(client, team, owner):
    client.force_login(owner)
    member = membership(owner, team)
    response = client.post(
        reverse("team_member_role", args=[team.pk, member.pk]), {"role": "operator"}, follow=True
    )
    assert "last owner" in response.content.decode()
    member.refresh_from_db()
    assert member.role == Role.OWNER
    assert not AuditEvent.objects.filter(action="team.member_role").exists()


def test_the_last_owner_cannot_be_removed(client, team, owner):
    client.force_login(owner)
    member = membership(owner, team)
    response = client.post(reverse("team_member_remove", args=[team.pk, member.pk]), follow=True)
    assert "last owner" in response.content.decode()
    assert Membership.objects.filter(pk=member.pk).exists()


def test_an_owner_can_step_down_when_another_owner_remains(client, team, owner):
    second = add_member(team, role=Role.OWNER)
    client.force_login(owner)
    response = client.post(
        reverse("team_member_remove", args=[team.pk, membership(owner, team).pk])
    )
    assert response.url == reverse("team_list")
    assert list(team.memberships.values_list("user", flat=True)) == [second.pk]


def test_the_actions_protect_the_last_owner_too(team, owner):
    with pytest.raises(ActionError, match="last owner"):
        do_change_role(membership(owner, team), role=Role.VIEWER, user=owner)
    with pytest.raises(ActionError, match="last owner"):
        do_remove_member(membership(owner, team), user=owner)


@pytest.mark.parametrize("role_fixture", ["operator", "viewer"])
def test_non_owners_cannot_change_members(client, request, team, owner, role_fixture):
    user = request.getfixturevalue(role_fixture)
    client.force_login(user)
    target = membership(owner, team)
    responses = [
        client.post(reverse("team_invitation_create", args=[team.pk]), {"role": "owner"}),
        client.post(reverse("team_member_role", args=[team.pk, target.pk]), {"role": "viewer"}),
        client.post(reverse("team_member_remove", args=[team.pk, target.pk])),
        client.post(
            reverse("team_owner_two_factor", args=[team.pk]), {"require_owner_two_factor": "on"}
        ),
    ]
    assert [r.status_code for r in responses] == [403, 403, 403, 403]
    assert "owner role" in responses[0].content.decode()
    target.refresh_from_db()
    assert target.role == Role.OWNER
    assert team.memberships.count() == 2
    assert not Invitation.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="team.").exists()
    assert not AuditEvent.objects.filter(action__startswith="invitation.").exists()


def test_a_membership_of_another_team_cannot_be_reached_through_this_team(
    client, team, other_team, owner
):
    stranger = add_member(other_team, role=Role.OWNER)
    client.force_login(owner)
    foreign = membership(stranger, other_team)
    response = client.post(reverse("team_member_remove", args=[team.pk, foreign.pk]))
    assert response.status_code == 404
    assert Membership.objects.filter(pk=foreign.pk).exists()
