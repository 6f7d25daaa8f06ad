"""Launching, cancelling and terminating models: who may, in which states of the stack and the
launch, and what each queues. The pipelines themselves run elsewhere."""

import pytest
from django.core.exceptions import PermissionDenied

from deployments.actions import ActionError
from deployments.actions.launches import do_cancel_launch, do_launch_model, do_terminate_model
from deployments.choices import LaunchStatus, RunStatus, StackStatus
from deployments.llm.presets import PRESETS
from deployments.models import AuditEvent, ModelLaunch, PipelineRun
from deployments.tasks import run_pipeline
from testkit.factories import add_member, make_deployment, make_run, make_server, make_stack

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """The run ids handed to the broker (after commit, in production)."""
    ids: list[int] = []
    monkeypatch.setattr(run_pipeline, "delay_on_commit", ids.append)
    return ids


@pytest.fixture
def stack(team):
    return make_stack(make_server(team), status=StackStatus.RUNNING)


@pytest.fixture
def config(team):
    config = PRESETS["m3e-base"].build(team)
    config.save()
    return config


def launch_of(stack, config, status, run_status, kind="model.launch") -> ModelLaunch:
    """A launch as the pipeline leaves it: its row's status and its run's."""
    launch = ModelLaunch.objects.create(
        team=stack.team, stack=stack, model_uid=config.model, status=status, embedding=config
    )
    launch.run = make_run(stack.team, status=run_status, kind=kind, params={"launch_id": launch.pk})
    launch.save(update_fields=["run"])
    return launch


# Launch ---------------------------------------------------------------------------------------


def test_an_operator_queues_a_launch_with_its_run_and_an_audit_event(stack, config, operator, sent):
    launch = do_launch_model(config, stack=stack, user=operator)

    assert launch.status == LaunchStatus.PENDING
    assert launch.embedding == config and launch.llm is None and launch.rerank is None
    assert launch.model_uid == "m3e-base"
    assert launch.stack == stack and launch.team == stack.team
    run = launch.run
    assert run.kind == "model.launch"
    assert run.status == RunStatus.QUEUED
    assert run.params["launch_id"] == launch.pk
    assert run.created_by == operator
    assert sent == [run.pk]
    event = AuditEvent.objects.get(action="model.launch")
    assert event.actor == operator
    assert event.target_id == str(launch.pk)
    assert event.details == {"model": "m3e-base", "kind": "embedding", "stack": stack.name}


def test_a_chat_model_launch_points_at_the_chat_config(stack, team, operator, sent):
    chat = PRESETS["qwen2-instruct-7b"].build(team)
    chat.save()
    launch = do_launch_model(chat, stack=stack, user=operator)
    assert launch.llm == chat and launch.embedding is None
    assert launch.config == chat


def test_a_viewer_may_not_launch_a_model(stack, config, viewer, sent):
    with pytest.raises(PermissionDenied):
        do_launch_model(config, stack=stack, user=viewer)
    assert not ModelLaunch.objects.exists()
    assert sent == []


def test_a_member_of_another_team_may_not_launch_the_teams_model(stack, config, other_team, sent):
    outsider = add_member(other_team)
    with pytest.raises(PermissionDenied):
        do_launch_model(config, stack=stack, user=outsider)
    assert not ModelLaunch.objects.exists()


def test_a_model_cannot_be_launched_on_another_teams_stack(config, operator, other_team, sent):
    theirs = make_stack(make_server(other_team), status=StackStatus.RUNNING)
    with pytest.raises(ActionError, match="stack of its own team"):
        do_launch_model(config, stack=theirs, user=operator)
    assert not ModelLaunch.objects.exists()
    assert not PipelineRun.objects.exists()


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (StackStatus.DRAFT, "not deployed"),
        (StackStatus.TORN_DOWN, "torn down"),
    ],
)
def test_a_stack_whose_xinference_is_not_up_refuses_a_launch_with_a_sentence(
    stack, config, operator, sent, status, said
):
    stack.status = status
    stack.save(update_fields=["status"])
    with pytest.raises(ActionError) as refused:
        do_launch_model(config, stack=stack, user=operator)
    message = str(refused.value)
    assert f"“{stack.name}” is {said}" in message
    assert "deploy it before launching" in message
    assert message.endswith(".")
    assert not ModelLaunch.objects.exists()


def test_a_degraded_stack_still_takes_a_launch(stack, config, operator, sent):
    stack.status = StackStatus.DEGRADED
    stack.save(update_fields=["status"])
    assert do_launch_model(config, stack=stack, user=operator).pk


