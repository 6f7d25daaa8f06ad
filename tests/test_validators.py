import pytest
from django.core.exceptions import ValidationError

from deployments.validators import (
    validate_data_dir,
    validate_hostname,
    validate_name,
    validate_registry_prefix,
    validate_unix_user,
)

HOSTILE = [
    "a;rm -rf /",
    "$(reboot)",
    "`id`",
    "a\nb",
    "x > /etc/passwd",
    "-oProxyCommand=sh",
    "a|b",
    "a&&b",
    "名前",
    "",
    "a" * 300,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_names_with_shell_metacharacters_are_rejected(value):
    with pytest.raises(ValidationError):
        validate_name(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_hosts_with_shell_metacharacters_are_rejected(value):
    with pytest.raises(ValidationError):
        validate_hostname(value)


@pytest.mark.parametrize("value", HOSTILE + ["Root", "1user"])
def test_unix_users_outside_the_allow_list_are_rejected(value):
    with pytest.raises(ValidationError):
        validate_unix_user(value)


@pytest.mark.parametrize("value", ["relative/dir", "/opt/../etc", "/opt/a b", "/opt/$(x)"])
def test_data_dirs_must_be_plain_absolute_paths(value):
    with pytest.raises(ValidationError):
        validate_data_dir(value)


@pytest.mark.parametrize(
    "value", ["gpu-1.example.com", "203.0.113.7", "2001:db8::1", "[2001:db8::1]", "localhost"]
)
def test_ordinary_hosts_are_accepted(value):
    validate_hostname(value)


@pytest.mark.parametrize("value", ["gpu-1", "A100_box.2", "x"])
def test_ordinary_names_are_accepted(value):
    validate_name(value)


def test_ordinary_users_and_dirs_are_accepted():
    validate_unix_user("ubuntu")
    validate_unix_user("deploy_user-2")
    validate_data_dir("/opt/fastgpt")
    validate_data_dir("/srv/stacks/team-a.v2")


@pytest.mark.parametrize("value", HOSTILE + ["Registry.Example.com", "a b/c", "host:port"])
def test_registry_prefixes_outside_the_allow_list_are_rejected(value):
    with pytest.raises(ValidationError):
        validate_registry_prefix(value)


@pytest.mark.parametrize("value", ["127.0.0.1:5000", "registry.example.com/team/", "r.io/a/b"])
def test_ordinary_registry_prefixes_are_accepted(value):
    validate_registry_prefix(value)
