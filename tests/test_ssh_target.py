"""The SSH target container itself, seen with plain paramiko (not the panel's client)."""

import contextlib

import paramiko
import pytest

from testkit.docker_engine import server_version

pytestmark = pytest.mark.slow


def known_host_keys(target) -> list[paramiko.PKey]:
    """The host keys the container holds, read with docker exec rather than over SSH."""
    return [
        paramiko.hostkeys.HostKeyEntry.from_line(f"[{target.host}]:{target.port} {line}").key
        for line in target.host_keys().values()
    ]


@contextlib.contextmanager
def connect(target, username, **credentials):
    """A client that trusts only the container's own host keys."""
    client = paramiko.SSHClient()
    for key in known_host_keys(target):
        client.get_host_keys().add(f"[{target.host}]:{target.port}", key.get_name(), key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        target.host,
        target.port,
        username=username,
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
        **credentials,
    )
    try:
        yield client
    finally:
        client.close()


def run(client, command):
    """(exit status, stdout, stderr) of COMMAND on the target."""
    _, stdout, stderr = client.exec_command(command, timeout=60)
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


def offered_host_key(target) -> paramiko.PKey:
    """The host key the server presents to a client now."""
    transport = paramiko.Transport((target.host, target.port))
    try:
        transport.start_client(timeout=10)
        return transport.get_remote_server_key()
    finally:
        transport.close()


def test_root_logs_in_with_the_key_only(ssh_target):
    with connect(ssh_target, "root", pkey=ssh_target.key.pkey) as client:
        assert run(client, "id -u") == (0, "0\n", "")
    wrong = connect(ssh_target, "root", password=ssh_target.deploy_password)
    with pytest.raises(paramiko.AuthenticationException), wrong:
        pass


def test_docker_inside_the_target_reaches_this_machines_engine(ssh_target):
    with connect(ssh_target, "root", pkey=ssh_target.key.pkey) as client:
        status, out, err = run(client, "docker version --format '{{.Server.Version}}'")
        _, names, _ = run(client, "docker ps --format '{{.Names}}'")
    print("engine seen from the target:", out.strip())
    assert (status, err) == (0, "")
    assert out.strip() == server_version()
    assert ssh_target.name in names.split()


def test_deploy_logs_in_with_its_password_and_sudo_needs_none(ssh_target):
    with connect(ssh_target, "deploy", password=ssh_target.deploy_password) as client:
        assert run(client, "id -un") == (0, "deploy\n", "")
        assert run(client, "sudo -n true") == (0, "", "")
        assert run(client, "sudo -n id -u") == (0, "0\n", "")
    with connect(ssh_target, "deploy", pkey=ssh_target.key.pkey) as client:
        assert run(client, "id -un")[1] == "deploy\n"


def test_limited_logs_in_but_sudo_asks_for_a_password(ssh_target):
    with connect(ssh_target, "limited", password=ssh_target.limited_password) as client:
        assert run(client, "id -un") == (0, "limited\n", "")
        status, out, err = run(client, "sudo -n true")
    assert status != 0
    assert "password is required" in err
    wrong = connect(ssh_target, "limited", password=ssh_target.deploy_password)
    with pytest.raises(paramiko.AuthenticationException), wrong:
        pass


def test_restart_with_new_host_key_changes_the_key_clients_see(ssh_target):
    before = offered_host_key(ssh_target)
    port = ssh_target.port
    with connect(ssh_target, "root", pkey=ssh_target.key.pkey) as client:
        run(client, "touch /root/kept")

    ssh_target.restart_with_new_host_key()

    after = offered_host_key(ssh_target)
    assert ssh_target.port == port
    assert after.get_name() == before.get_name()
    assert after.fingerprint != before.fingerprint
    assert after.fingerprint in {key.fingerprint for key in known_host_keys(ssh_target)}
    # A client that pinned the old key refuses the server now.
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[{ssh_target.host}]:{port}", before.get_name(), before)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect(
            ssh_target.host,
            port,
            username="root",
            pkey=ssh_target.key.pkey,
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
    client.close()
    # Everything else of the server stayed: files, keys, passwords.
    with connect(ssh_target, "root", pkey=ssh_target.key.pkey) as client:
        assert run(client, "test -e /root/kept")[0] == 0
    with connect(ssh_target, "deploy", password=ssh_target.deploy_password) as client:
        assert run(client, "id -un")[1] == "deploy\n"


def test_exec_passes_an_argument_vector_that_no_shell_reads(ssh_target):
    name = 'x\'; touch pwned; echo "$(id)" `id` $HOME && rm -rf . | cat > y & *?[a]{b,c}~!#\\'
    assert ssh_target.exec(["printf", "%s", name]).stdout.decode() == name

    ssh_target.exec(["mkdir", "-p", "/tmp/meta"])
    ssh_target.exec(["touch", f"/tmp/meta/{name}"])
    assert ssh_target.exec(["ls", "-A", "/tmp/meta"]).stdout.decode() == f"{name}\n"
    for path in ("/pwned", "/y", "/tmp/meta/pwned", "/tmp/meta/y"):
        assert ssh_target.exec(["test", "-e", path], check=False).returncode == 1

    # Input given on stdin reaches the command as data too.
    assert ssh_target.exec(["cat"], input=name).stdout.decode() == name
