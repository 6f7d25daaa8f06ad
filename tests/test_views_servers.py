from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.urls import reverse

from deployments.actions.servers import do_create_server, do_update_server
from deployments.choices import Role
from deployments.clients.ssh import generate_keypair
from deployments.models import AuditEvent, Server
from testkit.factories import add_member, make_server, make_stack, make_team

# A real key: pasted keys are read, and their public half stored.
KEY, _ = generate_keypair()
SECRET_LINE = KEY.splitlines()[1]


def server_data(**overrides):
    data = {
        "name": "gpu-1",
        "host": "203.0.113.5",
        "ssh_port": "22",
        "ssh_user": "root",
        "hourly_price": "1.25",
    }
    data.update(overrides)
    return data


def test_operator_creates_a_server_and_the_audit_trail_says_who_from_where(client, team, operator):
    client.force_login(operator)
    response = client.post(reverse("server_create"), server_data(), REMOTE_ADDR="198.51.100.7")
    server = Server.objects.get(name="gpu-1")
    assert response.status_code == 302
    assert response.url == reverse("server_detail", args=[server.pk])
    assert server.team == team
    assert server.created_by == operator
    assert server.hourly_price == Decimal("1.25")
    event = AuditEvent.objects.get(action="server.create")
    assert event.actor == operator
    assert event.actor_name == operator.username
    assert event.target_type == "server"
    assert event.target_id == str(server.pk)
    assert event.team == team
    assert event.ip_address == "198.51.100.7"
    assert "name" in event.details["fields"]


def test_create_redirects_to_a_detail_page_with_a_success_message(client, operator):
    client.force_login(operator)
    response = client.post(reverse("server_create"), server_data(), follow=True)
    assert response.status_code == 200
    assert "Server “gpu-1” added." in response.content.decode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ssh_port", "70000"),
        ("ssh_port", "0"),
        ("ssh_port", "twenty-two"),
        ("host", "a;rm -rf /"),
        ("host", "$(reboot)"),
        ("name", "my server"),
        ("name", "сервер"),
        ("name", "x" * 10_000),
        ("ssh_user", "root; id"),
        ("hourly_price", "-1"),
        ("hourly_price", "abc"),
    ],
)
def test_bad_input_shows_an_error_beside_the_field_and_creates_nothing(
    client, operator, field, value
):
    client.force_login(operator)
    response = client.post(reverse("server_create"), server_data(**{field: value}))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert 'aria-invalid="true"' in response.content.decode()
    assert Server.objects.count() == 0
    assert not AuditEvent.objects.filter(action="server.create").exists()


def test_a_missing_name_is_an_error_not_a_crash(client, operator):
    client.force_login(operator)
    response = client.post(reverse("server_create"), {})
    assert response.status_code == 200
    assert set(response.context["form"].errors) >= {"name", "host"}


def test_a_duplicate_name_in_the_team_is_an_error_beside_the_name(client, team, operator):
    make_server(team, name="gpu-1")
    client.force_login(operator)
    response = client.post(reverse("server_create"), server_data(name="gpu-1"))
    assert response.status_code == 200
    assert response.context["form"].errors["name"] == [
        "The team already has a server named “gpu-1”."
    ]
    assert Server.objects.filter(name="gpu-1").count() == 1


def test_the_same_name_in_another_team_is_fine(client, team, other_team, operator):
    make_server(other_team, name="gpu-1")
    client.force_login(operator)
    response = client.post(reverse("server_create"), server_data(name="gpu-1"))
    assert response.status_code == 302
    assert Server.objects.filter(name="gpu-1", team=team).exists()


def test_renaming_onto_another_servers_name_is_an_error_beside_the_name(client, team, operator):
    make_server(team, name="gpu-1")
    server = make_server(team, name="gpu-2")
    client.force_login(operator)
    response = client.post(reverse("server_edit", args=[server.pk]), server_data(name="gpu-1"))
    assert response.status_code == 200
    assert "name" in response.context["form"].errors
    server.refresh_from_db()
    assert server.name == "gpu-2"


def test_operator_edits_a_server_and_the_audit_names_the_changed_fields(client, team, operator):
    server = make_server(team, name="gpu-1", host="203.0.113.5")
    client.force_login(operator)
    response = client.post(
        reverse("server_edit", args=[server.pk]),
        server_data(host="gpu1.example.com", ssh_port="2222"),
    )
    assert response.status_code == 302
    server.refresh_from_db()
    assert server.host == "gpu1.example.com"
    assert server.ssh_port == 2222
    event = AuditEvent.objects.get(action="server.update")
    assert event.actor == operator
    assert sorted(event.details["changed"]) == ["host", "hourly_price", "ssh_port"]


