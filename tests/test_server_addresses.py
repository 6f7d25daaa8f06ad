"""The panel connects to its own machine (loopback, its own addresses) or a link-local address
(169.254.169.254 is where cloud metadata services hand out credentials) only for a server whose
owner allowed local addresses: an operator typing such an address gets a sentence, and no
connection is opened."""

import ipaddress
import re
import socket
import subprocess

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from deployments.actions.servers import do_create_server, do_update_server
from deployments.addresses import is_own, local_reason
from deployments.choices import ServerStatus
from deployments.clients.ssh import SSHClient, SSHError
from deployments.servers.check import check_server
from testkit.factories import make_server
from testkit.target import KeyPair

pytestmark = pytest.mark.django_db


@pytest.fixture
def listener():
    """A TCP port on loopback that would see any connection made to it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.5)
        yield server


def global_addresses() -> list[ipaddress.IPv4Address]:
    """This machine's IPv4 addresses other than loopback, as `ip` lists them."""
    listed = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ipaddress.ip_address(m) for m in re.findall(r"inet (\S+)/", listed)]


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - refused, not bound
        ("169.254.169.254", "link-local"),
        ("[fe80::1]", "link-local"),
    ],
)
def test_a_local_address_is_refused_before_any_connection(listener, host, words):
    port = listener.getsockname()[1]
    client = SSHClient(host, port, "root", password="unused")

    with pytest.raises(SSHError) as refused:
        client.connect()

    assert refused.value.kind == "local_address" and refused.value.permanent
    assert words in str(refused.value)
    assert "unless an owner allows local addresses" in str(refused.value)
    with pytest.raises(TimeoutError):
        listener.accept()


def test_an_allowed_local_address_is_connected_to(listener):
    port = listener.getsockname()[1]
    client = SSHClient("127.0.0.1", port, "root", password="unused", connect_timeout=2)
    client.allow_local = True
    sock = client._open_socket()
    try:
        accepted, _ = listener.accept()
        accepted.close()
    finally:
        sock.close()


def test_the_panels_own_addresses_count_as_local_and_others_do_not():
    mine = global_addresses()
    assert mine, "this machine has no address besides loopback"
    for address in mine:
        assert is_own(address)
        assert local_reason(address) == "one of the panel's own addresses"
    assert local_reason(ipaddress.ip_address("203.0.113.77")) is None
    assert local_reason(ipaddress.ip_address("10.1.2.3")) is None


def test_check_now_on_a_server_at_the_metadata_address_says_why_and_connects_nowhere(team):
    server = make_server(
        team, host="169.254.169.254", ssh_private_key=KeyPair.generate().private_openssh
    )
    assert server.allow_local_address is False

    check_server(server)

    server.refresh_from_db()
    assert server.status == ServerStatus.UNREACHABLE
    assert server.last_error.startswith("169.254.169.254 is a link-local address")


def test_only_an_owner_may_allow_local_addresses(team, owner, operator):
    with pytest.raises(PermissionDenied):
        do_create_server(
            team=team,
            data={"name": "gpu-1", "host": "127.0.0.1", "allow_local_address": True},
            user=operator,
        )
    server = do_create_server(team=team, data={"name": "gpu-1", "host": "127.0.0.1"}, user=operator)
    assert server.allow_local_address is False
    with pytest.raises(PermissionDenied):
        do_update_server(server, data={"allow_local_address": True}, user=operator)
    # An operator's edit that leaves it as it is goes through.
    assert do_update_server(
        server, data={"name": "gpu-2", "allow_local_address": False}, user=operator
    ) == ["name"]

    assert do_update_server(server, data={"allow_local_address": True}, user=owner) == [
        "allow_local_address"
    ]


def test_the_server_form_offers_the_setting_to_owners_only(client, team, owner, operator):
    server = make_server(team)
    url = reverse("server_edit", args=[server.pk])
    client.force_login(operator)
    assert "allow_local_address" not in client.get(url).content.decode()
    client.force_login(owner)
    assert 'name="allow_local_address"' in client.get(url).content.decode()
