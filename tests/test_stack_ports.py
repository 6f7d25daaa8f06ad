"""The host ports a stack publishes: the ones its compose file publishes, no more, no fewer."""

import pytest

from deployments.stacks.ports import published_ports
from deployments.stacks.render import compose_document
from testkit.factories import make_server, make_stack


def compose_host_ports(stack) -> dict[str, int]:
    services = compose_document(stack)["services"]
    return {
        # "host:container", or "address:host:container" where bound to one address.
        name: int(published.split(":")[-2])
        for name, service in services.items()
        for published in service.get("ports", [])
    }


@pytest.mark.parametrize("expose", [False, True])
def test_the_ports_checked_are_the_ports_the_compose_file_publishes(team, expose):
    stack = make_stack(make_server(team), fastgpt_port=3100, expose_database_ports=expose)
    assert {port.service: port.host for port in published_ports(stack)} == compose_host_ports(stack)


def test_database_ports_are_published_only_when_exposed(team):
    stack = make_stack(make_server(team))
    assert {port.host for port in published_ports(stack)} == {3000, 3001, 9997}
    stack.expose_database_ports = True
    assert {port.host for port in published_ports(stack)} == {
        3000,
        3001,
        9997,
        5432,
        27017,
        3306,
    }
