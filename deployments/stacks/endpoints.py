"""Where the panel reaches a deployed stack's services.

FastGPT is published on the server (its share links are for anyone), so the panel uses its
public address. One API and Xinference listen on the server's loopback unless the stack
publishes them (ports.py): the panel reaches them through a tunnel in its SSH connection, so
neither One API's root login nor Xinference's unauthenticated API crosses the network in clear.

    with service_url(stack, "oneapi") as url:
        with OneAPIClient(url, token) as client:
            ...
"""

import contextlib
from collections.abc import Iterator

from ..models import Stack
from ..servers.sessions import open_session
from .ports import INTERNAL_SERVICES, LOOPBACK

SERVICE_PORTS = {
    "fastgpt": "fastgpt_port",
    "oneapi": "oneapi_port",
    "xinference": "xinference_port",
}


def _base(stack: Stack, port: int) -> str:
    host = stack.server.host
    # An IPv6 address goes in brackets inside a URL.
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def public_url(stack: Stack, service: str) -> str:
    """The service's address on the network (one the stack does not publish has none)."""
    return _base(stack, getattr(stack, SERVICE_PORTS[service]))


def fastgpt_url(stack: Stack) -> str:
    return public_url(stack, "fastgpt")


def tunnelled(stack: Stack, service: str) -> bool:
    """Whether the panel reaches the service through SSH rather than over the network."""
    return service in INTERNAL_SERVICES and not stack.publish_internal_services


@contextlib.contextmanager
def service_url(stack: Stack, service: str) -> Iterator[str]:
    """A base URL for the panel to reach the stack's service at while the block runs: a
    forward through a new SSH session to the server's loopback where the stack does not
    publish the service, its public address where it does."""
    port = getattr(stack, SERVICE_PORTS[service])
    if not tunnelled(stack, service):
        yield _base(stack, port)
        return
    with open_session(stack.server) as ssh, ssh.forward(port, LOOPBACK) as forward:
        yield forward.url
