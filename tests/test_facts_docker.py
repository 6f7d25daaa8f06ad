"""Docker, compose and container toolkit parsers on real recorded outputs; compose_command."""

import pytest

from deployments.servers.facts.docker import (
    compose_command,
    explain_docker_failure,
    parse_compose_version,
    parse_docker_info,
    parse_docker_version,
    parse_toolkit_version,
)
from deployments.servers.facts.output import FactsError
from testkit.recorded_outputs import fixture, recorded


def test_docker_version():
    assert parse_docker_version(fixture("docker/version_json_20.10.txt")) == {
        "client_version": "20.10.24+dfsg1",
        "server_version": "20.10.24+dfsg1",
    }
    output, status = recorded("docker/version_json_20.10_daemon_down.txt")
    assert status == 1
    assert parse_docker_version(output) == {
        "client_version": "20.10.24+dfsg1",
        "server_version": None,
    }


def test_docker_version_garbage():
    output, _ = recorded("docker/docker_not_found_bash.txt")
    with pytest.raises(FactsError, match="docker version did not print JSON: 'bash: line 1"):
        parse_docker_version(output)
    with pytest.raises(FactsError, match="broken JSON"):
        parse_docker_version('{"Client": \n')


def test_docker_info():
    assert parse_docker_info(fixture("docker/info_json_20.10.txt")) == {
        "server_version": "20.10.24+dfsg1",
        "data_root": "/var/lib/docker",
        "runtimes": ["io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc"],
        "default_runtime": "runc",
    }


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("info_json_20.10_daemon_down.txt", 0, "its engine is not running"),
        ("info_json_28.2_daemon_down.txt", 1, "its engine is not running"),
        ("info_json_20.10_permission_denied.txt", 0, "permission denied on the Docker socket"),
    ],
)
def test_docker_info_without_an_engine(name, status, words):
    output, exit_status = recorded(f"docker/{name}")
    assert exit_status == status
    with pytest.raises(FactsError, match=words):
        parse_docker_info(output)


def test_explain_docker_failures():
    output, status = recorded("docker/docker_not_found_bash.txt")
    assert explain_docker_failure(status, output) == (
        "Docker is not installed (the docker command was not found)."
    )
    assert explain_docker_failure(1, "sudo: docker: command not found\n").startswith(
        "Docker is not installed"
    )
    assert explain_docker_failure(2, "weird\n") == "docker failed (exit status 2): weird"


def test_compose_v1_real_outputs():
    assert parse_compose_version(recorded("docker/docker_compose_1.29.2_version_short.txt")[0]) == {
        "version": "1.29.2"
    }
    assert parse_compose_version(recorded("docker/docker_compose_1.29.2_version.txt")[0]) == {
        "version": "1.29.2"
    }


@pytest.mark.parametrize(
    ("text", "version"),
    [
        # Hand-written in the formats compose v2 prints (no v2 was installed to record from).
        ("Docker Compose version v2.24.5\n", "2.24.5"),
        ("Docker Compose version v2.29.1-desktop.1\n", "2.29.1-desktop.1"),
        ("Docker Compose version 2.20.2+ds1-0ubuntu1~22.04.1\n", "2.20.2+ds1-0ubuntu1~22.04.1"),
        ("2.24.5\n", "2.24.5"),
    ],
)
def test_compose_v2_formats(text, version):
    assert parse_compose_version(text) == {"version": version}


def test_compose_garbage():
    output, status = recorded("docker/compose_plugin_missing_20.10.txt")
    assert status == 1
    with pytest.raises(FactsError, match="not a compose version: \"docker: 'compose'"):
        parse_compose_version(output)
    with pytest.raises(FactsError, match=r"not a compose version: '\(nothing\)'"):
        parse_compose_version("")


@pytest.mark.parametrize(
    ("text", "version"),
    [
        # Hand-written in the formats the toolkit prints (it was not installed anywhere
        # recordings were made).
        ("NVIDIA Container Toolkit CLI version 1.17.8\ncommit: 0123abc\n", "1.17.8"),
        ("cli-version: 1.13.5\nlib-version: 1.13.5\nbuild date: 2023-07-18\n", "1.13.5"),
        ("version: 1.0.7\nbuild date: 2020-01-21T18:59+00:00\n", "1.0.7"),
    ],
)
def test_toolkit_version(text, version):
    assert parse_toolkit_version(text) == version


def test_toolkit_version_garbage():
    output, _ = recorded("nvidia_smi/fail_not_found_bash.txt")
    with pytest.raises(FactsError, match="not the version of the NVIDIA container toolkit"):
        parse_toolkit_version(output)


def test_compose_command():
    assert compose_command({"compose": {"variant": "plugin", "version": "2.24.5"}}) == [
        "docker",
        "compose",
    ]
    assert compose_command({"compose": {"variant": "standalone", "version": "2.24.5"}}) == [
        "docker-compose"
    ]
    with pytest.raises(FactsError, match="not found"):
        compose_command({})
