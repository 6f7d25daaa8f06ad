"""The buttons of a server's page: check, prepare, accept a changed host key."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments import tasks
from deployments.choices import Role, RunStatus, ServerStatus
from deployments.clients.ssh import generate_keypair
from deployments.models import AuditEvent, PipelineRun, Server
from testkit.factories import add_member, make_server

KEY, _ = generate_keypair()


@pytest.fixture
def queued_checks(monkeypatch):
    queued = []
    monkeypatch.setattr(tasks.check_server_task, "delay_on_commit", queued.append)
    return queued


def test_an_operator_queues_a_check_and_the_trail_records_it(client, team, operator, queued_checks):
    server = make_server(team)
    client.force_login(operator)
    response = client.post(reverse("server_check", args=[server.pk]), follow=True)
    assert queued_checks == [server.pk]
    assert "Checking the server" in response.content.decode()
    assert AuditEvent.objects.filter(action="server.check", actor=operator).exists()


def test_after_check_now_the_facts_block_polls_until_the_server_was_checked(
    client, team, operator, queued_checks
):
    server = make_server(team)
    client.force_login(operator)
    response = client.post(reverse("server_check", args=[server.pk]))
    followed = response.url
    assert followed.startswith(reverse("server_detail", args=[server.pk]) + "?check_requested=")

    page = client.get(followed).content.decode()
    assert 'id="server-state"' in page and 'hx-trigger="every 2s"' in page
    assert "The panel is checking the server" in page
    partial = client.get(followed, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="server-state"')
    assert "Not checked yet." in partial

    # What the worker's check records, from a check that started after the button.
    Server.objects.filter(pk=server.pk).update(
        status=ServerStatus.REACHABLE,
        last_checked_at=timezone.now(),
        facts_checked_at=timezone.now(),
        facts={"os": {"pretty_name": "Debian GNU/Linux 12 (bookworm)"}, "gpus": []},
    )
    done = client.get(followed, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done
    assert "Debian GNU/Linux 12 (bookworm)" in done and "Reachable" in done


def test_a_check_that_never_finishes_stops_the_polling_and_says_so(client, team, operator):
    server = make_server(team)
    client.force_login(operator)
    long_ago = (timezone.now() - timedelta(minutes=10)).timestamp()
    url = f"{reverse('server_detail', args=[server.pk])}?check_requested={long_ago:.3f}"
    page = client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' not in page
    assert "The check has not finished after a few minutes" in page


def test_a_page_without_a_check_to_follow_does_not_poll(client, team, operator):
    server = make_server(team)
    client.force_login(operator)
    for query in ("", "?check_requested=not-a-time", "?check_requested=1e300"):
        page = client.get(reverse("server_detail", args=[server.pk]) + query).content.decode()
        assert 'id="server-state">' in page, query
        assert "Checking" not in page, query


def test_viewers_can_neither_check_nor_prepare(client, team, viewer, queued_checks):
    server = make_server(team, ssh_private_key=KEY)
    client.force_login(viewer)
    assert client.post(reverse("server_check", args=[server.pk])).status_code == 403
    assert client.post(reverse("server_prepare", args=[server.pk])).status_code == 403
    assert queued_checks == []
    assert not PipelineRun.objects.exists()
    page = client.get(reverse("server_detail", args=[server.pk])).content.decode()
    assert reverse("server_prepare", args=[server.pk]) not in page


def test_preparing_needs_a_key_first(client, team, operator):
    server = make_server(team)
    client.force_login(operator)
    response = client.post(reverse("server_prepare", args=[server.pk]), follow=True)
    assert "Set an SSH key" in response.content.decode()
    assert not PipelineRun.objects.exists()


def test_prepare_starts_a_run_whose_page_links_back_to_the_server(client, team, operator):
    server = make_server(team, ssh_private_key=KEY)
    client.force_login(operator)
    response = client.post(reverse("server_prepare", args=[server.pk]))
    run = PipelineRun.objects.get()
    assert (run.kind, run.params, run.status) == (
        "server.prepare",
        {"server_id": server.pk},
        RunStatus.QUEUED,
    )
    assert response.url == reverse("run_detail", args=[run.pk])
    page = client.get(response.url).content.decode()
    assert reverse("server_detail", args=[server.pk]) in page
    assert 'hx-trigger="every 2s"' in page
    detail = client.get(reverse("server_detail", args=[server.pk])).content.decode()
    assert reverse("run_detail", args=[run.pk]) in detail


def changed_key_server(team):
    return make_server(
        team,
        ssh_private_key=KEY,
        host_key="ssh-ed25519 AAAAold",
        host_key_fingerprint="SHA256:oldOLDold",
        host_key_pending="ssh-ed25519 AAAAnew",
        host_key_pending_fingerprint="SHA256:newNEWnew",
        last_error="The host key has changed.",
    )


def test_a_changed_host_key_is_shown_with_both_fingerprints(client, team, owner, operator):
    server = changed_key_server(team)
    accept_url = reverse("server_accept_host_key", args=[server.pk])
    client.force_login(owner)
    page = client.get(reverse("server_detail", args=[server.pk])).content.decode()
    assert "SHA256:oldOLDold" in page and "SHA256:newNEWnew" in page
    assert "intercepts the connection" in page
    assert accept_url in page
    client.force_login(operator)
    page = client.get(reverse("server_detail", args=[server.pk])).content.decode()
    assert "SHA256:newNEWnew" in page
    assert accept_url not in page


def test_only_an_owner_accepts_a_changed_host_key(client, team, owner, operator):
    server = changed_key_server(team)
    url = reverse("server_accept_host_key", args=[server.pk])
    client.force_login(operator)
    assert client.post(url).status_code == 403
    server.refresh_from_db()
    assert server.host_key == "ssh-ed25519 AAAAold"
    client.force_login(owner)
    response = client.post(url, follow=True)
    assert "The new host key is pinned" in response.content.decode()
    server.refresh_from_db()
    assert (server.host_key, server.host_key_fingerprint) == (
        "ssh-ed25519 AAAAnew",
        "SHA256:newNEWnew",
    )
    assert server.host_key_pending == "" and server.last_error == ""


def test_accepting_when_nothing_changed_says_so(client, team, owner):
    server = make_server(team, ssh_private_key=KEY, host_key="ssh-ed25519 AAAAold")
    client.force_login(owner)
    response = client.post(reverse("server_accept_host_key", args=[server.pk]), follow=True)
    assert "no new host key" in response.content.decode()


def test_an_owner_adds_a_server_with_a_generated_key_and_sees_its_public_half(client, team, owner):
    client.force_login(owner)
    response = client.post(
        reverse("server_create"),
        {
            "name": "gpu-1",
            "host": "203.0.113.5",
            "ssh_port": "22",
            "ssh_user": "ubuntu",
            "key_mode": "generate",
        },
        follow=True,
    )
    server = team.servers.get()
    html = response.content.decode()
    assert server.ssh_public_key.startswith("ssh-ed25519 ")
    assert server.ssh_public_key in html
    assert "~ubuntu/.ssh/authorized_keys" in html
    assert server.ssh_private_key.splitlines()[1] not in html


def test_password_mode_needs_a_password(client, team, owner):
    client.force_login(owner)
    response = client.post(
        reverse("server_create"),
        {
            "name": "gpu-1",
            "host": "203.0.113.5",
            "ssh_port": "22",
            "ssh_user": "root",
            "key_mode": "password",
        },
    )
    assert response.status_code == 200
    assert "ssh_password" in response.context["form"].errors
    assert not team.servers.exists()


def test_operators_are_offered_no_key_choices(client, team, operator):
    client.force_login(operator)
    form = client.get(reverse("server_create")).context["form"]
    assert not {"key_mode", "ssh_password", "ssh_private_key"} & set(form.fields)


def test_an_owner_of_another_team_cannot_accept_a_key_here(client, team, other_team):
    server = changed_key_server(team)
    outsider = add_member(other_team, role=Role.OWNER)
    client.force_login(outsider)
    assert client.post(reverse("server_accept_host_key", args=[server.pk])).status_code == 404
