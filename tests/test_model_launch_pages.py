"""The pages of model launches: launching from a config's page, following a launch's progress,
its smoke test, cancelling and terminating it, and the stack's list of its models. The runs are
only queued here; the pipelines themselves are tested against a real Xinference elsewhere."""

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments.actions.launches import do_launch_model
from deployments.actions.llm import do_create_model_config_from_preset
from deployments.choices import LaunchStatus, Role, RunStatus, StackStatus, StepStatus
from deployments.llm.smoke import JSON_ONLY, SmokeResult
from deployments.models import ModelLaunch, PipelineRun, StepRun
from testkit.factories import add_member, make_server, make_stack

pytestmark = pytest.mark.django_db


@pytest.fixture
def stack(team):
    return make_stack(make_server(team), name="prod", status=StackStatus.RUNNING)


@pytest.fixture
def config(team, operator):
    return do_create_model_config_from_preset("m3e-base", team=team, user=operator)


@pytest.fixture
def launch(config, stack, operator):
    return do_launch_model(config, stack=stack, user=operator)


def set_state(launch: ModelLaunch, *, run_status: RunStatus | None = None, **fields):
    """Put a launch (and its run) where a worker would have left it."""
    ModelLaunch.objects.filter(pk=launch.pk).update(**fields)
    if run_status is not None:
        PipelineRun.objects.filter(pk=launch.run_id).update(status=run_status)
    launch.refresh_from_db()
    return launch


def config_url(config) -> str:
    return reverse("model_detail", args=["embedding", config.pk])


def launch_url(launch: ModelLaunch) -> str:
    return reverse("model_launch_detail", args=[launch.pk])


def test_an_operator_launches_from_the_config_page_and_lands_on_the_launch_page(
    client, operator, config, stack
):
    client.force_login(operator)
    create_url = reverse("model_launch_create", args=["embedding", config.pk])
    page = client.get(config_url(config)).content.decode()
    assert f'action="{create_url}"' in page and "prod on " in page

    response = client.post(create_url, {"stack": stack.pk})

    launch = ModelLaunch.objects.get()
    assert response.status_code == 302 and response.url == launch_url(launch)
    assert launch.embedding == config and launch.stack == stack
    assert launch.run.kind == "model.launch" and launch.run.status == RunStatus.QUEUED
    html = client.get(response.url).content.decode()
    assert "Launch of “m3e-base” on stack “prod” queued." in html
    assert reverse("run_detail", args=[launch.run_id]) in html
    assert "Pending" in html and "Embedding model" in html


def test_a_viewer_sees_no_launch_form_and_their_launch_is_refused(client, viewer, config, stack):
    client.force_login(viewer)
    create_url = reverse("model_launch_create", args=["embedding", config.pk])
    assert create_url not in client.get(config_url(config)).content.decode()
    assert client.post(create_url, {"stack": stack.pk}).status_code == 403
    assert not ModelLaunch.objects.exists()


