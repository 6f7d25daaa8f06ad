"""Allow-list validators for every identifier that may later reach a remote command.

Quoting happens too, where commands are built; these keep odd input out of the
database in the first place and give the user a precise message.
"""

import ipaddress
import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# Whole values only: \Z, because "$" also matches before a final newline, and the validators
# below use fullmatch() too. Other modules match with these patterns (logs/source.py).
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
HOSTNAME_LABEL_RE = re.compile(r"\A(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
INTERFACE_RE = re.compile(r"\A[A-Za-z0-9_.-]{1,15}\Z")
UNIX_USER_RE = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")
DATA_DIR_RE = re.compile(r"\A/[A-Za-z0-9._/-]*\Z")
# host[:port][/path...]: what may stand before an image name.
REGISTRY_PREFIX_RE = re.compile(r"\A[a-z0-9][a-z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9][a-z0-9._-]*)*/?\Z")
# Docker's own rule for container names, and hex ids.
CONTAINER_RE = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}\Z")


def validate_name(value: str) -> None:
    if not NAME_RE.fullmatch(value):
        raise ValidationError(
            _(
                "Use 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter "
                "or digit."
            ),
            code="invalid_name",
        )


def validate_hostname(value: str) -> None:
    candidate = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        address = None
    if address is not None:
        # Python takes any text after an IPv6 address's "%" for its zone: only an interface name.
        zone = getattr(address, "scope_id", None)
        if zone is None or INTERFACE_RE.fullmatch(zone):
            return
    elif len(value) <= 253 and all(
        HOSTNAME_LABEL_RE.fullmatch(label) for label in value.rstrip(".").split(".")
    ):
        return
    raise ValidationError(
        _("Enter a hostname (letters, digits, dashes and dots) or an IP address."),
        code="invalid_host",
    )


def validate_unix_user(value: str) -> None:
    if not UNIX_USER_RE.fullmatch(value):
        raise ValidationError(
            _(
                "Enter a Unix user name: lower-case letters, digits, dashes or underscores, "
                "not starting with a digit or dash."
            ),
            code="invalid_user",
        )


def validate_data_dir(value: str) -> None:
    if not DATA_DIR_RE.fullmatch(value) or ".." in value.split("/"):
        raise ValidationError(
            _(
                "Enter an absolute path made of letters, digits, dots, dashes, underscores and "
                "slashes, without '..'."
            ),
            code="invalid_path",
        )


def validate_container_name(value: str) -> None:
    if not CONTAINER_RE.fullmatch(value):
        raise ValidationError(
            _("Enter a container name or id: letters, digits, dots, dashes and underscores."),
            code="invalid_container",
        )


def validate_registry_prefix(value: str) -> None:
    if len(value) > 200 or not REGISTRY_PREFIX_RE.fullmatch(value):
        raise ValidationError(
            _("Enter a registry and optional path, like registry.example.com:5000/mirror."),
            code="invalid_registry",
        )


CURRENCY_RE = re.compile(r"[A-Z]{3}")


def validate_currency(value: str) -> None:
    if not CURRENCY_RE.fullmatch(value or ""):
        raise ValidationError(
            _("Enter a currency as its three-letter code in capitals, like USD, EUR or CNY."),
            code="invalid_currency",
        )
