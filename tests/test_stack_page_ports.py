"""Each published port is listed once. Docker reports a port published on every address twice,
once bound on 0.0.0.0 (IPv4) and once on :: (IPv6), with the same numbers."""

from django.urls import reverse

from deployments.models import Service
from deployments.stacks.services import record_services
from deployments.templatetags.panel import port_list
from testkit.factories import make_server, make_stack


def inspected(ports: dict) -> dict:
    """One container as `docker inspect` describes it, trimmed to what is read."""
    return {
        "Name": "/llmstack1-fastgpt-1",
        "Config": {"Image": "fastgpt:v4.8", "Labels": {"com.docker.compose.service": "fastgpt"}},
        "State": {"Status": "running", "Health": {"Status": "healthy"}},
        "NetworkSettings": {"Ports": ports},
        "RestartCount": 0,
    }


DUAL_STACK = {
    "3000/tcp": [
        {"HostIp": "0.0.0.0", "HostPort": "3100"},  # noqa: S104 (what docker reports)
        {"HostIp": "::", "HostPort": "3100"},
    ],
    "9000/tcp": None,  # exposed, not published
}


def test_a_port_bound_for_ipv4_and_ipv6_is_recorded_once(team):
    stack = make_stack(make_server(team))
    record_services(stack, [inspected(DUAL_STACK)])
    assert Service.objects.get(stack=stack, name="fastgpt").ports == ["3100->3000/tcp"]


def test_two_ports_of_one_service_are_both_kept(team):
    stack = make_stack(make_server(team))
    ports = {
        **DUAL_STACK,
        "27017/tcp": [{"HostIp": "127.0.0.1", "HostPort": "27017"}],
    }
    record_services(stack, [inspected(ports)])
    assert Service.objects.get(name="fastgpt").ports == ["27017->27017/tcp", "3100->3000/tcp"]


def test_the_page_lists_a_port_recorded_twice_before_once(client, team, viewer):
    # Rows recorded before the fix keep both bindings until the next refresh.
    stack = make_stack(make_server(team))
    Service.objects.create(stack=stack, name="fastgpt", ports=["3100->3000/tcp"] * 2)
    client.force_login(viewer)
    html = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert html.count("3100-&gt;3000/tcp") == 1


def test_the_filter_keeps_different_ports_in_their_order():
    assert port_list(["3100->3000/tcp", "3100->3000/tcp", "80->80/tcp"]) == (
        "3100->3000/tcp, 80->80/tcp"
    )
    assert port_list([{"published": 3100, "target": 3000}] * 2) == "3100:3000"