def test_saving_without_changes_records_nothing(client, team, operator):
    server = make_server(team, name="gpu-1", host="203.0.113.5", hourly_price=Decimal("1.25"))
    client.force_login(operator)
    response = client.post(reverse("server_edit", args=[server.pk]), server_data(), follow=True)
    assert "Nothing changed." in response.content.decode()
    assert not AuditEvent.objects.filter(action="server.update").exists()


def test_the_edit_form_starts_with_the_stored_values(client, team, operator):
    server = make_server(team, name="gpu-7", host="gpu7.example.com", ssh_port=2200)
    client.force_login(operator)
    form = client.get(reverse("server_edit", args=[server.pk])).context["form"]
    assert form["name"].value() == "gpu-7"
    assert form["host"].value() == "gpu7.example.com"
    assert form["ssh_port"].value() == 2200


def test_owner_sets_a_key_that_is_stored_encrypted_and_never_shown(client, team, owner):
    client.force_login(owner)
    client.post(reverse("server_create"), server_data(ssh_private_key=KEY))
    server = Server.objects.get(name="gpu-1")
    assert server.ssh_private_key == KEY
    with connection.cursor() as cursor:
        cursor.execute("SELECT ssh_private_key FROM deployments_server WHERE id = %s", [server.pk])
        (stored,) = cursor.fetchone()
    assert stored
    assert SECRET_LINE not in stored
    assert "PRIVATE KEY" not in stored
    for url in (
        reverse("server_detail", args=[server.pk]),
        reverse("server_edit", args=[server.pk]),
        reverse("server_list"),
        reverse("dashboard"),
        reverse("audit_list"),
    ):
        html = client.get(url).content.decode()
        assert SECRET_LINE not in html
        assert "PRIVATE KEY-----" not in html
    detail = client.get(reverse("server_detail", args=[server.pk])).content.decode()
    assert "A key is stored (private key pasted in)." in detail
    event = AuditEvent.objects.get(action="server.create")
    assert "ssh_private_key" in event.details["fields"]
    assert SECRET_LINE not in str(event.details)


def test_a_posted_key_is_not_echoed_back_when_another_field_is_wrong(client, owner):
    client.force_login(owner)
    response = client.post(
        reverse("server_create"), server_data(ssh_port="70000", ssh_private_key=KEY)
    )
    assert response.status_code == 200
    assert SECRET_LINE not in response.content.decode()


def test_an_empty_key_field_on_edit_keeps_the_stored_key(client, team, owner):
    server = make_server(team, ssh_private_key=KEY)
    client.force_login(owner)
    response = client.post(
        reverse("server_edit", args=[server.pk]),
        server_data(name=server.name, host="198.51.100.20", ssh_private_key=""),
    )
    assert response.status_code == 302
    server.refresh_from_db()
    assert server.ssh_private_key == KEY
    assert server.host == "198.51.100.20"


def test_owner_replaces_the_key_and_the_audit_names_the_field_not_the_value(client, team, owner):
    server = make_server(team, name="gpu-1", host="203.0.113.5", ssh_private_key="old")
    client.force_login(owner)
    client.post(reverse("server_edit", args=[server.pk]), server_data(ssh_private_key=KEY))
    server.refresh_from_db()
    assert server.ssh_private_key == KEY
    event = AuditEvent.objects.get(action="server.update")
    assert "ssh_private_key" in event.details["changed"]
    assert SECRET_LINE not in str(event.details)


def test_something_that_is_not_a_private_key_is_refused(client, owner):
    client.force_login(owner)
    response = client.post(
        reverse("server_create"), server_data(ssh_private_key="ssh-ed25519 AAAA... me@laptop")
    )
    assert response.status_code == 200
    assert "ssh_private_key" in response.context["form"].errors
    assert Server.objects.count() == 0


def test_operators_get_no_key_field_and_a_posted_key_is_ignored(client, team, operator):
    server = make_server(team, name="gpu-1", host="203.0.113.5")
    client.force_login(operator)
    page = client.get(reverse("server_edit", args=[server.pk]))
    assert "ssh_private_key" not in page.context["form"].fields
    client.post(reverse("server_edit", args=[server.pk]), server_data(ssh_private_key=KEY))
    server.refresh_from_db()
    assert server.ssh_private_key == ""