def test_launching_on_a_stack_not_deployed_shows_why_on_the_config_page_and_creates_nothing(
    client, team, operator, config
):
    draft = make_stack(make_server(team), name="draft")
    client.force_login(operator)
    response = client.post(
        reverse("model_launch_create", args=["embedding", config.pk]),
        {"stack": draft.pk},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == config_url(config)
    assert (
        "Stack “draft” is not deployed: deploy it before launching models on it."
        in response.content.decode()
    )
    assert not ModelLaunch.objects.exists() and not PipelineRun.objects.exists()


def test_the_same_model_launched_twice_is_refused_with_a_sentence(
    client, operator, config, stack, launch
):
    client.force_login(operator)
    response = client.post(
        reverse("model_launch_create", args=["embedding", config.pk]),
        {"stack": stack.pk},
        follow=True,
    )
    assert "“m3e-base” is already pending on stack “prod”: terminate it first" in (
        response.content.decode()
    )
    assert ModelLaunch.objects.count() == 1


def test_a_stack_of_another_team_cannot_be_chosen(client, operator, other_team, config):
    theirs = make_stack(make_server(other_team), status=StackStatus.RUNNING)
    add_member(other_team, operator, role=Role.OPERATOR)
    client.force_login(operator)
    response = client.post(
        reverse("model_launch_create", args=["embedding", config.pk]),
        {"stack": theirs.pk},
        follow=True,
    )
    assert "Choose one of the stacks of the model&#x27;s team." in response.content.decode()
    assert not ModelLaunch.objects.exists()


def test_the_progress_partial_shows_stage_and_percent_and_stops_polling_when_ready(
    client, viewer, launch
):
    set_state(launch, status=LaunchStatus.LAUNCHING, progress=0.45, stage="downloading (45%)")
    client.force_login(viewer)

    loading = client.get(launch_url(launch), HTTP_HX_REQUEST="true")
    html = loading.content.decode()
    assert not html.lstrip().startswith("<!doctype")
    assert 'id="launch-status"' in html and 'hx-trigger="every 2s"' in html
    assert "downloading (45%)" in html and 'value="45"' in html and "45%" in html
    assert "HX-Request" in loading["Vary"]

    set_state(
        launch,
        status=LaunchStatus.READY,
        progress=1.0,
        stage="ready",
        run_status=RunStatus.SUCCEEDED,
    )
    html = client.get(launch_url(launch), HTTP_HX_REQUEST="true").content.decode()
    assert 'id="launch-status"' in html and "hx-trigger" not in html
    assert "Ready" in html and 'value="100"' in html


def test_the_whole_page_polls_while_the_launch_is_queued(client, viewer, launch):
    client.force_login(viewer)
    html = client.get(launch_url(launch)).content.decode()
    assert "<h1>Launch of m3e-base</h1>" in html
    assert f'hx-get="{launch_url(launch)}" hx-trigger="every 2s"' in html
    assert "queued, waiting for a worker" in html


def test_a_flagged_smoke_test_is_shown_with_its_message_escaped(client, viewer, stack, launch):
    message = "The model answered in raw JSON: <think>{}</think>, not in words."
    smoke = SmokeResult(False, JSON_ONLY, message, {"answer": '{"sum": 42}'}).as_dict()
    set_state(launch, status=LaunchStatus.READY, progress=1.0, stage="ready", smoke_test=smoke)
    client.force_login(viewer)

    html = client.get(launch_url(launch)).content.decode()
    assert "Smoke test flagged this model:" in html
    assert "The model answered in raw JSON: &lt;think&gt;{}&lt;/think&gt;, not in words." in html
    assert "<think>" not in html
    stack_page = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert "Flagged" in stack_page and JSON_ONLY in stack_page


def test_a_passed_smoke_test_is_shown_as_passed(client, viewer, launch):
    smoke = SmokeResult(True, "ok", "It embedded both texts into 768 numbers.").as_dict()
    set_state(launch, status=LaunchStatus.READY, stage="ready", smoke_test=smoke)
    client.force_login(viewer)
    html = client.get(launch_url(launch)).content.decode()
    assert "Smoke test passed" in html and "It embedded both texts" in html
    assert "flagged" not in html


def test_a_failed_launch_shows_the_error_of_its_run_and_offers_terminate(client, operator, launch):
    PipelineRun.objects.filter(pk=launch.run_id).update(
        status=RunStatus.FAILED, error="The server has 2048 MiB of GPU memory free; m3e needs 4096."
    )
    set_state(launch, status=LaunchStatus.LAUNCHING, stage="checking the server's GPUs")
    client.force_login(operator)
    html = client.get(launch_url(launch)).content.decode()
    assert "Failed" in html and "m3e needs 4096." in html
    assert reverse("model_launch_terminate", args=[launch.pk]) in html
    assert reverse("model_launch_cancel", args=[launch.pk]) not in html
    assert "hx-trigger" not in html


def test_a_viewer_sees_no_buttons_and_cannot_cancel_or_terminate(client, viewer, launch):
    client.force_login(viewer)
    cancel_url = reverse("model_launch_cancel", args=[launch.pk])
    terminate_url = reverse("model_launch_terminate", args=[launch.pk])
    html = client.get(launch_url(launch)).content.decode()
    assert cancel_url not in html and terminate_url not in html
    assert client.post(cancel_url).status_code == 403
    assert client.post(terminate_url).status_code == 403
    launch.refresh_from_db()
    assert launch.status == LaunchStatus.PENDING


def test_cancelling_a_queued_launch_marks_it_cancelled(client, operator, launch):
    client.force_login(operator)
    html = client.get(launch_url(launch)).content.decode()
    assert reverse("model_launch_cancel", args=[launch.pk]) in html
    assert reverse("model_launch_terminate", args=[launch.pk]) not in html

    response = client.post(reverse("model_launch_cancel", args=[launch.pk]), follow=True)

    launch.refresh_from_db()
    assert launch.status == LaunchStatus.TERMINATED and launch.stage == "cancelled"
    assert launch.run.status == RunStatus.CANCELLED
    html = response.content.decode()
    assert "Launch of “m3e-base” cancelled." in html and "Terminated" in html
    assert "hx-trigger" not in html


def test_terminating_a_ready_launch_queues_a_run_and_the_page_links_it(client, operator, launch):
    set_state(
        launch,
        status=LaunchStatus.READY,
        progress=1.0,
        stage="ready",
        run_status=RunStatus.SUCCEEDED,
    )
    client.force_login(operator)
    assert reverse("model_launch_terminate", args=[launch.pk]) in (
        client.get(launch_url(launch)).content.decode()
    )

    response = client.post(reverse("model_launch_terminate", args=[launch.pk]), follow=True)

    run = PipelineRun.objects.get(kind="model.terminate")
    assert run.params["launch_id"] == launch.pk and run.status == RunStatus.QUEUED
    html = response.content.decode()
    assert "Terminating “m3e-base” on stack “prod”." in html
    assert reverse("run_detail", args=[run.pk]) in html
    # Under way: no second terminate, and the page follows it until the model is stopped.
    assert reverse("model_launch_terminate", args=[launch.pk]) not in html
    assert 'hx-trigger="every 2s"' in html


def test_terminating_a_launch_under_way_is_refused_with_cancel_instead(client, operator, launch):
    set_state(launch, status=LaunchStatus.LAUNCHING, run_status=RunStatus.RUNNING)
    client.force_login(operator)
    response = client.post(reverse("model_launch_terminate", args=[launch.pk]), follow=True)
    assert response.redirect_chain[-1][0] == launch_url(launch)
    assert "“m3e-base” is still launching: cancel the launch instead." in response.content.decode()
    assert not PipelineRun.objects.filter(kind="model.terminate").exists()


def test_another_teams_launch_is_not_found(client, operator, other_team):
    their_config = do_create_model_config_from_preset(
        "m3e-base", team=other_team, user=add_member(other_team, role=Role.OWNER)
    )
    their_stack = make_stack(make_server(other_team), status=StackStatus.RUNNING)
    theirs = ModelLaunch.objects.create(
        team=other_team, stack=their_stack, model_uid="m3e-base", embedding=their_config
    )
    client.force_login(operator)
    assert client.get(launch_url(theirs)).status_code == 404
    assert client.get(launch_url(theirs), HTTP_HX_REQUEST="true").status_code == 404
    assert client.post(reverse("model_launch_cancel", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("model_launch_terminate", args=[theirs.pk])).status_code == 404
    create_url = reverse("model_launch_create", args=["embedding", their_config.pk])
    assert client.post(create_url, {"stack": their_stack.pk}).status_code == 404
    assert ModelLaunch.objects.count() == 1


def test_launch_urls_take_post_only(client, operator, config, launch):
    client.force_login(operator)
    assert client.get(reverse("model_launch_cancel", args=[launch.pk])).status_code == 405
    assert client.get(reverse("model_launch_terminate", args=[launch.pk])).status_code == 405
    create_url = reverse("model_launch_create", args=["embedding", config.pk])
    assert client.get(create_url).status_code == 405


def test_the_stack_page_lists_its_launches(client, team, operator, viewer, stack, launch):
    chat = do_create_model_config_from_preset("qwen2-instruct-7b", team=team, user=operator)
    loading = do_launch_model(chat, stack=stack, user=operator)
    set_state(loading, status=LaunchStatus.LAUNCHING, progress=0.3, stage="loading (30%)")
    client.force_login(viewer)
    html = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert 'id="models"' in html
    assert launch_url(launch) in html and launch_url(loading) in html
    assert "Embedding model" in html and "Chat model" in html
    assert "Pending" in html and "Launching" in html and "loading (30%)" in html


def test_the_stack_page_says_when_no_model_is_launched(client, viewer, stack):
    client.force_login(viewer)
    html = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert "No models launched on this stack yet" in html


def test_the_config_page_lists_its_launches_with_links(client, viewer, config, launch):
    set_state(launch, status=LaunchStatus.READY, stage="ready", run_status=RunStatus.SUCCEEDED)
    client.force_login(viewer)
    html = client.get(config_url(config)).content.decode()
    assert launch_url(launch) in html and "prod" in html and "Ready" in html


def _step(launch: ModelLaunch, index: int, name: str, status: StepStatus) -> None:
    now = timezone.now()
    StepRun.objects.create(
        run_id=launch.run_id,
        index=index,
        name=name,
        status=status,
        started_at=now,
        finished_at=None if status == StepStatus.RUNNING else now,
    )


def test_a_ready_model_being_wired_in_keeps_the_page_polling_and_shows_how_far(
    client, viewer, launch
):
    set_state(launch, status=LaunchStatus.READY, progress=1.0, run_status=RunStatus.RUNNING)
    _step(launch, 6, "update One API", StepStatus.SUCCEEDED)
    _step(launch, 7, "update FastGPT", StepStatus.RUNNING)
    client.force_login(viewer)

    html = client.get(launch_url(launch), HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 2s"' in html
    assert 'id="wiring-oneapi" data-state="done"' in html
    assert 'id="wiring-fastgpt" data-state="running"' in html
    assert "this page follows until FastGPT has it" in html


def test_the_page_says_when_fastgpt_has_the_model_and_stops_polling(client, viewer, launch):
    set_state(launch, status=LaunchStatus.READY, progress=1.0, run_status=RunStatus.SUCCEEDED)
    _step(launch, 6, "update One API", StepStatus.SUCCEEDED)
    _step(launch, 7, "update FastGPT", StepStatus.SUCCEEDED)
    _step(launch, 8, "check FastGPT", StepStatus.SUCCEEDED)
    client.force_login(viewer)

    html = client.get(launch_url(launch), HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in html
    assert 'id="wiring-fastgpt" data-state="done"' in html
    assert "Has the model: pick it in a knowledge base or a chat app." in html


def test_a_wiring_that_failed_shows_the_runs_error_on_a_ready_model(client, viewer, launch):
    set_state(launch, status=LaunchStatus.READY, progress=1.0, run_status=RunStatus.FAILED)
    PipelineRun.objects.filter(pk=launch.run_id).update(error="One API refused the channel.")
    _step(launch, 6, "update One API", StepStatus.FAILED)
    client.force_login(viewer)

    html = client.get(launch_url(launch)).content.decode()
    assert "adding it to One API and FastGPT failed:" in html
    assert "One API refused the channel." in html
    assert 'id="wiring-oneapi" data-state="failed"' in html


def test_the_config_pages_launch_list_polls_until_the_launch_run_ends(
    client, viewer, config, launch
):
    client.force_login(viewer)
    polling = 'hx-select="#launch-list"'

    set_state(launch, status=LaunchStatus.READY, progress=1.0, run_status=RunStatus.RUNNING)
    wiring = client.get(config_url(config)).content.decode()
    assert polling in wiring
    assert "adding it to One API and FastGPT" in wiring

    set_state(launch, run_status=RunStatus.SUCCEEDED)
    done = client.get(config_url(config)).content.decode()
    assert polling not in done
    assert "adding it to One API and FastGPT" not in done
