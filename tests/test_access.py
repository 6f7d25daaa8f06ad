"""Who may reach which page: anonymous users log in first, other teams' objects are 404."""

import pytest
from django.urls import reverse

from deployments.choices import Role
from deployments.models import Membership, Server
from testkit.factories import add_member, make_deployment, make_server, make_stack, make_user

PAGES = [
    "dashboard",
    "server_list",
    "server_create",
    "stack_list",
    "deployment_list",
    "team_list",
    "audit_list",
]


@pytest.fixture
def objects(team):
    """One of each object that has its own pages, in `team`."""
    server = make_server(team)
    stack = make_stack(server)
    deployment = make_deployment(stack)
    owner = add_member(team, role=Role.OWNER)
    membership = Membership.objects.get(user=owner, team=team)
    return {"server": server, "stack": stack, "deployment": deployment, "membership": membership}


def object_urls(objects) -> list[tuple[str, str]]:
    """(method, url) of every page and action about one object."""
    server, stack = objects["server"], objects["stack"]
    deployment, membership = objects["deployment"], objects["membership"]
    team_id = membership.team_id
    return [
        ("get", reverse("server_detail", args=[server.pk])),
        ("get", reverse("server_edit", args=[server.pk])),
        ("post", reverse("server_edit", args=[server.pk])),
        ("post", reverse("server_check", args=[server.pk])),
        ("post", reverse("server_prepare", args=[server.pk])),
        ("post", reverse("server_accept_host_key", args=[server.pk])),
        ("get", reverse("stack_detail", args=[stack.pk])),
        ("get", reverse("deployment_detail", args=[deployment.pk])),
        ("get", reverse("run_steps", args=[deployment.run_id])),
        ("post", reverse("run_retry", args=[deployment.run_id])),
        ("post", reverse("run_cancel", args=[deployment.run_id])),
        ("get", reverse("team_detail", args=[team_id])),
        ("post", reverse("team_invitation_create", args=[team_id])),
        ("post", reverse("team_owner_two_factor", args=[team_id])),
        ("post", reverse("team_member_role", args=[team_id, membership.pk])),
        ("post", reverse("team_member_remove", args=[team_id, membership.pk])),
    ]


@pytest.mark.parametrize("name", PAGES)
def test_every_page_sends_an_anonymous_user_to_log_in(client, db, name):
    url = reverse(name)
    response = client.get(url)
    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={url}"


def test_every_object_url_sends_an_anonymous_user_to_log_in(client, objects):
    for method, url in object_urls(objects):
        response = getattr(client, method)(url)
        assert response.status_code == 302, (method, url)
        assert response.url.startswith(reverse("login")), (method, url)


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_for_an_operator(client, objects, operator, name):
    client.force_login(operator)
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert b"<title>" in response.content


def test_every_object_page_renders_for_a_viewer(client, objects, viewer):
    client.force_login(viewer)
    for method, url in object_urls(objects):
        if method == "get" and not url.endswith("/edit/"):
            assert client.get(url).status_code == 200, url


def test_an_outsider_gets_404_on_every_object_url_and_nothing_changes(client, objects, other_team):
    outsider = add_member(other_team, role=Role.OWNER)
    client.force_login(outsider)
    data = {
        "name": "taken-over",
        "host": "198.51.100.1",
        "ssh_port": "22",
        "ssh_user": "root",
        "username": outsider.username,
        "role": "owner",
    }
    for method, url in object_urls(objects):
        response = getattr(client, method)(url, data) if method == "post" else client.get(url)
        assert response.status_code == 404, (method, url)
        assert "belongs to a team you are not in" in response.content.decode()
    server = Server.objects.get(pk=objects["server"].pk)
    assert server.name != "taken-over"
    membership = Membership.objects.get(pk=objects["membership"].pk)
    assert membership.role == Role.OWNER
    assert not Membership.objects.filter(user=outsider, team=objects["server"].team).exists()


def test_lists_show_only_the_users_teams(client, team, other_team, operator):
    mine = make_server(team, name="mine")
    theirs = make_server(other_team, name="theirs")
    make_deployment(make_stack(mine, name="my-stack"))
    make_deployment(make_stack(theirs, name="their-stack"))
    client.force_login(operator)
    for name in ("server_list", "stack_list", "deployment_list", "dashboard"):
        html = client.get(reverse(name)).content.decode()
        assert "mine" in html or "my-stack" in html, name
        assert "theirs" not in html and "their-stack" not in html, name


def test_a_user_in_no_team_sees_empty_pages_not_errors(client, objects):
    client.force_login(make_user())
    for name in PAGES:
        if name == "server_create":
            assert client.get(reverse(name)).status_code == 403
        else:
            assert client.get(reverse(name)).status_code == 200, name


def test_mutations_refuse_get(client, objects, owner):
    client.force_login(owner)
    for method, url in object_urls(objects):
        # Removing a member asks first: its GET is the question, its POST the removal.
        if method == "post" and "edit" not in url and not url.endswith("/remove/"):
            assert client.get(url).status_code == 405, url


def test_a_page_that_does_not_exist_is_a_readable_404(client, operator):
    client.force_login(operator)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()
