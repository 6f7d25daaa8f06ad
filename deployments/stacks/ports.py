"""The host ports a stack publishes on its server, and the ones two stacks would both take.

The compose file (render.py) publishes exactly these, so a check made here holds for what a
deploy does: a port already bound by another stack's container makes that deploy fail. One
API and Xinference are bound to the server's loopback unless the stack publishes them
(`publish_internal_services`): the panel reaches them through its SSH connection. A port bound
to loopback still takes that port on the server, so it counts in the clash checks all the same.
"""

from dataclasses import dataclass

from ..models import Stack

# Published on their own numbers, and only when the stack asks (expose_database_ports), e.g.
# to reach them with a desktop client.
DATABASE_PORTS = {"pg": ("PostgreSQL", 5432), "mongo": ("MongoDB", 27017), "mysql": ("MySQL", 3306)}
DATABASE_SETTING = "expose_database_ports"
INTERNAL_SETTING = "publish_internal_services"
# No authentication of their own worth the name (Xinference has none by default) and One API's
# root login: on the server's loopback only, unless the stack's owner publishes them.
INTERNAL_SERVICES = ("oneapi", "xinference")
LOOPBACK = "127.0.0.1"
# The Stack fields that decide what it publishes.
PORT_SETTINGS = (
    "fastgpt_port",
    "oneapi_port",
    "xinference_port",
    DATABASE_SETTING,
    INTERNAL_SETTING,
)


@dataclass(frozen=True)
class PublishedPort:
    service: str  # the compose service
    label: str  # what a sentence calls the service
    host: int  # the port on the server
    container: int  # the port inside the container
    setting: str  # the Stack field that makes the stack publish it
    bind: str = ""  # the server's address it listens on; every address when empty

    @property
    def compose(self) -> str:
        """As the compose file's `ports` list writes it."""
        if self.bind:
            return f"{self.bind}:{self.host}:{self.container}"
        return f"{self.host}:{self.container}"


def internal_bind(stack: Stack) -> str:
    """The address One API and Xinference listen on: loopback unless the stack publishes them."""
    return "" if stack.publish_internal_services else LOOPBACK


def published_ports(stack: Stack) -> list[PublishedPort]:
    """The ports the stack's compose file publishes, on every address of the server or on its
    loopback only. The stack may be unsaved, e.g. built from a form's values; a port left empty
    there is not published."""
    bind = internal_bind(stack)
    ports = [
        PublishedPort("fastgpt", "FastGPT", stack.fastgpt_port, 3000, "fastgpt_port"),
        PublishedPort("oneapi", "One API", stack.oneapi_port, 3000, "oneapi_port", bind),
        PublishedPort(
            "xinference", "Xinference", stack.xinference_port, 9997, "xinference_port", bind
        ),
    ]
    if stack.expose_database_ports:
        ports += [
            PublishedPort(service, label, number, number, DATABASE_SETTING)
            for service, (label, number) in DATABASE_PORTS.items()
        ]
    return [port for port in ports if port.host]


def ports_published_twice(stack: Stack) -> list[tuple[PublishedPort, PublishedPort]]:
    """Each of the stack's ports whose host port an earlier one of its services publishes
    already, as (that earlier one, this one): one pair per repeat, however many there are."""
    first_by_host: dict[int, PublishedPort] = {}
    repeats = []
    for port in published_ports(stack):
        if port.host in first_by_host:
            repeats.append((first_by_host[port.host], port))
        else:
            first_by_host[port.host] = port
    return repeats


def ports_taken_on_server(stack: Stack) -> list[tuple[PublishedPort, Stack]]:
    """The stack's ports that another stack on its server publishes too, with that stack.

    Every other stack counts, whatever its status: a draft or a torn-down stack publishes its
    ports once deployed. A saved stack is not compared with itself, so editing one keeps its
    own ports."""
    others = (
        Stack.objects.filter(server_id=stack.server_id)
        .only("name", *PORT_SETTINGS)
        .order_by("name")
    )
    if stack.pk is not None:
        others = others.exclude(pk=stack.pk)
    taken = {}
    for other in others:
        for port in published_ports(other):
            taken.setdefault(port.host, other)
    return [(port, taken[port.host]) for port in published_ports(stack) if port.host in taken]
