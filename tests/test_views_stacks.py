"""Adding a stack from the form, and what its page shows of the files a deploy writes."""

import pytest
from django.urls import reverse

from deployments.models import AuditEvent, Stack
from deployments.stacks.secrets import SECRET_NAMES, stack_secrets
from testkit.factories import add_member, make_server, make_stack, stack_form_data


def stack_data(server, **overrides):
    values = {"name": "prod", "fastgpt_port": "3000", "oneapi_port": "3001"}
    values |= {"xinference_port": "9997", "data_dir": "/opt/fastgpt"}
    return stack_form_data(server, **{**values, **overrides})


def test_an_operator_adds_a_stack_with_its_own_generated_secrets(client, team, operator):
    server = make_server(team)
    client.force_login(operator)
    response = client.post(reverse("stack_create"), stack_data(server))
    stack = Stack.objects.get()
    assert response.url == reverse("stack_detail", args=[stack.pk])
    assert (stack.team, stack.server, stack.expose_database_ports) == (team, server, False)
    assert set(stack_secrets(stack)) == set(SECRET_NAMES)
    assert AuditEvent.objects.filter(action="stack.create", actor=operator).exists()


def test_the_stack_page_shows_the_files_with_secrets_masked(client, team, viewer):
    stack = make_stack(make_server(team))
    secrets = stack_secrets(stack)
    client.force_login(viewer)
    html = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert "docker-compose.yml" in html and "config.json" in html
    assert "PG_PASSWORD=********" in html
    assert not any(value in html for value in secrets.values())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"registry": "custom", "registry_prefix": ""}, "registry_prefix"),
        ({"registry": "custom", "registry_prefix": "evil;rm -rf /"}, "registry_prefix"),
        ({"oneapi_port": "3000"}, "oneapi_port"),
        ({"fastgpt_port": "70000"}, "fastgpt_port"),
        ({"data_dir": "../etc"}, "data_dir"),
        ({"name": "bad name"}, "name"),
        ({"version_line": "fastgpt-0.1"}, "version_line"),
    ],
)
def test_bad_input_is_named_beside_its_field_and_creates_nothing(
    client, team, operator, overrides, field
):
    server = make_server(team)
    client.force_login(operator)
    response = client.post(reverse("stack_create"), stack_data(server, **overrides))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not Stack.objects.exists()


def test_a_duplicate_name_on_the_same_server_is_refused(client, team, operator):
    server = make_server(team)
    make_stack(server, name="prod")
    client.force_login(operator)
    response = client.post(reverse("stack_create"), stack_data(server))
    assert "name" in response.context["form"].errors
    assert Stack.objects.count() == 1


def test_viewers_cannot_add_stacks_and_servers_of_other_teams_are_not_offered(
    client, team, other_team, viewer
):
    client.force_login(viewer)
    assert client.get(reverse("stack_create")).status_code == 403
    foreign = make_server(other_team)
    operator = add_member(team)
    client.force_login(operator)
    response = client.post(reverse("stack_create"), stack_data(foreign))
    assert "server" in response.context["form"].errors
    assert not Stack.objects.exists()


def test_deploy_starts_one_deployment_and_refuses_a_second_while_it_runs(
    client, team, operator, viewer
):
    stack = make_stack(make_server(team))
    client.force_login(viewer)
    assert client.post(reverse("stack_deploy", args=[stack.pk])).status_code == 403
    client.force_login(operator)
    response = client.post(reverse("stack_deploy", args=[stack.pk]))
    deployment = stack.deployments.get()
    assert response.url == reverse("deployment_detail", args=[deployment.pk])
    assert (deployment.action, deployment.user, deployment.run.kind) == (
        "deploy",
        operator,
        "stack.deploy",
    )
    again = client.post(reverse("stack_deploy", args=[stack.pk]), follow=True)
    assert "under way" in again.content.decode()
    assert stack.deployments.count() == 1
