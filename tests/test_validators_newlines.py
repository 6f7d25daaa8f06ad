"""Every allow-list validator checks the whole value: a newline at the end ("$" matches before
it) or inside a value, or a carriage return, is refused."""

import pytest
from django.core.exceptions import ValidationError

from deployments import validators
from deployments.validators import (
    validate_container_name,
    validate_data_dir,
    validate_hostname,
    validate_name,
    validate_registry_prefix,
    validate_unix_user,
)

GOOD = [
    (validate_name, "gpu-1"),
    (validate_hostname, "gpu-1.example.com"),
    (validate_hostname, "localhost"),
    (validate_hostname, "203.0.113.7"),
    (validate_hostname, "[2001:db8::1]"),
    (validate_unix_user, "ubuntu"),
    (validate_data_dir, "/opt/fastgpt"),
    (validate_container_name, "fastgpt-1"),
    (validate_registry_prefix, "registry.example.com:5000/mirror/"),
]
IDS = [f"{check.__name__}:{value}" for check, value in GOOD]


def variants(value: str) -> list[str]:
    middle = len(value) // 2
    return [
        value + "\n",
        value + "\r\n",
        "\n" + value,
        value[:middle] + "\n" + value[middle:],
        value + "\nrm -rf /",
        value + "\r",
    ]


@pytest.mark.parametrize(("check", "value"), GOOD, ids=IDS)
def test_the_plain_value_is_accepted(check, value):
    check(value)


@pytest.mark.parametrize(("check", "value"), GOOD, ids=IDS)
def test_a_newline_at_the_end_or_inside_is_refused(check, value):
    for bad in variants(value):
        with pytest.raises(ValidationError):
            check(bad)


@pytest.mark.parametrize(
    "pattern",
    [
        validators.NAME_RE,
        validators.HOSTNAME_LABEL_RE,
        validators.UNIX_USER_RE,
        validators.DATA_DIR_RE,
        validators.REGISTRY_PREFIX_RE,
        validators.CONTAINER_RE,
        validators.INTERFACE_RE,
    ],
    ids=lambda pattern: pattern.pattern,
)
def test_the_patterns_refuse_a_final_newline_even_with_match(pattern):
    # Other modules use them with match() (deployments/logs/source.py uses CONTAINER_RE).
    assert pattern.match("ab\n") is None
    assert pattern.match("/ab\n") is None


def test_an_ipv6_zone_may_only_name_an_interface():
    validate_hostname("fe80::1%eth0")
    for bad in ["fe80::1%eth0\n", "fe80::1%\nrm -rf /", "fe80::1%a b", "fe80::1%$(id)"]:
        with pytest.raises(ValidationError):
            validate_hostname(bad)
