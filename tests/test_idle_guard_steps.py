"""The idle guard's steps send exactly these commands (a recording SSH client and Xinference
client stand in for the server; test_model_launch_real.py runs them on a deployed stack), remember
what they stopped, and "Start again" starts the stacks and launches the remembered models
again."""

from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.utils import translation

from deployments.actions import ActionError
from deployments.actions.idle import do_start_again
from deployments.choices import (
    LaunchStatus,
    PipelineKind,
    RunStatus,
    ServiceState,
    StackStatus,
)
from deployments.idle import notes, notices
from deployments.llm.presets import PRESETS
from deployments.models import IdleGuard, IdleState, ModelLaunch, PipelineRun, Service
from deployments.pipelines import idle_steps, runner
from deployments.stacks.render import project_name, render
from deployments.stacks.secrets import stack_secrets
from testkit.factories import make_run, make_server, make_stack

pytestmark = pytest.mark.django_db

WORKER = "test-worker:1"


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    exit_status: int = 0


@dataclass
class RecordingClient:
    """Records each command and its sudo; `test -f` finds no override file."""

    calls: list[tuple[list[str], bool]] = field(default_factory=list)

    def run(self, argv, *, sudo=False, check=True, **options):
        argv = list(argv)
        self.calls.append((argv, sudo))
        return Result(exit_status=1 if argv[:2] == ["test", "-f"] else 0)

    def commands(self) -> list[list[str]]:
        return [argv for argv, _sudo in self.calls if argv[:2] != ["test", "-f"]]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def close(self):
        pass


@dataclass
class FakeXinference:
    running: set[str]
    terminated: list[str] = field(default_factory=list)

    def models(self):
        return {uid: {} for uid in self.running}

    def terminate(self, uid):
        self.terminated.append(uid)
        self.running.discard(uid)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass


@pytest.fixture
def ssh(monkeypatch):
    recording = RecordingClient()
    monkeypatch.setattr(idle_steps, "open_session", lambda server: recording)
    monkeypatch.setattr(idle_steps, "server_facts", lambda client: {"compose": {"variant": "v1"}})
    return recording


@pytest.fixture
def xinference(monkeypatch):
    fake = FakeXinference(running={"qwen2"})
    monkeypatch.setattr(idle_steps, "xinference_client", lambda stack: fake)
    return fake


@pytest.fixture
def stack(team):
    server = make_server(team, name="gpu-1", hourly_price=Decimal("3"))
    stack = make_stack(server, name="chatbot", data_dir="/srv/chatbot", status=StackStatus.RUNNING)
    stack.rendered_files = render(stack, stack_secrets(stack)).shown()
    stack.save()
    return stack


@pytest.fixture
def guard(stack):
    return IdleGuard.objects.create(
        server=stack.server, enabled=True, stop_stacks=True, power_off=True, state="idle"
    )


@pytest.fixture
def launch(stack):
    config = PRESETS["qwen2-instruct-7b"].build(stack.team)
    config.model = "qwen2"
    config.save()
    return ModelLaunch.objects.create(
        team=stack.team, stack=stack, model_uid="qwen2", llm=config, status=LaunchStatus.READY
    )


def run_step(guard, kind, user=None, **params):
    run = make_run(
        guard.server.team,
        status=RunStatus.QUEUED,
        kind=kind,
        params={"server_id": guard.server_id, **params},
        created_by=user,
    )
    runner.run(run.pk, WORKER)
    run.refresh_from_db()
    guard.refresh_from_db()
    return run


def compose(stack, *tail):
    return [
        "docker-compose",
        "--project-name",
        project_name(stack),
        "--project-directory",
        "/srv/chatbot",
        "--file",
        "/srv/chatbot/docker-compose.yml",
        "--env-file",
        "/srv/chatbot/.env",
        *tail,
    ]


def test_stopping_the_models_terminates_them_in_xinference_and_remembers_them(
    guard, launch, xinference
):
    run = run_step(guard, PipelineKind.IDLE_STOP_MODELS)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.title == "Stop the idle models on gpu-1"
    assert xinference.terminated == ["qwen2"]
    launch.refresh_from_db()
    assert launch.status == LaunchStatus.TERMINATED
    assert launch.stage == "stopped by the idle guard"
    assert guard.stopped_launches == [launch.pk]


def test_stopping_the_stacks_sends_compose_stop_and_marks_the_services_exited(
    guard, stack, launch, ssh
):
    Service.objects.create(stack=stack, name="fastgpt", state=ServiceState.RUNNING)
    run = run_step(guard, PipelineKind.IDLE_STOP_STACKS)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert ssh.commands() == [compose(stack, "stop")]
    assert [sudo for argv, sudo in ssh.calls if argv[0] != "test"] == [True]
    assert guard.stopped_stacks == [stack.pk]
    # Xinference stopped with its container: the model is remembered too.
    assert guard.stopped_launches == [launch.pk]
    assert Service.objects.get(stack=stack).state == ServiceState.EXITED