@pytest.mark.parametrize("run_status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_a_deployment_under_way_refuses_a_launch(stack, config, operator, sent, run_status):
    make_deployment(stack, status=run_status)
    with pytest.raises(ActionError, match="under way"):
        do_launch_model(config, stack=stack, user=operator)
    assert not ModelLaunch.objects.exists()


def test_a_finished_deployment_does_not_hold_up_a_launch(stack, config, operator, sent):
    make_deployment(stack, status=RunStatus.SUCCEEDED)
    make_deployment(stack, status=RunStatus.FAILED)
    assert do_launch_model(config, stack=stack, user=operator).pk


@pytest.mark.parametrize(
    ("status", "run_status"),
    [
        (LaunchStatus.PENDING, RunStatus.QUEUED),
        (LaunchStatus.LAUNCHING, RunStatus.RUNNING),
        (LaunchStatus.READY, RunStatus.SUCCEEDED),
        # Ready, though wiring it into FastGPT failed afterwards: the model still runs.
        (LaunchStatus.READY, RunStatus.FAILED),
    ],
)
def test_the_same_model_active_on_the_stack_is_not_launched_twice(
    stack, config, operator, sent, status, run_status
):
    launch_of(stack, config, status, run_status)
    with pytest.raises(ActionError) as refused:
        do_launch_model(config, stack=stack, user=operator)
    message = str(refused.value)
    assert f"“m3e-base” is already {status}" in message
    assert "terminate it first" in message
    assert ModelLaunch.objects.count() == 1
    assert sent == []


@pytest.mark.parametrize(
    ("status", "run_status"),
    [
        (LaunchStatus.FAILED, RunStatus.FAILED),
        (LaunchStatus.TERMINATED, RunStatus.CANCELLED),
        # Its worker died mid-launch: the run failed, the row still says launching.
        (LaunchStatus.LAUNCHING, RunStatus.FAILED),
    ],
)
def test_a_model_whose_launch_stopped_can_be_launched_again(
    stack, config, operator, sent, status, run_status
):
    launch_of(stack, config, status, run_status)
    again = do_launch_model(config, stack=stack, user=operator)
    assert again.status == LaunchStatus.PENDING
    assert ModelLaunch.objects.count() == 2


def test_the_same_model_may_run_on_two_stacks(stack, config, operator, sent, team):
    launch_of(stack, config, LaunchStatus.READY, RunStatus.SUCCEEDED)
    other = make_stack(stack.server, status=StackStatus.RUNNING)
    assert do_launch_model(config, stack=other, user=operator).stack == other


def test_a_model_being_terminated_is_launched_again_only_once_it_has_stopped(
    stack, config, operator, sent
):
    failed = launch_of(stack, config, LaunchStatus.FAILED, RunStatus.FAILED)
    stopping = do_terminate_model(failed, user=operator)
    # Its termination would stop the new launch's model: both have the same uid.
    with pytest.raises(ActionError, match="being terminated"):
        do_launch_model(config, stack=stack, user=operator)
    assert ModelLaunch.objects.count() == 1

    PipelineRun.objects.filter(pk=stopping.pk).update(status=RunStatus.SUCCEEDED)
    ModelLaunch.objects.filter(pk=failed.pk).update(status=LaunchStatus.TERMINATED)
    assert do_launch_model(config, stack=stack, user=operator).pk


# Current status -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "run_status", "shown"),
    [
        (LaunchStatus.PENDING, RunStatus.QUEUED, LaunchStatus.PENDING),
        (LaunchStatus.LAUNCHING, RunStatus.RUNNING, LaunchStatus.LAUNCHING),
        (LaunchStatus.LAUNCHING, RunStatus.FAILED, LaunchStatus.FAILED),
        (LaunchStatus.PENDING, RunStatus.CANCELLED, LaunchStatus.FAILED),
        (LaunchStatus.READY, RunStatus.FAILED, LaunchStatus.READY),
        (LaunchStatus.TERMINATED, RunStatus.CANCELLED, LaunchStatus.TERMINATED),
    ],
)
def test_a_launch_shows_failed_once_its_run_stopped_before_the_model_was_ready(
    stack, config, status, run_status, shown
):
    launch = launch_of(stack, config, status, run_status)
    assert launch.current_status == shown
    assert launch.is_active == (shown in ("pending", "launching", "ready"))


# Cancel ---------------------------------------------------------------------------------------


def test_cancelling_a_queued_launch_terminates_it_at_once(stack, config, operator, sent):
    launch = do_launch_model(config, stack=stack, user=operator)

    cancelled = do_cancel_launch(launch, user=operator)

    assert cancelled.status == LaunchStatus.TERMINATED
    assert cancelled.stage == "cancelled"
    assert cancelled.current_status == LaunchStatus.TERMINATED
    assert cancelled.run.status == RunStatus.CANCELLED
    event = AuditEvent.objects.get(action="model.cancel")
    assert event.actor == operator and event.details["model"] == "m3e-base"
    # The uid is free again.
    assert do_launch_model(config, stack=stack, user=operator).pk != launch.pk


