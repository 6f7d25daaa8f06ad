"""One API and Xinference stay on the server's loopback unless an owner publishes them, and the
panel reaches them through a tunnel in its SSH connection; FastGPT is always published.

The SSH target shares this machine's network, so a server listening on this machine's loopback
is one listening on the target's loopback, as a loopback-bound container port is on a real
server. A deployed stack's exposure is checked in test_stack_lifecycle_real.py, with
`assert_published_only_fastgpt` below.
"""

import hashlib
import http.server
import socket
import subprocess
import threading

import httpx
import pytest
from django.core.exceptions import PermissionDenied

from deployments.actions.stacks import do_create_stack, do_rollback_stack
from deployments.choices import Role
from deployments.clients.ssh import SSHClient
from deployments.forms.stacks import StackForm
from deployments.stacks.endpoints import service_url
from deployments.stacks.ports import ports_taken_on_server
from deployments.stacks.render import compose_document, render
from deployments.stacks.secrets import stack_secrets
from testkit.factories import add_member, make_deployment, make_server, make_stack, stack_form_data

# The compose file ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_api_and_xinference_are_bound_to_the_servers_loopback_by_default(team):
    stack = make_stack(make_server(team), fastgpt_port=3100, oneapi_port=3101)
    services = compose_document(stack)["services"]
    assert services["fastgpt"]["ports"] == ["3100:3000"]
    assert services["oneapi"]["ports"] == ["127.0.0.1:3101:3000"]
    assert services["xinference"]["ports"] == ["127.0.0.1:9997:9997"]


@pytest.mark.django_db
def test_a_stack_that_publishes_them_binds_them_to_every_address(team):
    stack = make_stack(make_server(team), publish_internal_services=True)
    services = compose_document(stack)["services"]
    assert services["oneapi"]["ports"] == ["3001:3000"]
    assert services["xinference"]["ports"] == ["9997:9997"]


@pytest.mark.django_db
def test_a_port_bound_to_loopback_still_clashes_with_another_stacks(team):
    server = make_server(team)
    make_stack(server, name="prod", fastgpt_port=3000, oneapi_port=3001)
    other = make_stack(server, name="staging", fastgpt_port=3100, oneapi_port=3001)
    assert [(port.service, stack.name) for port, stack in ports_taken_on_server(other)] == [
        ("oneapi", "prod"),
        # Both stacks leave Xinference on its default port.
        ("xinference", "prod"),
    ]


# Who may publish them ------------------------------------------------------------------------


@pytest.mark.django_db
def test_only_an_owner_sees_and_may_set_the_publishing_setting(team, owner, operator):
    server = make_server(team)
    assert "publish_internal_services" not in StackForm(user=operator).fields
    form = StackForm(stack_form_data(server, publish_internal_services="on"), user=owner)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["publish_internal_services"] is True

    data = {"name": "open", "data_dir": "/opt/open", "publish_internal_services": True}
    with pytest.raises(PermissionDenied):
        do_create_stack(server=server, data=data, user=operator)
    stack = do_create_stack(server=server, data=data, user=owner)
    assert stack.publish_internal_services is True
    closed = do_create_stack(
        server=server, data={"name": "closed", "data_dir": "/opt/closed"}, user=operator
    )
    assert closed.publish_internal_services is False


@pytest.mark.django_db
def test_an_owner_of_another_team_cannot_publish_on_this_teams_server(team, other_team, operator):
    add_member(other_team, role=Role.OWNER, user=operator)
    server = make_server(team)
    form = StackForm(stack_form_data(server, publish_internal_services="on"), user=operator)
    assert not form.is_valid()
    assert "publish_internal_services" in form.errors


@pytest.mark.django_db
def test_only_an_owner_may_roll_back_to_settings_that_publish_them(team, owner, operator):
    stack = make_stack(make_server(team), publish_internal_services=True)
    published = make_deployment(
        stack,
        user=owner,
        rendered_files=render(stack, stack_secrets(stack)).shown(),
        stack_settings=stack.settings_snapshot(),
    )
    stack.publish_internal_services = False
    stack.save()
    with pytest.raises(PermissionDenied):
        do_rollback_stack(stack, to=published, user=operator)
    stack.refresh_from_db()
    assert stack.publish_internal_services is False
    do_rollback_stack(stack, to=published, user=owner)
    stack.refresh_from_db()
    assert stack.publish_internal_services is True


