"""Addresses the panel must not be sent to by what a user types: its own machine and the
link-local range where cloud metadata services answer (169.254.169.254 hands out the cloud
account's credentials). A server's address is resolved once, checked, and that very address is
connected to, so a name cannot resolve to something else between the check and the connection.
"""

import ipaddress
import socket
from dataclasses import dataclass

from django.utils.translation import gettext as _

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_own(address: Address) -> bool:
    """Whether `address` belongs to this machine: only then can a socket be bound to it."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


def local_reason(address: Address) -> str | None:
    """Why connecting to `address` would reach the panel's own machine or a cloud's metadata
    service, in words; None for an address elsewhere."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address.is_loopback:
        return _("a loopback address (the panel's own machine)")
    if address.is_unspecified:
        return _("an unspecified address (the panel's own machine)")
    if address.is_link_local:
        return _("a link-local address (where cloud metadata services answer)")
    if address.is_multicast:
        return _("a multicast address")
    if is_own(address):
        return _("one of the panel's own addresses")
    return None


@dataclass(frozen=True)
class Resolved:
    host: str
    addresses: list[Address]


def resolve(host: str, port: int) -> Resolved:
    """Every address `host` resolves to (socket.gaierror when it does not)."""
    found = []
    for *_rest, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in found:
            found.append(address)
    return Resolved(host, found)


class LocalAddress(Exception):
    """The host resolves to the panel's own machine or a link-local address."""


def refuse_local(resolved: Resolved) -> None:
    """LocalAddress when any address of `resolved` is local, naming it and why."""
    for address in resolved.addresses:
        reason = local_reason(address)
        if reason:
            shown = (
                resolved.host if str(address) == resolved.host else f"{resolved.host} ({address})"
            )
            raise LocalAddress(
                _(
                    "%(host)s is %(reason)s: the panel does not connect there unless an owner "
                    "allows local addresses for this server."
                )
                % {"host": shown, "reason": reason}
            )
