"""What a run's page says of its progress: the step it is at out of all, the steps to come, a
running step's time so far and the deadline of a wait, its title, and what to do once it ends."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments.choices import PipelineKind, Role, RunStatus, StepStatus
from deployments.models import Deployment, StepRun
from deployments.views.runs import steps_context
from testkit.factories import add_member, make_run, make_server, make_stack, make_team, make_user

pytestmark = pytest.mark.django_db

DEPLOY_STEPS = 9


@pytest.fixture
def team():
    return make_team("Alpha")


@pytest.fixture
def viewer(team):
    user = make_user("viewer-vera")
    add_member(team, user, role=Role.VIEWER)
    return user


@pytest.fixture
def stack(team):
    return make_stack(make_server(team, name="gpu-1"), name="chatbot")


def _steps(run, *rows):
    started = timezone.now() - timedelta(minutes=2)
    for index, (name, status) in enumerate(rows):
        StepRun.objects.create(
            run=run,
            index=index,
            name=name,
            status=status,
            started_at=started,
            finished_at=None if status == StepStatus.RUNNING else started,
        )


def _deploy(stack, status, next_step):
    run = make_run(
        stack.team,
        status=status,
        kind=PipelineKind.STACK_DEPLOY,
        params={"stack_id": stack.pk},
        next_step=next_step,
        started_at=timezone.now() - timedelta(minutes=3),
        finished_at=None if status == RunStatus.RUNNING else timezone.now(),
    )
    Deployment.objects.create(team=stack.team, stack=stack, run=run, action="deploy")
    return run


def test_a_running_deploy_is_at_its_running_step_of_all_with_the_rest_to_come(
    stack, viewer, settings
):
    settings.STACK_HEALTH_TIMEOUT = 600
    run = _deploy(stack, RunStatus.RUNNING, next_step=6)
    done = [(name, StepStatus.SUCCEEDED) for name in ("a", "b", "c", "d", "e", "f")]
    _steps(run, *done, ("wait until healthy", StepStatus.RUNNING))

    context = steps_context(run, viewer)

    assert (context["position"].number, context["position"].total) == (7, DEPLOY_STEPS)
    assert context["position"].name == "wait until healthy"
    assert [step.name for step in context["upcoming"]] == ["set up One API", "record"]
    waiting = context["steps"][-1]
    assert waiting.deadline == waiting.started_at + timedelta(seconds=600)
    assert waiting.elapsed >= timedelta(minutes=2)
    assert all(step.deadline is None for step in context["steps"][:-1])


def test_the_page_shows_the_position_time_so_far_deadline_and_steps_to_come(client, stack, viewer):
    run = _deploy(stack, RunStatus.RUNNING, next_step=1)
    _steps(run, ("check server", StepStatus.SUCCEEDED), ("render files", StepStatus.RUNNING))
    client.force_login(viewer)

    html = client.get(reverse("run_steps", args=[run.pk])).content.decode()

    assert "Step 2 of 9:" in html and "render files" in html
    assert html.count("data-upcoming-step=") == 7
    assert "data-elapsed-seconds=" in html and "so far" in html
    assert "in-progress" in html  # the running badge is not the succeeded one


def test_a_failed_run_says_where_it_stopped_and_what_to_do(client, stack, viewer):
    run = _deploy(stack, RunStatus.FAILED, next_step=3)
    _steps(
        run,
        *((name, StepStatus.SUCCEEDED) for name in ("a", "b", "c")),
        ("pull images", StepStatus.FAILED),
    )
    client.force_login(viewer)

    html = client.get(reverse("run_steps", args=[run.pk])).content.decode()

    assert "Stopped at step 4 of 9: pull images." in html
    assert "data-upcoming-step" not in html
    assert "Read the error of the failed step above" in html
    assert reverse("stack_detail", args=[stack.pk]) in html


def test_a_succeeded_deploy_links_to_its_stack_and_to_launching_models(client, stack, viewer):
    run = _deploy(stack, RunStatus.SUCCEEDED, next_step=DEPLOY_STEPS)
    client.force_login(viewer)

    html = client.get(reverse("run_steps", args=[run.pk])).content.decode()

    assert "All 9 steps are done." in html
    assert "The stack is deployed." in html
    assert f'href="{reverse("stack_detail", args=[stack.pk])}">Open stack chatbot</a>' in html
    assert f'href="{reverse("model_list")}">Launch models</a>' in html


def test_a_prepared_server_leads_to_adding_a_stack_and_the_run_page_has_its_title(
    client, team, viewer
):
    server = make_server(team, name="gpu-7")
    run = make_run(
        team,
        status=RunStatus.SUCCEEDED,
        kind=PipelineKind.SERVER_PREPARE,
        params={"server_id": server.pk},
    )
    client.force_login(viewer)

    html = client.get(reverse("run_detail", args=[run.pk])).content.decode()

    assert f"<title>Prepare gpu-7 · run #{run.pk}" in html
    assert "<h1>Prepare gpu-7" in html and "server.prepare" not in html
    assert f'href="{reverse("stack_create")}">Add a stack</a>' in html


def test_a_running_run_offers_no_next_steps_yet(client, stack, viewer):
    run = _deploy(stack, RunStatus.RUNNING, next_step=0)
    client.force_login(viewer)
    html = client.get(reverse("run_steps", args=[run.pk])).content.decode()
    assert 'id="run-next"' not in html


def test_the_deployment_list_names_each_deployment_by_its_title(client, stack, viewer):
    _deploy(stack, RunStatus.SUCCEEDED, next_step=DEPLOY_STEPS)
    client.force_login(viewer)
    html = client.get(reverse("deployment_list")).content.decode()
    assert "Deploy stack chatbot on gpu-1" in html
