"""A page checks the user's role many times: within one request the memberships are read once,
and a change to a membership, a team or an authenticator is seen by the very next check."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deployments import access
from deployments.choices import Role
from deployments.models import Membership
from testkit.factories import make_deployment, make_server, make_stack

pytestmark = pytest.mark.django_db


def membership_reads(captured) -> int:
    """The role checks' reads (a page's list of teams with their member counts aside)."""
    return sum(
        1
        for query in captured.captured_queries
        if 'FROM "deployments_membership"' in query["sql"]
        and '"deployments_membership"."user_id" =' in query["sql"]
        and "member_count" not in query["sql"]
    )


@pytest.mark.parametrize("name", ["dashboard", "server_list", "stack_list", "deployment_list"])
def test_a_page_reads_the_users_memberships_once(client, team, owner, name):
    server = make_server(team, name="gpu-1")
    stack = make_stack(server, name="chatbot")
    for _ in range(3):
        make_deployment(stack, user=owner)
    client.force_login(owner)

    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse(name))

    assert response.status_code == 200
    assert membership_reads(captured) == 1


def test_within_a_request_a_changed_role_is_seen_by_the_next_check(team, operator):
    with access.roles_read_once():
        assert access.has_role(operator, team, Role.OPERATOR)
        with CaptureQueriesContext(connection) as captured:
            assert access.has_role(operator, team, Role.OPERATOR)
        assert membership_reads(captured) == 0

        membership = Membership.objects.get(team=team, user=operator)
        membership.role = Role.VIEWER
        membership.save()

        assert not access.has_role(operator, team, Role.OPERATOR)


def test_a_removed_member_is_refused_at_once_within_a_request(team, operator):
    with access.roles_read_once():
        assert access.has_role(operator, team, Role.VIEWER)
        Membership.objects.filter(team=team, user=operator).get().delete()
        assert not access.has_role(operator, team, Role.VIEWER)


def test_outside_a_request_every_check_reads_the_memberships(team, operator):
    with CaptureQueriesContext(connection) as captured:
        access.has_role(operator, team, Role.OPERATOR)
        access.has_role(operator, team, Role.OPERATOR)
    assert membership_reads(captured) == 2
