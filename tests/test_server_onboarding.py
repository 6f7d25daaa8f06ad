"""Onboarding servers for real: the SSH target container, the panel's SSH client, its facts."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from deployments.actions import ActionError
from deployments.actions.servers import do_accept_host_key, do_create_server
from deployments.choices import KeySource, Role, ServerStatus
from deployments.models import AuditEvent, Server
from deployments.servers.check import check_server
from testkit.factories import add_member
from testkit.target import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def server_data(target, **fields) -> dict:
    data = {"name": "gpu-1", "host": target.host, "ssh_port": target.port, "ssh_user": "root"}
    # The target listens on this machine's loopback: an owner allows it.
    data["allow_local_address"] = True
    return {**data, **fields}


def test_a_pasted_key_reaches_the_server_pins_its_host_key_and_reads_its_facts(
    ssh_target, team, owner
):
    server = do_create_server(
        team=team,
        data=server_data(
            ssh_target, key_mode="paste", ssh_private_key=ssh_target.key.private_openssh
        ),
        user=owner,
    )
    assert server.key_source == KeySource.PASTED
    assert server.ssh_public_key.split()[:2] == ssh_target.key.public_openssh.split()[:2]

    check_server(server)

    server.refresh_from_db()
    assert server.status == ServerStatus.REACHABLE, server.last_error
    assert server.last_error == ""
    offered = {line.split()[0]: line for line in ssh_target.host_keys().values()}
    assert server.host_key in offered.values()
    assert server.host_key_fingerprint.startswith("SHA256:")
    facts = server.facts
    assert facts["os"]["id"] == "debian" and facts["os"]["version_id"] == "12"
    assert facts["cpu"]["cores"] >= 1
    assert facts["memory"]["total_bytes"] > 0
    assert facts["disk"]["free_bytes"] > 0
    # The target's docker CLI talks to this machine's engine through the mounted socket.
    assert facts["docker"]["server_version"]
    assert facts["compose"]["variant"] == "v1"
    assert facts["compose"]["version"].startswith("1.29")
    assert facts["gpus"] == []
    assert facts["docker_gpu"]["ok"] is False
    assert "GPU" in facts["docker_gpu"]["reason"]


def test_a_generated_key_works_once_its_public_half_is_authorized(ssh_target, team, owner):
    server = do_create_server(
        team=team, data=server_data(ssh_target, key_mode="generate"), user=owner
    )
    assert server.key_source == KeySource.GENERATED
    assert server.ssh_public_key.startswith("ssh-ed25519 ")

    check_server(server)
    server.refresh_from_db()
    assert server.status == ServerStatus.UNREACHABLE
    assert "refused" in server.last_error.lower() or "key" in server.last_error.lower()

    ssh_target.authorize_key("root", server.ssh_public_key)
    check_server(server)
    server.refresh_from_db()
    assert server.status == ServerStatus.REACHABLE, server.last_error


def test_a_one_time_password_installs_the_panels_key_and_is_kept_nowhere(ssh_target, team, owner):
    password = ssh_target.passwords["deploy"]
    server = do_create_server(
        team=team,
        data=server_data(ssh_target, ssh_user="deploy", key_mode="password", ssh_password=password),
        user=owner,
    )
    assert server.key_source == KeySource.INSTALLED_WITH_PASSWORD
    assert server.host_key_fingerprint.startswith("SHA256:")
    installed = ssh_target.exec(["cat", "/home/deploy/.ssh/authorized_keys"]).stdout.decode()
    assert server.ssh_public_key.split()[1] in installed

    stored = [str(value) for value in Server.objects.values().get(pk=server.pk).values()]
    stored += [str(event.details) for event in AuditEvent.objects.all()]
    assert not any(password in value for value in stored)

    check_server(server)
    server.refresh_from_db()
    assert server.status == ServerStatus.REACHABLE, server.last_error
    assert server.facts["docker"]["server_version"]


def test_a_wrong_password_creates_nothing_and_says_why(ssh_target, team, owner):
    with pytest.raises(ValidationError) as raised:
        do_create_server(
            team=team,
            data=server_data(
                ssh_target, ssh_user="deploy", key_mode="password", ssh_password="nope"
            ),
            user=owner,
        )
    assert "password" in " ".join(raised.value.messages).lower()
    assert not Server.objects.exists()


def test_a_changed_host_key_is_refused_until_an_owner_accepts_it(ssh_target, team, owner):
    operator = add_member(team, role=Role.OPERATOR)
    server = do_create_server(
        team=team,
        data=server_data(
            ssh_target, key_mode="paste", ssh_private_key=ssh_target.key.private_openssh
        ),
        user=owner,
    )
    check_server(server)
    server.refresh_from_db()
    pinned = server.host_key_fingerprint
    assert server.status == ServerStatus.REACHABLE

    ssh_target.restart_with_new_host_key()
    check_server(server)

    server.refresh_from_db()
    assert server.status == ServerStatus.UNREACHABLE
    assert server.host_key_fingerprint == pinned
    assert server.host_key_pending_fingerprint not in ("", pinned)
    assert "host key" in server.last_error and "intercept" in server.last_error
    assert pinned in server.last_error

    with pytest.raises(PermissionDenied):
        do_accept_host_key(server, user=operator)
    do_accept_host_key(server, user=owner)
    server.refresh_from_db()
    assert server.host_key_fingerprint != pinned and server.host_key_pending == ""
    event = AuditEvent.objects.get(action="server.host_key_accept")
    assert event.details["old_fingerprint"] == pinned

    check_server(server)
    server.refresh_from_db()
    assert server.status == ServerStatus.REACHABLE, server.last_error
    with pytest.raises(ActionError):
        do_accept_host_key(server, user=owner)


def test_a_wrong_key_is_reported_as_refused_by_the_server(ssh_target, team, owner):
    from testkit.target import KeyPair

    server = do_create_server(
        team=team,
        data=server_data(
            ssh_target, key_mode="paste", ssh_private_key=KeyPair.generate().private_openssh
        ),
        user=owner,
    )
    check_server(server)
    server.refresh_from_db()
    assert server.status == ServerStatus.UNREACHABLE
    assert "root" in server.last_error and "key" in server.last_error.lower()


def test_an_unreachable_host_is_marked_so_with_the_reason(team, owner):
    from testkit.target import KeyPair

    server = Server.objects.create(
        team=team,
        name="nowhere",
        host="127.0.0.1",
        allow_local_address=True,
        ssh_port=free_port(),
        ssh_private_key=KeyPair.generate().private_openssh,
    )
    check_server(server)
    server.refresh_from_db()
    assert server.status == ServerStatus.UNREACHABLE
    assert "127.0.0.1" in server.last_error
    assert server.last_checked_at is not None
