"""The idle guard's steps, one run each, and "Start again", which undoes them.

- notify: tell the team's channels that the server is idle;
- stop models: terminate the ready models in each stack's Xinference, remembering them;
- stop stacks: `compose stop` each stack (containers kept, data kept), remembering them and
  the models that ran in them;
- power off: `shutdown -h now` on the server, once the grace period has passed.

The models stay in One API's channel and FastGPT's config.json while they are stopped: they
come back under the same names. "Start again" starts the stopped stacks (`compose start`),
waits until they are healthy, then launches the remembered models again, one launch run
each, as "Launch on stack" would.

Run params: `server_id`; "Start again" also `stacks` and `launches` (ids), what was stopped.
"""

from celery import signature
from django.db import transaction
from django.utils import timezone

from .. import audit
from ..choices import Health, LaunchStatus, PipelineKind, ServiceState, StackStatus
from ..clients.ssh import SSHError
from ..clients.xinference import XinferenceError
from ..idle import notes, notices
from ..idle.detect import WATCHED_STACK_STATUSES
from ..llm import kind_of
from ..models import IdleGuard, IdleState, IdleStep, ModelLaunch, PipelineRun, Service, Stack
from ..servers.sessions import open_session
from ..stacks.compose import compose_argv, server_facts
from ..stacks.render import RenderedStack
from ..stacks.xinference_access import xinference_client
from .registry import register
from .stack_steps import wait_for_health
from .steps import Pipeline, StepContext, StepFailed

POWER_OFF_COMMAND = ("shutdown", "-h", "now")
# The task that runs a pipeline, found by name: pipelines sit below the tasks' layer.
RUN_TASK = "deployments.tasks.run_pipeline"
STOPPED_STAGE = "stopped by the idle guard"
RUNNING_LAUNCHES = (LaunchStatus.PENDING, LaunchStatus.LAUNCHING, LaunchStatus.READY)


def guard_of(ctx: StepContext) -> IdleGuard:
    return IdleGuard.objects.select_related("server__team").get(server_id=ctx.params["server_id"])


def _stacks(guard: IdleGuard) -> list[Stack]:
    return list(
        guard.server.stacks.filter(status__in=WATCHED_STACK_STATUSES)
        .exclude(pk__in=guard.stopped_stacks or [])
        .order_by("pk")
    )


def _remember(guard: IdleGuard, *, launches=(), stacks=()) -> None:
    guard.stopped_launches = sorted({*guard.stopped_launches, *launches})
    guard.stopped_stacks = sorted({*guard.stopped_stacks, *stacks})
    IdleGuard.objects.filter(pk=guard.pk).update(
        stopped_launches=guard.stopped_launches, stopped_stacks=guard.stopped_stacks
    )


def _mark_stopped(launch_ids: list[int]) -> None:
    ModelLaunch.objects.filter(pk__in=launch_ids).update(
        status=LaunchStatus.TERMINATED, stage=STOPPED_STAGE, progress=0.0
    )


def _tell(guard: IdleGuard, step: str, text: str) -> None:
    if guard.notify:
        notices.idle_step(guard, step, text)


# The steps -----------------------------------------------------------------------------------


def notify_team(ctx: StepContext) -> str:
    guard = guard_of(ctx)
    sent = notices.idle_warning(guard, with_note=True)
    return f"{guard.server.name} is idle: {sent} channel(s) told."


def stop_models(ctx: StepContext) -> str:
    guard = guard_of(ctx)
    stopped = []
    for stack in _stacks(guard):
        launches = list(ModelLaunch.objects.filter(stack=stack, status=LaunchStatus.READY))
        if not launches:
            continue
        try:
            with xinference_client(stack) as client:
                running = client.models()
                for launch in launches:
                    if launch.model_uid in running:
                        client.terminate(launch.model_uid)
                    ctx.log(f"{launch.model_uid} stopped on {stack.name}")
                    _mark_stopped([launch.pk])
                    _remember(guard, launches=[launch.pk])
                    stopped.append(launch.model_uid)
        except XinferenceError as error:
            raise StepFailed(str(error)) from error
    said = (
        f"Stopped {', '.join(stopped)}; “Start again” launches them again."
        if stopped
        else "No model was running."
    )
    _tell(guard, IdleStep.STOP_MODELS, said)
    return said


def stop_stacks(ctx: StepContext) -> str:
    guard = guard_of(ctx)
    stacks = _stacks(guard)
    if not stacks:
        return "No stack was running."
    with open_session(guard.server) as client:
        facts = server_facts(client)
        for stack in stacks:
            client.run(
                [*compose_argv(client, stack, facts), "stop"],
                sudo=True,
                timeout=600,
                on_output=ctx.log,
            )
            # Xinference stopped with its container: its models come back with "Start again".
            # Only those that ran or were launching: a launch whose run failed or was cancelled
            # before the model was ready still says "launching" in its row.
            ended = [
                launch.pk
                for launch in ModelLaunch.objects.filter(
                    stack=stack, status__in=RUNNING_LAUNCHES
                ).select_related("run")
                if launch.is_active
            ]
            _mark_stopped(ended)
            Service.objects.filter(stack=stack).update(
                state=ServiceState.EXITED, health=Health.UNKNOWN, last_seen_at=timezone.now()
            )
            _remember(guard, launches=ended, stacks=[stack.pk])
            ctx.log(f"{stack.name} stopped")
    said = f"Stopped {', '.join(stack.name for stack in stacks)} (containers and data kept)."
    _tell(guard, IdleStep.STOP_STACKS, said)
    return said