def test_cancelling_a_running_launch_asks_its_worker_to_stop(stack, config, operator):
    launch = launch_of(stack, config, LaunchStatus.LAUNCHING, RunStatus.RUNNING)

    still = do_cancel_launch(launch, user=operator)

    assert still.status == LaunchStatus.LAUNCHING
    still.run.refresh_from_db()
    assert still.run.cancel_requested is True
    assert still.run.status == RunStatus.RUNNING


@pytest.mark.parametrize(
    ("status", "run_status"),
    [
        (LaunchStatus.READY, RunStatus.SUCCEEDED),
        (LaunchStatus.TERMINATED, RunStatus.CANCELLED),
        (LaunchStatus.LAUNCHING, RunStatus.FAILED),
    ],
)
def test_only_a_launch_under_way_can_be_cancelled(stack, config, operator, status, run_status):
    launch = launch_of(stack, config, status, run_status)
    with pytest.raises(ActionError, match="Only a launch under way can be cancelled"):
        do_cancel_launch(launch, user=operator)
    launch.refresh_from_db()
    assert launch.status == status
    assert not AuditEvent.objects.filter(action="model.cancel").exists()


def test_a_viewer_may_not_cancel_a_launch(stack, config, viewer):
    launch = launch_of(stack, config, LaunchStatus.PENDING, RunStatus.QUEUED)
    with pytest.raises(PermissionDenied):
        do_cancel_launch(launch, user=viewer)
    launch.run.refresh_from_db()
    assert launch.run.status == RunStatus.QUEUED


# Terminate ------------------------------------------------------------------------------------


def test_terminating_a_ready_model_queues_its_termination(stack, config, operator, sent):
    launch = launch_of(stack, config, LaunchStatus.READY, RunStatus.SUCCEEDED)

    run = do_terminate_model(launch, user=operator)

    assert run.kind == "model.terminate"
    assert run.status == RunStatus.QUEUED
    assert run.params == {"launch_id": launch.pk, "stack_id": stack.pk}
    assert sent == [run.pk]
    event = AuditEvent.objects.get(action="model.terminate")
    assert event.details == {"model": "m3e-base", "stack": stack.name, "was": "ready"}
    # Until the run has stopped it, the model still holds its uid.
    launch.refresh_from_db()
    assert launch.status == LaunchStatus.READY


def test_a_model_already_being_terminated_is_not_terminated_twice(stack, config, operator, sent):
    launch = launch_of(stack, config, LaunchStatus.READY, RunStatus.SUCCEEDED)
    do_terminate_model(launch, user=operator)
    with pytest.raises(ActionError, match="already being terminated"):
        do_terminate_model(launch, user=operator)
    assert PipelineRun.objects.filter(kind="model.terminate").count() == 1


@pytest.mark.parametrize(
    ("status", "run_status"),
    [(LaunchStatus.PENDING, RunStatus.QUEUED), (LaunchStatus.LAUNCHING, RunStatus.RUNNING)],
)
def test_a_launch_under_way_is_cancelled_not_terminated(
    stack, config, operator, sent, status, run_status
):
    launch = launch_of(stack, config, status, run_status)
    with pytest.raises(ActionError, match="cancel the launch instead"):
        do_terminate_model(launch, user=operator)
    assert not PipelineRun.objects.filter(kind="model.terminate").exists()


def test_a_terminated_model_is_not_terminated_again(stack, config, operator, sent):
    launch = launch_of(stack, config, LaunchStatus.TERMINATED, RunStatus.SUCCEEDED)
    with pytest.raises(ActionError, match="already terminated"):
        do_terminate_model(launch, user=operator)
    assert sent == []


def test_a_failed_launch_can_be_terminated_to_clear_what_it_left(stack, config, operator, sent):
    launch = launch_of(stack, config, LaunchStatus.LAUNCHING, RunStatus.FAILED)
    run = do_terminate_model(launch, user=operator)
    assert run.kind == "model.terminate"
    assert AuditEvent.objects.get(action="model.terminate").details["was"] == "failed"


def test_an_old_failed_launch_is_not_terminated_while_a_newer_one_holds_its_uid(
    stack, config, operator, sent
):
    old = launch_of(stack, config, LaunchStatus.FAILED, RunStatus.FAILED)
    launch_of(stack, config, LaunchStatus.READY, RunStatus.SUCCEEDED)
    # Xinference knows the model by its uid alone: stopping the old one stops the new one.
    with pytest.raises(ActionError, match="terminate that launch"):
        do_terminate_model(old, user=operator)
    assert not PipelineRun.objects.filter(kind="model.terminate").exists()


def test_a_viewer_may_not_terminate_a_model(stack, config, viewer, sent):
    launch = launch_of(stack, config, LaunchStatus.READY, RunStatus.SUCCEEDED)
    with pytest.raises(PermissionDenied):
        do_terminate_model(launch, user=viewer)
    assert sent == []