def test_stopping_the_stacks_leaves_out_a_launch_whose_run_failed(guard, stack, launch, ssh):
    config = PRESETS["qwen2-instruct-7b"].build(stack.team)
    config.model = "refused"
    config.save()
    # Its row still says launching: its run failed before the model was ready.
    failed = ModelLaunch.objects.create(
        team=stack.team,
        stack=stack,
        model_uid="refused",
        llm=config,
        status=LaunchStatus.LAUNCHING,
        run=make_run(stack.team, status=RunStatus.FAILED, kind=PipelineKind.MODEL_LAUNCH),
    )
    run = run_step(guard, PipelineKind.IDLE_STOP_STACKS)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert guard.stopped_launches == [launch.pk]
    failed.refresh_from_db()
    assert failed.status == LaunchStatus.LAUNCHING


def test_the_power_off_sends_shutdown_after_the_grace_period_only(guard, ssh):
    refused = run_step(guard, PipelineKind.IDLE_POWER_OFF)
    assert refused.status == RunStatus.FAILED
    assert "Keep running" in refused.error
    assert ssh.calls == []

    IdleGuard.objects.filter(pk=guard.pk).update(state=IdleState.POWER_OFF_PENDING)
    run = run_step(guard, PipelineKind.IDLE_POWER_OFF)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert ssh.calls == [(["shutdown", "-h", "now"], True)]
    assert run.title == "Power off idle server gpu-1"


def test_start_again_starts_the_stacks_and_relaunches_the_remembered_models(
    guard, stack, launch, ssh, operator, viewer, monkeypatch
):
    launch.status = LaunchStatus.TERMINATED
    launch.save()
    IdleGuard.objects.filter(pk=guard.pk).update(
        state=IdleState.STOPPED, stopped_launches=[launch.pk], stopped_stacks=[stack.pk]
    )
    monkeypatch.setattr(idle_steps, "wait_for_health", lambda ctx, stack, services: "healthy")
    with pytest.raises(Exception, match="operator"):
        do_start_again(stack.server, user=viewer)

    run = do_start_again(stack.server, user=operator)
    assert run.kind == PipelineKind.IDLE_START_AGAIN
    assert run.params == {
        "server_id": stack.server_id,
        "stacks": [stack.pk],
        "launches": [launch.pk],
    }
    runner.run(run.pk, WORKER)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert ssh.commands() == [compose(stack, "start")]

    relaunched = ModelLaunch.objects.exclude(pk=launch.pk).get()
    assert relaunched.model_uid == "qwen2" and relaunched.llm_id == launch.llm_id
    assert relaunched.run.kind == PipelineKind.MODEL_LAUNCH
    assert relaunched.run.status == RunStatus.QUEUED
    assert relaunched.run.created_by == operator
    assert relaunched.run.params == {"launch_id": relaunched.pk, "stack_id": stack.pk}
    guard.refresh_from_db()
    assert guard.state == IdleState.WATCHING
    assert guard.stopped_launches == [] and guard.stopped_stacks == []
    with pytest.raises(ActionError, match="stopped nothing"):
        do_start_again(stack.server, user=operator)
    assert PipelineRun.objects.filter(kind=PipelineKind.IDLE_START_AGAIN).count() == 1


def test_after_a_power_off_alone_start_again_sets_the_guard_watching(guard, ssh, operator):
    IdleGuard.objects.filter(pk=guard.pk).update(state=IdleState.STOPPED)
    run = do_start_again(guard.server, user=operator)
    runner.run(run.pk, WORKER)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert ssh.calls == []
    guard.refresh_from_db()
    assert guard.state == IdleState.WATCHING


def test_telling_the_team_writes_the_checks_note_in_the_panels_language(
    guard, settings, monkeypatch
):
    settings.LANGUAGE_CODE = "zh-hans"
    sent = []
    monkeypatch.setattr(notices, "notify", lambda *args: sent.append(args[3]) or 1)
    IdleGuard.objects.filter(pk=guard.pk).update(note=[notes.part(notes.IDLE, minutes=75)])
    run = run_step(guard, PipelineKind.IDLE_NOTIFY)
    assert run.status == RunStatus.SUCCEEDED, run.error
    with translation.override("zh-hans"):
        chinese = translation.gettext(notes.SENTENCES[notes.IDLE]) % {"minutes": 75}
    assert sent == [chinese]
    assert "Idle for" not in chinese
