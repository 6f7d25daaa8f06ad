"""Where the panel reaches a deployed stack's services: the ports they publish on the server."""

from ..models import Stack


def _base(stack: Stack, port: int) -> str:
    host = stack.server.host
    # An IPv6 address goes in brackets inside a URL.
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def oneapi_url(stack: Stack) -> str:
    return _base(stack, stack.oneapi_port)


def fastgpt_url(stack: Stack) -> str:
    return _base(stack, stack.fastgpt_port)


def xinference_url(stack: Stack) -> str:
    return _base(stack, stack.xinference_port)
