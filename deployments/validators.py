"""Allow-list validators for every identifier that may later reach a remote command.

Quoting happens too, where commands are built; these keep odd input out of the
database in the first place and give the user a precise message.
"""

import ipaddress
import re

from django.core.exceptions import ValidationError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HOSTNAME_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
UNIX_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
DATA_DIR_RE = re.compile(r"^/[A-Za-z0-9._/-]*$")
# host[:port][/path...]: what may stand before an image name.
REGISTRY_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9][a-z0-9._-]*)*/?$")
# Docker's own rule for container names, and hex ids.
CONTAINER_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


def validate_name(value: str) -> None:
    if not NAME_RE.match(value):
        raise ValidationError(
            "Use 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter "
            "or digit.",
            code="invalid_name",
        )


def validate_hostname(value: str) -> None:
    candidate = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(candidate)
        return
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if len(value) > 253 or not all(HOSTNAME_LABEL_RE.match(label) for label in labels):
        raise ValidationError(
            "Enter a hostname (letters, digits, dashes and dots) or an IP address.",
            code="invalid_host",
        )


def validate_unix_user(value: str) -> None:
    if not UNIX_USER_RE.match(value):
        raise ValidationError(
            "Enter a Unix user name: lower-case letters, digits, dashes or underscores, "
            "not starting with a digit or dash.",
            code="invalid_user",
        )


def validate_data_dir(value: str) -> None:
    if not DATA_DIR_RE.match(value) or ".." in value.split("/"):
        raise ValidationError(
            "Enter an absolute path made of letters, digits, dots, dashes, underscores and "
            "slashes, without '..'.",
            code="invalid_path",
        )


def validate_container_name(value: str) -> None:
    if not CONTAINER_RE.match(value):
        raise ValidationError(
            "Enter a container name or id: letters, digits, dots, dashes and underscores.",
            code="invalid_container",
        )


def validate_registry_prefix(value: str) -> None:
    if len(value) > 200 or not REGISTRY_PREFIX_RE.match(value):
        raise ValidationError(
            "Enter a registry and optional path, like registry.example.com:5000/mirror.",
            code="invalid_registry",
        )
