"""The stack form: the host ports a stack publishes, and the settings it edits."""

import pytest

from deployments.forms.stacks import StackForm
from testkit.factories import make_server, make_stack, stack_form_data


def test_a_port_another_stack_on_the_server_publishes_is_refused_naming_port_and_stack(
    team, operator
):
    server = make_server(team)
    make_stack(server, name="prod", fastgpt_port=3000)
    form = StackForm(stack_form_data(server, fastgpt_port="3000"), user=operator)
    assert form.errors["fastgpt_port"] == [
        "Port 3000 is already published by stack “prod” on this server."
    ]


def test_the_same_ports_as_a_stack_on_another_server_are_accepted(team, operator):
    make_stack(make_server(team), name="prod", fastgpt_port=3100, oneapi_port=3101)
    form = StackForm(stack_form_data(make_server(team)), user=operator)
    assert form.is_valid(), form.errors


def test_editing_a_stack_keeps_its_own_ports(team, operator):
    server = make_server(team)
    stack = make_stack(server, name="staging", fastgpt_port=3100, oneapi_port=3101)
    stack.xinference_port = 9998
    stack.save()
    form = StackForm(stack_form_data(server), instance=stack, user=operator)
    assert form.is_valid(), form.errors


def test_an_edited_stack_still_may_not_take_another_stacks_port(team, operator):
    server = make_server(team)
    make_stack(server, name="prod", oneapi_port=3001)
    stack = make_stack(server, name="staging", fastgpt_port=3100, oneapi_port=3101)
    form = StackForm(stack_form_data(server, oneapi_port="3001"), instance=stack, user=operator)
    assert "“prod”" in form.errors["oneapi_port"][0]


@pytest.mark.parametrize(
    ("other_exposes", "new_exposes", "refused_on"),
    [
        (False, False, None),
        (True, False, "fastgpt_port"),
        (False, True, None),
        (True, True, "expose_database_ports"),
    ],
)
def test_database_ports_count_only_when_exposed(
    team, operator, other_exposes, new_exposes, refused_on
):
    # FastGPT on 27017 meets MongoDB's published port only when "prod" publishes it; the two
    # stacks' databases meet only when both publish them.
    server = make_server(team)
    make_stack(server, name="prod", expose_database_ports=other_exposes)
    data = stack_form_data(server, fastgpt_port="27017")
    if new_exposes:
        data = stack_form_data(server, expose_database_ports="on")
    form = StackForm(data, user=operator)
    if refused_on is None:
        assert form.is_valid(), form.errors
    else:
        assert set(form.errors) == {refused_on}
        assert "“prod”" in form.errors[refused_on][0]


def test_a_stack_whose_own_ports_collide_is_refused_naming_the_port(team, operator):
    server = make_server(team)
    form = StackForm(
        stack_form_data(server, fastgpt_port="5432", expose_database_ports="on"), user=operator
    )
    assert form.errors["fastgpt_port"] == [
        "Port 5432 would be published twice: by FastGPT and by PostgreSQL."
    ]
    form = StackForm(stack_form_data(server, oneapi_port="3100"), user=operator)
    assert form.errors["oneapi_port"] == [
        "Port 3100 would be published twice: by FastGPT and by One API."
    ]


def test_every_setting_the_form_edits_is_kept_in_a_deployment_snapshot(team, owner):
    server = make_server(team)
    # An owner's form: it has every setting, the owner-only one too.
    form = StackForm(stack_form_data(server, expose_database_ports="on"), user=owner)
    assert form.is_valid(), form.errors
    stack = form.save(commit=False)
    snapshot = stack.settings_snapshot()
    # The server and the name say which stack it is; a rollback restores everything else.
    edited = set(form.fields) - {"server", "name"}
    assert edited == set(snapshot)
    assert all(snapshot[name] == form.cleaned_data[name] for name in edited)