def power_off(ctx: StepContext) -> str:
    guard = guard_of(ctx)
    if guard.state != IdleState.POWER_OFF_PENDING:
        raise StepFailed("Someone pressed “Keep running”: the server stays on.")
    with open_session(guard.server) as client:
        try:
            client.run(list(POWER_OFF_COMMAND), sudo=True, timeout=60)
        except SSHError as error:
            # The server may close the connection as it goes down.
            if error.kind != "unreachable":
                raise
            ctx.log("The connection closed as the server shut down.")
    said = f"{guard.server.name} is powering off; power it on at its provider to use it again."
    _tell(guard, IdleStep.POWER_OFF, said)
    return said


# Start again ---------------------------------------------------------------------------------


def _stopped_stacks(ctx: StepContext) -> list[Stack]:
    return list(
        Stack.objects.filter(
            pk__in=ctx.params.get("stacks") or [], server_id=ctx.params["server_id"]
        ).select_related("server")
    )


def start_stacks(ctx: StepContext) -> str:
    stacks = _stopped_stacks(ctx)
    if not stacks:
        return "No stack was stopped."
    guard = guard_of(ctx)
    try:
        client = open_session(guard.server)
    except SSHError as error:
        raise StepFailed(
            f"{error} If the idle guard powered the server off, power it on at its provider "
            "first, then press “Start again” again."
        ) from error
    with client:
        facts = server_facts(client)
        for stack in stacks:
            client.run(
                [*compose_argv(client, stack, facts), "start"],
                sudo=True,
                timeout=600,
                on_output=ctx.log,
            )
    return f"Started {', '.join(stack.name for stack in stacks)}."


def wait_until_healthy(ctx: StepContext) -> str:
    said = []
    for stack in _stopped_stacks(ctx):
        said.append(
            wait_for_health(ctx, stack, RenderedStack(stack.rendered_files).compose_services())
        )
        Stack.objects.filter(pk=stack.pk).update(status=StackStatus.RUNNING)
    return " ".join(said) or "No stack to wait for."


def _send(run_id: int) -> None:
    signature(RUN_TASK, args=(run_id,)).delay()


def relaunch_models(ctx: StepContext) -> str:
    """A new launch of each remembered model, as "Launch on stack" makes one; a model that
    runs again already (someone launched it meanwhile) is left as it is."""
    guard = guard_of(ctx)
    queued, skipped = [], []
    old = ModelLaunch.objects.filter(
        pk__in=ctx.params.get("launches") or [], stack__server=guard.server
    ).select_related("stack", "llm", "embedding", "rerank")
    for launch in old:
        config = launch.config
        holding = [
            other
            for other in ModelLaunch.objects.filter(
                stack=launch.stack, model_uid=launch.model_uid
            ).select_related("run")
            if other.is_active
        ]
        if config is None or holding:
            skipped.append(launch.model_uid)
            continue
        with transaction.atomic():
            new = ModelLaunch.objects.create(
                team=launch.team,
                stack=launch.stack,
                model_uid=config.model,
                **{kind_of(config).slug: config},
            )
            run = PipelineRun.objects.create(
                team=launch.team,
                kind=PipelineKind.MODEL_LAUNCH,
                params={"launch_id": new.pk, "stack_id": launch.stack_id},
                created_by=ctx.run.created_by,
                heartbeat_at=timezone.now(),
            )
            new.run = run
            new.save(update_fields=["run"])
            audit.record(
                "model.launch",
                actor=ctx.run.created_by,
                target=new,
                details={"model": config.model, "stack": launch.stack.name, "idle_guard": True},
            )
            transaction.on_commit(lambda run_id=run.pk: _send(run_id), robust=True)
        queued.append(f"{config.model} (run #{run.pk})")
        ctx.log(f"launching {config.model} on {launch.stack.name}: run #{run.pk}")
    IdleGuard.objects.filter(pk=guard.pk).update(
        state=IdleState.WATCHING,
        quiet_since=timezone.now(),
        request_counts={},
        steps_taken=[],
        power_off_at=None,
        stopped_launches=[],
        stopped_stacks=[],
        note=[notes.part(notes.STARTED_AGAIN)],
    )
    said = f"Launching {', '.join(queued)}." if queued else "No model to launch again."
    if skipped:
        said += f" Already running or gone: {', '.join(skipped)}."
    return said


NOTIFY = register(Pipeline(kind=PipelineKind.IDLE_NOTIFY, steps=(("notify team", notify_team),)))
STOP_MODELS = register(
    Pipeline(kind=PipelineKind.IDLE_STOP_MODELS, steps=(("stop models", stop_models),))
)
STOP_STACKS = register(
    Pipeline(kind=PipelineKind.IDLE_STOP_STACKS, steps=(("stop stacks", stop_stacks),))
)
POWER_OFF = register(Pipeline(kind=PipelineKind.IDLE_POWER_OFF, steps=(("power off", power_off),)))
START_AGAIN = register(
    Pipeline(
        kind=PipelineKind.IDLE_START_AGAIN,
        steps=(
            ("start stacks", start_stacks),
            ("wait until healthy", wait_until_healthy),
            ("relaunch models", relaunch_models),
        ),
    )
)

# Each step of the guard, by the IdleStep it takes.
STEP_KINDS = {
    IdleStep.NOTIFY: PipelineKind.IDLE_NOTIFY,
    IdleStep.STOP_MODELS: PipelineKind.IDLE_STOP_MODELS,
    IdleStep.STOP_STACKS: PipelineKind.IDLE_STOP_STACKS,
    IdleStep.POWER_OFF: PipelineKind.IDLE_POWER_OFF,
}
