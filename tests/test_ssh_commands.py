"""Commands without a server: quoting argv, and classifying and describing failures."""

import pytest

from deployments.clients.ssh.commands import build_command, command_error, failure_kind
from deployments.clients.ssh.result import CommandResult


def test_commands_are_quoted_behind_env_and_sudo():
    assert build_command(["id", "-un"]) == "id -un"
    assert build_command(["echo", "$(x)", "a b"]) == "echo '$(x)' 'a b'"
    assert build_command(["id"], sudo=True) == "sudo -n -- id"
    assert build_command(["id"], sudo=True, timeout=600) == "sudo -n -- timeout -k 2 600 id"
    assert build_command(["id"], timeout=0.5) == "timeout -k 2 0.5 id"
    assert (
        build_command(["app"], sudo=True, env={"A": "1", "B": "x; y"})
        == "sudo -n -- env A=1 'B=x; y' app"
    )


@pytest.mark.parametrize(
    "argv, env",
    [([], None), (["echo", "a\0b"], None), (["env"], {"BAD NAME": "x"}), (["env"], {"A=B": "x"})],
)
def test_commands_that_cannot_be_quoted_safely_are_refused(argv, env):
    with pytest.raises(ValueError):
        build_command(argv, env=env)


@pytest.mark.parametrize(
    "exit_status, stderr, kind",
    [
        (1, "sudo: a password is required\n", "sudo_password"),
        (
            1,
            "sudo: a terminal is required to read the password; either use the -S option to "
            "read from standard input or configure an askpass helper\n",
            "sudo_password",
        ),
        (1, "deploy is not in the sudoers file.  This incident will be reported.\n", "permission"),
        (1, "mkdir: cannot create directory '/opt/fastgpt': Permission denied\n", "permission"),
        (
            1,
            "permission denied while trying to connect to the Docker daemon socket at "
            "unix:///var/run/docker.sock\n",
            "permission",
        ),
        (126, "sh: 1: ./run.sh: not executable\n", "permission"),
        (127, "sh: 1: docker: not found\n", "command"),
        (1, "Error response from daemon: no such container\n", "command"),
    ],
)
def test_failed_commands_are_classified_from_their_stderr(exit_status, stderr, kind):
    assert failure_kind(exit_status, stderr) == kind


def test_a_sudo_password_error_tells_the_user_what_to_do():
    result = CommandResult(["sudo", "-n", "--", "id"], 1, "", "sudo: a password is required\n", 0)

    error = command_error(result, "deploy")

    assert error.kind == "sudo_password"
    assert error.permanent
    assert str(error).startswith(
        "User deploy needs a password for sudo; allow passwordless sudo for it or connect as root"
    )


def test_a_permission_error_names_the_command_and_user():
    result = CommandResult(["mkdir", "/opt/x"], 1, "", "mkdir: /opt/x: Permission denied\n", 0)

    error = command_error(result, "deploy")

    assert error.kind == "permission"
    assert "`mkdir /opt/x`" in str(error)
    assert "deploy" in str(error)
    assert "Permission denied" in str(error)


def test_a_command_error_shows_only_the_last_lines_of_output():
    stderr = "".join(f"line {n}\n" for n in range(100))

    error = command_error(CommandResult(["make"], 2, "", stderr, 0), "root")

    assert "line 99" in str(error)
    assert "line 50" not in str(error)
