"""Each stack keeps its data in a directory of its own, never one the server's system needs:
a second stack there would overwrite the first's secrets on deploy, and deleting one's data
would delete the other's databases."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from deployments.actions import ActionError
from deployments.actions.stacks import do_create_stack, do_deploy_stack, do_teardown_stack
from deployments.choices import StackStatus
from deployments.models import Deployment, Stack
from deployments.stacks.data_dirs import data_dir_problems, overlap, system_path_problem
from testkit.factories import make_server, make_stack

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/etc",
        "/etc/fastgpt",
        "/usr/local/fastgpt",
        "/var/lib",
        "/var/lib/docker/volumes/x",
        "/var/log",
        "/opt",
        "/home",
        "/home/ubuntu",
        "/root",
        "/tmp/fastgpt",
        "/proc/1",
        "//etc//",
        "/opt/../etc",
    ],
)
def test_a_system_directory_is_refused_with_the_reason(path):
    problem = system_path_problem(path)
    assert problem is not None
    assert "system needs" in problem or "holds more than this stack" in problem


@pytest.mark.parametrize(
    "path", ["/opt/fastgpt", "/srv/llm", "/home/ubuntu/fastgpt", "/data/stack-1", "/var/lib/llm"]
)
def test_a_directory_of_its_own_is_accepted(path):
    assert system_path_problem(path) is None


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        ("/opt/fastgpt", "/opt/fastgpt", True),
        ("/opt/fastgpt", "/opt/fastgpt/", True),
        ("/opt/fastgpt", "/opt/fastgpt/second", True),
        ("/opt/fastgpt/second", "/opt/fastgpt", True),
        ("/opt/fastgpt", "/opt/fastgpt2", False),
        ("/opt/a", "/opt/b", False),
    ],
)
def test_two_directories_overlap_when_equal_or_one_inside_the_other(first, second, shared):
    assert overlap(first, second) is shared


@pytest.mark.parametrize("path", ["/srv/llm", "/srv/llm/inner", "/srv"])
def test_a_second_stack_on_the_server_cannot_share_or_nest_the_first_ones_directory(
    team, operator, path
):
    server = make_server(team)
    make_stack(server, name="first", data_dir="/srv/llm")
    with pytest.raises(ValidationError) as refused:
        do_create_stack(server=server, data={"name": "second", "data_dir": path}, user=operator)
    messages = " ".join(refused.value.message_dict["data_dir"])
    assert "first" in messages or "holds more than this stack" in messages
    assert not Stack.objects.filter(name="second").exists()


def test_stacks_on_different_servers_may_use_the_same_directory(team, operator):
    make_stack(make_server(team), name="first", data_dir="/srv/llm")
    stack = do_create_stack(
        server=make_server(team), data={"name": "second", "data_dir": "/srv/llm"}, user=operator
    )
    assert stack.data_dir == "/srv/llm"


def test_the_form_names_the_stack_that_holds_the_directory_beside_the_field(client, team, operator):
    from tests.test_views_stacks import stack_data  # the form as the views tests post it

    server = make_server(team)
    make_stack(server, name="first", data_dir="/opt/fastgpt")
    client.force_login(operator)
    response = client.post(
        reverse("stack_create"),
        stack_data(
            server, name="second", fastgpt_port="4000", oneapi_port="4001", xinference_port="9998"
        ),
    )
    assert response.status_code == 200
    errors = response.context["form"].errors["data_dir"]
    assert errors == [
        "Stack “first” on this server keeps its data in /opt/fastgpt: each stack needs a "
        "directory of its own, not inside or around another's."
    ]
    assert Stack.objects.count() == 1

    response = client.post(
        reverse("stack_create"),
        stack_data(
            server,
            name="second",
            data_dir="/etc",
            fastgpt_port="4000",
            oneapi_port="4001",
            xinference_port="9998",
        ),
    )
    assert "which the system needs" in response.context["form"].errors["data_dir"][0]
    assert Stack.objects.count() == 1


def test_stacks_that_already_share_a_directory_cannot_deploy_or_delete_their_data(team, operator):
    """Made before the rule: neither may write or delete the files they share, while a
    teardown that keeps the data still may stop one."""
    server = make_server(team)
    first = make_stack(server, name="first", data_dir="/srv/shared", status=StackStatus.RUNNING)
    make_stack(server, name="second", data_dir="/srv/shared/second")

    with pytest.raises(ActionError, match="Stack “second” on this server keeps its data"):
        do_deploy_stack(first, user=operator)
    with pytest.raises(ActionError, match="this would write or delete its files too"):
        do_teardown_stack(first, delete_data=True, confirm_name="first", user=operator)
    assert not Deployment.objects.exists()

    kept = do_teardown_stack(first, delete_data=False, user=operator)
    assert kept.run.params["delete_data"] is False


def test_a_stack_alone_in_its_directory_has_no_problems(team):
    stack = make_stack(make_server(team), data_dir="/srv/alone")
    assert data_dir_problems(stack) == []