# Service URLs ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_fastgpt_and_published_services_are_reached_at_their_public_address(team):
    # No SSH key: any SSH session would fail.
    server = make_server(team, host="203.0.113.7")
    stack = make_stack(server, publish_internal_services=True)
    with service_url(stack, "oneapi") as url:
        assert url == "http://203.0.113.7:3001"
    with service_url(stack, "xinference") as url:
        assert url == "http://203.0.113.7:9997"
    stack.publish_internal_services = False
    with service_url(stack, "fastgpt") as url:
        assert url == "http://203.0.113.7:3000"


# The tunnel, through a real sshd ---------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path == "/big":
            self._answer(b"x" * (3 * 1024 * 1024))
        else:
            self._answer(f"hello {self.path}".encode())

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(hashlib.sha256(body).hexdigest().encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_http():
    """An HTTP server on this machine's loopback, the SSH target's loopback too."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def root_client(target) -> SSHClient:
    return SSHClient(
        target.host,
        target.port,
        "root",
        private_key=target.key.private_openssh,
        allow_local=True,
    )


def forward_threads(port: int) -> list[str]:
    name = f"ssh-forward-{port}"
    return [t.name for t in threading.enumerate() if t.name.split("-", 3)[:3] == name.split("-")]


def refused(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.slow
def test_the_forward_carries_http_to_the_servers_loopback_and_closes_cleanly(
    ssh_target, loopback_http
):
    payload = bytes(range(256)) * 8192  # 2 MiB, many channel windows
    with root_client(ssh_target) as ssh:
        with ssh.forward(loopback_http) as forward:
            assert forward.url == f"http://127.0.0.1:{forward.port}"
            assert forward.port != loopback_http
            http = httpx.Client(base_url=forward.url, timeout=60)
            assert http.get("/status").text == "hello /status"
            assert len(http.get("/big").content) == 3 * 1024 * 1024
            reply = http.post("/upload", content=payload)
            assert reply.text == hashlib.sha256(payload).hexdigest()
            # Several connections at once, each its own channel.
            results = []
            workers = [
                threading.Thread(
                    target=lambda n=n: results.append(httpx.get(f"{forward.url}/{n}").text)
                )
                for n in range(5)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            assert sorted(results) == [f"hello /{n}" for n in range(5)]
            # httpx keeps its connection open: closing the forward ends it all the same.
            assert forward_threads(forward.port)
        assert forward_threads(forward.port) == []
        assert refused("127.0.0.1", forward.port)
        with pytest.raises(httpx.TransportError):
            http.get("/status")
        http.close()
        # The SSH connection is still there for other work.
        assert ssh.run(["echo", "ok"], timeout=30).stdout == "ok\n"


@pytest.mark.slow
def test_a_forward_to_a_port_nothing_listens_on_fails_the_request_only(ssh_target, loopback_http):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with root_client(ssh_target) as ssh:
        with ssh.forward(closed_port) as forward, pytest.raises(httpx.TransportError):
            httpx.get(f"{forward.url}/", timeout=30)
        with ssh.forward(loopback_http) as forward:
            assert httpx.get(f"{forward.url}/again", timeout=30).text == "hello /again"


@pytest.mark.slow
@pytest.mark.django_db
def test_service_url_tunnels_to_a_stack_that_does_not_publish_the_service(
    ssh_target, loopback_http, team
):
    server = make_server(
        team,
        host=ssh_target.host,
        ssh_port=ssh_target.port,
        ssh_user="root",
        ssh_private_key=ssh_target.key.private_openssh,
    )
    stack = make_stack(server, oneapi_port=loopback_http, xinference_port=loopback_http)
    for service in ("oneapi", "xinference"):
        with service_url(stack, service) as url:
            assert url.startswith("http://127.0.0.1:")
            assert url != f"http://127.0.0.1:{loopback_http}"
            assert httpx.get(f"{url}/v1/models", timeout=30).text == "hello /v1/models"
        assert refused("127.0.0.1", int(url.rsplit(":", 1)[1]))


# A deployed stack (used by test_stack_lifecycle_real.py) ---------------------------------------


def other_address() -> str | None:
    """An IPv4 address of this machine other than loopback, a Docker bridge's last."""
    listing = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    found = []
    for line in listing.splitlines():
        fields = line.split()
        interface, address = fields[1], fields[3].split("/")[0]
        found.append((interface.startswith(("docker", "br-")), address))
    return min(found)[1] if found else None


def assert_published_only_fastgpt(stack) -> None:
    """One API and Xinference answer on the server's loopback only; FastGPT on its other
    addresses too. The stack's server is this machine (the SSH target shares its network)."""
    address = other_address()
    assert address, "This machine has no address other than loopback to check from."
    for port in (stack.oneapi_port, stack.xinference_port):
        assert not refused("127.0.0.1", port), port
        assert refused(address, port), f"{address}:{port} accepted a connection"
    assert not refused(address, stack.fastgpt_port)