def test_only_owners_may_set_a_key_through_the_action(team, operator):
    with pytest.raises(PermissionDenied):
        do_create_server(
            team=team,
            data={"name": "gpu-9", "host": "203.0.113.9", "ssh_private_key": KEY},
            user=operator,
        )
    server = make_server(team)
    with pytest.raises(PermissionDenied):
        do_update_server(server, data={"ssh_private_key": KEY}, user=operator)
    server.refresh_from_db()
    assert server.ssh_private_key == ""
    assert not Server.objects.filter(name="gpu-9").exists()


def test_the_key_field_is_offered_where_the_user_owns_the_chosen_team(client, team, operator):
    owned = make_team("Gamma")
    add_member(owned, operator, role=Role.OWNER)
    client.force_login(operator)
    refused = client.post(reverse("server_create"), server_data(team=team.pk, ssh_private_key=KEY))
    assert refused.status_code == 200
    assert "ssh_private_key" in refused.context["form"].errors
    accepted = client.post(
        reverse("server_create"), server_data(team=owned.pk, ssh_private_key=KEY)
    )
    assert accepted.status_code == 302
    assert Server.objects.get(team=owned).has_private_key


def test_a_team_select_appears_only_for_operators_of_several_teams(client, team, operator):
    client.force_login(operator)
    assert "team" not in client.get(reverse("server_create")).context["form"].fields
    add_member(make_team("Gamma"), operator, role=Role.OPERATOR)
    add_member(make_team("Delta"), operator, role=Role.VIEWER)
    form = client.get(reverse("server_create")).context["form"]
    assert "team" in form.fields
    assert sorted(t.name for t in form.fields["team"].queryset) == ["Alpha", "Gamma"]


def test_creating_in_a_team_where_one_is_only_a_viewer_is_refused_by_the_form(
    client, team, operator
):
    add_member(make_team("Gamma"), operator, role=Role.OPERATOR)
    viewing = make_team("Delta")
    add_member(viewing, operator, role=Role.VIEWER)
    client.force_login(operator)
    response = client.post(reverse("server_create"), server_data(team=viewing.pk))
    assert response.status_code == 200
    assert "team" in response.context["form"].errors
    assert not Server.objects.exists()


def test_viewer_cannot_create_a_server(client, team, viewer):
    client.force_login(viewer)
    assert client.get(reverse("server_create")).status_code == 403
    response = client.post(reverse("server_create"), server_data())
    assert response.status_code == 403
    assert "operator role" in response.content.decode()
    assert not Server.objects.exists()


def test_viewer_cannot_edit_a_server_and_it_stays_unchanged(client, team, viewer):
    server = make_server(team, name="gpu-1", host="203.0.113.5")
    client.force_login(viewer)
    assert client.get(reverse("server_edit", args=[server.pk])).status_code == 403
    response = client.post(reverse("server_edit", args=[server.pk]), server_data(name="renamed"))
    assert response.status_code == 403
    server.refresh_from_db()
    assert server.name == "gpu-1"
    assert not AuditEvent.objects.filter(action="server.update").exists()


def test_viewers_see_no_add_or_edit_buttons(client, team, viewer):
    server = make_server(team)
    client.force_login(viewer)
    assert reverse("server_create") not in client.get(reverse("server_list")).content.decode()
    detail = client.get(reverse("server_detail", args=[server.pk])).content.decode()
    assert reverse("server_edit", args=[server.pk]) not in detail


def test_server_list_shows_name_host_status_team_and_stack_count(client, team, viewer):
    server = make_server(team, name="gpu-a", host="gpu-a.example.com")
    make_stack(server)
    make_stack(server)
    client.force_login(viewer)
    response = client.get(reverse("server_list"))
    row = response.content.decode()
    assert "gpu-a" in row
    assert "gpu-a.example.com" in row
    assert "Not checked yet" in row
    assert "Alpha" in row
    assert [s.stack_count for s in response.context["servers"]] == [2]


def test_server_detail_shows_facts_stacks_and_last_error_escaped(client, team, viewer):
    server = make_server(
        team,
        facts={
            "os": {"pretty_name": "Ubuntu 22.04"},
            "gpus": [{"index": 0, "name": "NVIDIA H100", "memory_total_mib": 81559}],
        },
        last_error="ssh: connect <b>refused</b>",
    )
    make_stack(server, name="prod")
    client.force_login(viewer)
    html = client.get(reverse("server_detail", args=[server.pk])).content.decode()
    assert "Ubuntu 22.04" in html
    assert "NVIDIA H100" in html
    assert "prod" in html
    assert "ssh: connect &lt;b&gt;refused&lt;/b&gt;" in html
    assert "No key." in html
