"""After a deploy the stack page says where each service is: FastGPT as a link on the server's
address; One API and Xinference as links only where the stack publishes them, otherwise how
the panel (and a person, with a port forward) reaches them on the server's loopback."""

import pytest
from django.urls import reverse

from deployments.choices import StackStatus
from testkit.factories import make_server, make_stack

FILES = {"docker-compose.yml": "services: {}\n"}


def deployed_stack(team, *, host="203.0.113.7", **fields):
    return make_stack(
        make_server(team, host=host, ssh_port=2222, ssh_user="ops"),
        status=StackStatus.RUNNING,
        rendered_files=FILES,
        fastgpt_port=3100,
        oneapi_port=3101,
        xinference_port=9998,
        **fields,
    )


def page(client, user, stack) -> str:
    client.force_login(user)
    return client.get(reverse("stack_detail", args=[stack.pk])).content.decode()


def addresses(html: str) -> str:
    return html.split('<section id="addresses">', 1)[1].split("</section>", 1)[0]


def test_fastgpt_is_a_link_on_the_servers_address_and_port(client, team, viewer):
    section = addresses(page(client, viewer, deployed_stack(team)))
    assert '<a href="http://203.0.113.7:3100" target="_blank" rel="noopener noreferrer">' in section


def test_loopback_services_say_how_they_are_reached_instead_of_a_dead_link(client, team, viewer):
    section = addresses(page(client, viewer, deployed_stack(team)))
    assert 'href="http://203.0.113.7:3101"' not in section
    assert 'href="http://203.0.113.7:9998"' not in section
    assert "On the server's loopback only (port 3101)" in section
    assert "the panel reaches it through SSH" in section
    assert "ssh -p 2222 -L 3101:127.0.0.1:3101 ops@203.0.113.7" in section
    assert "ssh -p 2222 -L 9998:127.0.0.1:9998 ops@203.0.113.7" in section


def test_published_one_api_and_xinference_are_links_too(client, team, viewer):
    stack = deployed_stack(team, publish_internal_services=True)
    section = addresses(page(client, viewer, stack))
    assert '<a href="http://203.0.113.7:3101"' in section
    assert '<a href="http://203.0.113.7:9998"' in section
    assert "loopback" not in section


def test_an_ipv6_server_address_goes_in_brackets(client, team, viewer):
    section = addresses(page(client, viewer, deployed_stack(team, host="2001:db8::7")))
    assert '<a href="http://[2001:db8::7]:3100"' in section


@pytest.mark.parametrize(
    "fields",
    [
        {},  # never deployed
        {"status": StackStatus.TORN_DOWN, "rendered_files": FILES},
    ],
    ids=["never deployed", "torn down"],
)
def test_no_address_is_offered_while_nothing_runs(client, team, viewer, fields):
    stack = make_stack(make_server(team, host="203.0.113.7"), fastgpt_port=3100, **fields)
    section = addresses(page(client, viewer, stack))
    assert "http://203.0.113.7:3100" not in section
    assert "appear here once the stack is deployed" in section
