"""The SSH client against a real OpenSSH server on loopback: connecting, commands, files.

Its parts that need no server are tested in test_ssh_keys.py and test_ssh_commands.py.
"""

import os
import re
import socket
import stat
import subprocess
import time
import uuid

import pytest

from deployments.clients.ssh import HostKeyChanged, SSHClient, SSHError, generate_keypair
from testkit.factories import make_server
from testkit.sshd import Sshd, free_port
from testkit.workers import wait_until

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def keypair():
    return generate_keypair("test-panel")


@pytest.fixture(scope="module")
def sshd(keypair, tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    server.authorize(keypair[1])
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def own_sshd(keypair, tmp_path):
    """A server of the test's own, for tests that restart it or change its keys."""
    server = Sshd(tmp_path / "sshd")
    server.authorize(keypair[1])
    yield server
    server.cleanup()


def client_for(server: Sshd, private_key: str, **kwargs) -> SSHClient:
    kwargs.setdefault("connect_timeout", 5)
    kwargs.setdefault("allow_local", True)  # the test server listens on loopback
    return SSHClient("127.0.0.1", server.port, "root", private_key=private_key, **kwargs)


@pytest.fixture
def ssh(sshd, keypair):
    with client_for(sshd, keypair[0]) as client:
        yield client


def log_after(server: Sshd, offset: int) -> str:
    return server.log[offset:]


# Connecting and host keys


def test_a_terminal_command_reports_each_redraw_as_it_comes(ssh):
    seen = []
    started = time.monotonic()

    def record(line):
        seen.append((line, time.monotonic() - started))

    result = ssh.run(
        ["sh", "-c", "printf '10%%\\r'; sleep 0.5; printf '60%%\\r'; sleep 0.5; echo done"],
        on_output=record,
        terminal=True,
    )

    assert [line for line, _ in seen] == ["10%", "60%", "done"]
    # Each redraw arrived before the command ended, not all at once at the end.
    assert seen[0][1] < result.duration - 0.7
    assert result.stderr == ""


@slow
def test_a_generated_key_logs_in_and_runs_a_command(ssh):
    result = ssh.run(["id", "-un"])

    assert result.stdout == "root\n"
    assert result.exit_status == 0
    assert result.ok
    assert result.argv == ["id", "-un"]
    assert result.duration > 0


@slow
def test_first_contact_returns_the_host_key_as_ssh_keygen_fingerprints_it(sshd, keypair):
    client = client_for(sshd, keypair[0])
    try:
        host_key = client.connect()
    finally:
        client.close()

    assert host_key.fingerprint == sshd.host_key_fingerprint
    assert host_key.fingerprint.startswith("SHA256:")
    assert host_key.line == sshd.host_key_line
    assert client.host_key == host_key


@slow
def test_a_matching_pinned_host_key_connects(sshd, keypair):
    with client_for(sshd, keypair[0], pinned_host_key=sshd.host_key_line + " a comment") as ssh:
        assert ssh.run(["true"]).ok
        assert ssh.host_key.line == sshd.host_key_line


@slow
def test_the_pinned_key_type_is_negotiated_when_the_server_has_several(keypair, tmp_path):
    server = Sshd(tmp_path / "sshd", key_types=("ed25519", "ecdsa"))
    server.authorize(keypair[1])
    with server:
        ecdsa_line = server.host_key_line_of(server.host_key_paths[1])
        with client_for(server, keypair[0], pinned_host_key=ecdsa_line) as ssh:
            assert ssh.host_key.line == ecdsa_line
            assert ssh.host_key.key_type == "ecdsa-sha2-nistp256"


@slow
def test_a_changed_host_key_is_refused_before_any_key_is_offered(own_sshd, keypair):
    own_sshd.start()
    old_line, old_fingerprint = own_sshd.host_key_line, own_sshd.host_key_fingerprint
    own_sshd.regenerate_host_key()
    own_sshd.restart()
    new_fingerprint = own_sshd.host_key_fingerprint
    offset = len(own_sshd.log)

    client = client_for(own_sshd, keypair[0], pinned_host_key=old_line)
    with pytest.raises(HostKeyChanged) as caught:
        client.connect()

    error = caught.value
    assert error.kind == "host_key_changed"
    assert error.permanent
    assert error.pinned_fingerprint == old_fingerprint
    assert error.offered.fingerprint == new_fingerprint
    assert error.offered.line == own_sshd.host_key_line
    assert old_fingerprint in str(error) and new_fingerprint in str(error)
    assert "intercept" in str(error) and "reinstalled" in str(error)
    assert "accept the new key" in str(error)
    # sshd logs the end of the connection; by then any key offered would have been logged too.
    wait_until(
        lambda: re.search(r"Connection (closed|reset) by", log_after(own_sshd, offset)),
        5,
        "sshd to log the end of the connection",
    )
    server_side = log_after(own_sshd, offset)
    assert "publickey" not in server_side
    assert "Accepted" not in server_side


@slow
def test_an_unknown_key_is_refused_with_kind_auth(sshd):
    stranger, _ = generate_keypair()

    with pytest.raises(SSHError) as caught:
        client_for(sshd, stranger).connect()

    assert caught.value.kind == "auth"
    assert caught.value.permanent
    assert "The server refused the key for user root" in str(caught.value)


def test_no_key_and_no_password_is_an_auth_error_before_connecting():
    client = SSHClient("127.0.0.1", free_port(), "root", allow_local=True)

    with pytest.raises(SSHError) as caught:
        client.connect()

    assert caught.value.kind == "auth"


@slow
def test_a_closed_port_is_unreachable_at_once(keypair):
    port = free_port()
    started = time.monotonic()

    with pytest.raises(SSHError) as caught:
        SSHClient("127.0.0.1", port, "root", private_key=keypair[0], allow_local=True).connect()

    assert time.monotonic() - started < 2
    assert caught.value.kind == "unreachable"
    assert not caught.value.permanent
    assert str(caught.value) == (
        f"Cannot reach 127.0.0.1:{port}: connection refused. Is the server up and the port open?"
    )


def test_a_name_that_does_not_resolve_is_unreachable(keypair):
    client = SSHClient("no-such-host.invalid", 22, "root", private_key=keypair[0])

    with pytest.raises(SSHError) as caught:
        client.connect()

    assert caught.value.kind == "unreachable"
    assert "does not resolve" in str(caught.value)


@slow
def test_a_port_that_never_sends_a_banner_times_out_within_the_connect_timeout(keypair):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        client = SSHClient(
            "127.0.0.1", port, "root", private_key=keypair[0], connect_timeout=1, allow_local=True
        )
        started = time.monotonic()

        with pytest.raises(SSHError) as caught:
            client.connect()
        elapsed = time.monotonic() - started

    assert caught.value.kind == "timeout"
    assert not caught.value.permanent
    assert 0.9 < elapsed < 2
    assert "did not complete the SSH handshake within 1 seconds" in str(caught.value)


def test_a_pinned_key_that_is_not_a_key_is_refused_before_connecting(keypair):
    client = SSHClient(
        "127.0.0.1",
        free_port(),
        "root",
        private_key=keypair[0],
        pinned_host_key="nonsense",
        allow_local=True,
    )

    with pytest.raises(SSHError) as caught:
        client.connect()

    assert caught.value.kind == "host_key_unknown"


# Commands


@slow
def test_a_command_that_outlives_its_timeout_is_stopped(ssh):
    # A unique duration tells this sleep apart from any other on the machine.
    duration = f"29.{uuid.uuid4().int % 10**6:06d}"
    started = time.monotonic()

    with pytest.raises(SSHError) as caught:
        ssh.run(["sleep", duration], timeout=1)

    assert caught.value.kind == "timeout"
    assert not caught.value.permanent
    assert f"`sleep {duration}`" in str(caught.value)
    assert "stopped" in str(caught.value)
    assert time.monotonic() - started < 5
    # sshd is local, so the remote process table is this machine's.
    wait_until(
        lambda: (
            subprocess.run(["pgrep", "-f", f"sleep {duration}"], capture_output=True).returncode
            == 1
        ),
        5,
        "the timed-out command to be gone",
    )
    assert ssh.run(["echo", "still connected"]).stdout == "still connected\n"


@slow
def test_exit_status_is_returned_without_check(ssh):
    result = ssh.run(["sh", "-c", "echo out; echo oops >&2; exit 3"], check=False)

    assert result.exit_status == 3
    assert not result.ok
    assert result.stdout == "out\n"
    assert result.stderr == "oops\n"


@slow
def test_a_failing_command_raises_with_its_exit_code_and_stderr(ssh):
    with pytest.raises(SSHError) as caught:
        ssh.run(["sh", "-c", "echo first >&2; echo the reason >&2; exit 3"])

    error = caught.value
    assert error.kind == "command"
    assert error.permanent
    assert "exit code 3" in str(error)
    assert "the reason" in str(error)
    assert error.result.exit_status == 3


HOSTILE_ARGUMENTS = [
    "$(touch {marker})",
    "`touch {marker}`",
    "; touch {marker}",
    "x\ntouch {marker}\n",
    "> {marker}",
    "| tee {marker}",
    "&& touch {marker} &",
    "-n",
    "--help",
    "it's",
    "\"double\" and 'single' \\ backslash",
    "$HOME ${PATH} * ~ ?",
    "tab\tand trailing space ",
    "naïve ✓ 漢字 🙂",
    "",
]


@slow
@pytest.mark.parametrize("template", HOSTILE_ARGUMENTS)
def test_hostile_arguments_are_passed_byte_for_byte_and_run_nothing(ssh, template):
    marker = f"/tmp/pwned-{uuid.uuid4()}"
    argument = template.replace("{marker}", marker)

    echoed = ssh.run(["printf", "%s", argument])
    through_env = ssh.run(["sh", "-c", 'printf %s "$VALUE"'], env={"VALUE": argument})
    as_root = ssh.run(["printf", "%s", argument], sudo=True)

    assert echoed.stdout == argument
    assert through_env.stdout == argument
    assert as_root.stdout == argument
    assert ssh.run(["test", "!", "-e", marker]).ok
    assert not os.path.exists(marker)


@slow
def test_stdin_reaches_the_command(ssh):
    assert ssh.run(["cat"], stdin="hello\nwörld").stdout == "hello\nwörld"
    assert ssh.run(["wc", "-c"], stdin=b"\x00\xff" * 10).stdout.strip() == "20"


@slow
def test_stdin_larger_than_the_windows_does_not_deadlock_against_output(ssh):
    data = ("x" * 1023 + "\n") * 4096  # 4 MiB, echoed back while still being sent

    assert ssh.run(["cat"], stdin=data, timeout=30).stdout == data


@slow
def test_a_command_without_stdin_reads_end_of_file(ssh):
    assert ssh.run(["cat"], timeout=5).stdout == ""


@slow
def test_multibyte_characters_split_across_reads_arrive_intact(ssh):
    # Each character's bytes are written apart, with pauses, so they arrive in separate reads.
    script = (
        "import sys, time\n"
        "for byte in 'é漢🙂\\n'.encode():\n"
        "    sys.stdout.buffer.write(bytes([byte])); sys.stdout.flush(); time.sleep(0.02)\n"
    )
    lines = []

    result = ssh.run(["python3", "-c", script], on_output=lines.append)

    assert result.stdout == "é漢🙂\n"
    assert lines == ["é漢🙂"]


@slow
def test_on_output_receives_lines_as_they_arrive(ssh):
    seen = []
    started = time.monotonic()

    def record(line):
        seen.append((line, time.monotonic() - started))

    result = ssh.run(
        ["sh", "-c", "echo one; sleep 0.5; echo two >&2; sleep 0.5; printf three"],
        on_output=record,
    )

    assert [line for line, _ in seen] == ["one", "two", "three"]
    assert seen[0][1] < result.duration - 0.7
    assert result.stdout == "one\nthree"
    assert result.stderr == "two\n"


@slow
def test_sudo_as_root_runs_the_command_without_sudo(ssh):
    result = ssh.run(["sh", "-c", 'echo "${SUDO_USER-no sudo}"; id -un'], sudo=True)

    assert result.stdout == "no sudo\nroot\n"


# Files and keys


@slow
def test_upload_replaces_the_file_atomically_with_mode_0600(ssh, sshd):
    path = sshd.dir / f"upload-{uuid.uuid4().hex}.env"
    ssh.upload("SECRET=one\n", str(path))
    assert path.read_text() == "SECRET=one\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    with path.open() as before:
        ssh.upload(b"SECRET=two\n", str(path))
        # A reader of the old file still sees it whole: the new one was renamed over it.
        assert before.read() == "SECRET=one\n"

    assert path.read_text() == "SECRET=two\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in sshd.dir.iterdir() if p.name.startswith(f".{path.name}")] == []


@slow
def test_upload_applies_the_given_mode(ssh, sshd):
    path = sshd.dir / f"upload-{uuid.uuid4().hex}.sh"

    ssh.upload("#!/bin/sh\n", str(path), mode=0o755)

    assert stat.S_IMODE(path.stat().st_mode) == 0o755


@slow
def test_upload_into_a_missing_folder_says_so(ssh, sshd):
    with pytest.raises(SSHError) as caught:
        ssh.upload("x", str(sshd.dir / "missing" / "file"))

    assert "does not exist" in str(caught.value)


@slow
def test_install_public_key_twice_leaves_one_line_and_the_key_logs_in(own_sshd, keypair):
    own_sshd.start()
    private, public = generate_keypair("second")
    authorized = own_sshd.home / ".ssh" / "authorized_keys"

    with client_for(own_sshd, keypair[0]) as ssh:
        ssh.install_public_key(public)
        ssh.install_public_key(public)
        ssh.install_public_key(public.replace("second", "another comment"))

    assert authorized.read_text() == public + "\n"
    assert stat.S_IMODE(authorized.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(authorized.stat().st_mode) == 0o600
    with client_for(own_sshd, private) as ssh:
        assert ssh.run(["id", "-un"]).stdout == "root\n"


@slow
def test_install_public_key_appends_after_a_last_line_without_newline(own_sshd, keypair):
    own_sshd.start()
    _, existing = generate_keypair("existing")
    _, public = generate_keypair("new")
    authorized = own_sshd.home / ".ssh" / "authorized_keys"
    authorized.parent.mkdir(mode=0o700)
    authorized.write_text(existing)

    with client_for(own_sshd, keypair[0]) as ssh:
        ssh.install_public_key(public)

    assert authorized.read_text().splitlines() == [existing, public]


def test_install_public_key_refuses_what_is_not_a_public_key():
    client = SSHClient("127.0.0.1", 22, "root", password="unused")

    with pytest.raises(SSHError) as caught:
        client.install_public_key("ssh-ed25519 AAAA; rm -rf /")

    assert caught.value.kind == "auth"


@pytest.mark.django_db
@slow
def test_for_server_connects_with_the_servers_key_and_pin(team, sshd, keypair):
    server = make_server(
        team,
        host="127.0.0.1",
        ssh_port=sshd.port,
        ssh_user="root",
        ssh_private_key=keypair[0],
        ssh_public_key=keypair[1],
        host_key=sshd.host_key_line,
    )

    client = SSHClient.for_server(server)
    with client:
        assert client.run(["id", "-un"]).stdout == "root\n"

    assert client.pinned_host_key == sshd.host_key_line
    assert client.user == "root"


@pytest.mark.django_db
def test_for_server_without_a_pinned_key_trusts_on_first_use(team):
    server = make_server(team, host="[2001:db8::1]", ssh_port=2222)

    client = SSHClient.for_server(server, password="one-time")

    assert client.pinned_host_key is None
    assert client.host == "2001:db8::1"
    assert client.address == "[2001:db8::1]:2222"
