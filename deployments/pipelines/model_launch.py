"""Launch a model config on a stack's Xinference, check it, and wire it into One API and
FastGPT; and the way back: terminate it and unwire it.

Launch: check that it fits the server's free GPU memory, register the weights when they are at
a local path, launch without blocking, follow Xinference's progress until the model is ready
(a cancel stops the launch in Xinference too), run the smoke test, then update One API's channel
and FastGPT's config.json from every ready model of the stack.

Each step can run again: a launch already under way or ready in Xinference is followed rather
than started twice, and the wiring is computed from the ready launches each time.
"""

import dataclasses
import time

from django.conf import settings

from ..choices import Device, LaunchStatus, ModelHub, ModelKind, PipelineKind
from ..clients.ssh import SSHError
from ..clients.xinference import (
    INFERENCE_TIMEOUT,
    LAUNCHING,
    InstanceStatus,
    XinferenceClient,
    XinferenceError,
)
from ..errors import WaitTimedOut
from ..llm import kind_of
from ..llm import smoke as smoke_checks
from ..llm.fit import check_fit
from ..llm.launch import (
    WEIGHTS_FILE_NAMES,
    WeightsError,
    WeightsFiles,
    launch_body,
    model_type,
    registration_spec,
    served_name,
)
from ..llm.wiring import models_lock, update_fastgpt, update_oneapi, verify_fastgpt
from ..logs.redact import mask_text
from ..models import ModelLaunch
from ..notifications import notify
from ..servers.facts import gather_facts
from ..servers.sessions import open_session
from ..stacks.xinference_access import (
    launch_error_from_log,
    relay_key,
    xinference_client,
    xinference_container,
)
from ..waiting import wait_for
from .registry import register
from .steps import Pipeline, RunCancelled, StepContext, StepFailed

# Logins to Xinference last 30 minutes: a long wait signs in again before that.
RELOGIN_SECONDS = 20 * 60
# A progress line in the output at most this often, besides every change of stage.
PROGRESS_LOG_SECONDS = 10


def launch_of(ctx: StepContext) -> ModelLaunch:
    return ModelLaunch.objects.select_related(
        "stack__server", "llm", "embedding", "rerank", "team"
    ).get(pk=ctx.params["launch_id"])


def _set(launch: ModelLaunch, **fields) -> None:
    for name, value in fields.items():
        setattr(launch, name, value)
    ModelLaunch.objects.filter(pk=launch.pk).update(**fields)


def _xinference(launch: ModelLaunch, **kwargs) -> XinferenceClient:
    try:
        return xinference_client(launch.stack, **kwargs)
    except XinferenceError as error:
        raise StepFailed(str(error)) from error


# Launch --------------------------------------------------------------------------------------


def check_gpu_fit(ctx: StepContext) -> str:
    launch = launch_of(ctx)
    config = launch.config
    _set(launch, status=LaunchStatus.LAUNCHING, stage="checking the server's GPUs", progress=0.0)
    if config.device == Device.CPU:
        return "The model runs on the CPU: no GPU memory needed."
    with open_session(launch.stack.server) as ssh:
        facts = gather_facts(ssh, sudo=True)
    fit = check_fit(facts, config.gpu_memory_mib, config.gpu_count, config.device)
    if not fit.fits:
        raise StepFailed(fit.message)
    if fit.warning:
        ctx.log(f"Warning: {fit.message}")
    return fit.message


def _read_weights_files(ssh, stack, folder: str) -> WeightsFiles:
    """The weights' files as the Xinference container sees them: the path is its own."""
    container = xinference_container(ssh, stack)
    if container is None:
        raise StepFailed("The stack has no xinference container: deploy the stack again.")

    def inside(*argv: str):
        return ssh.run(["docker", "exec", container, *argv], sudo=True, check=False, timeout=60)

    if inside("test", "-d", folder).exit_status != 0:
        raise StepFailed(
            f"There is no folder {folder} inside the xinference container: check the local "
            "path, and that the folder is mounted into the container (an override file)."
        )
    texts = {}
    for field, name in WEIGHTS_FILE_NAMES.items():
        result = inside("cat", f"{folder}/{name}")
        texts[field] = result.stdout if result.exit_status == 0 else None
    return WeightsFiles(**texts)


def register_weights(ctx: StepContext) -> str:
    launch = launch_of(ctx)
    config = launch.config
    if not config.local_path:
        hub = ModelHub(config.hub).label
        return f"{config.xinference_model_name} is Xinference's own; it downloads from {hub}."
    _set(launch, stage="registering the local weights")
    with open_session(launch.stack.server) as ssh:
        files = _read_weights_files(ssh, launch.stack, config.local_path)
    try:
        spec = registration_spec(config, files)
    except WeightsError as error:
        raise StepFailed(str(error)) from error
    kind = model_type(config)
    name = served_name(config)
    with _xinference(launch) as client:
        try:
            known = client.registrations(kind)
            custom = [entry["model_name"] for entry in known if not entry.get("is_builtin")]
            if name in custom:
                # Registered by an earlier launch: the folder may have changed since.
                client.unregister(kind, name)
            client.register(kind, spec)
        except XinferenceError as error:
            raise StepFailed(str(error)) from error
    return f"Registered {config.local_path} as the custom {kind} model {name!r}."


def start_launch(ctx: StepContext) -> str:
    launch = launch_of(ctx)
    config = launch.config
    uid = launch.model_uid
    _set(launch, stage="asking Xinference to launch")
    with _xinference(launch) as client:
        try:
            state = client.instance_status(uid)
            if state is not None and (state.ready or state.status in LAUNCHING):
                return f"{uid} is already {state.status.lower()} in Xinference: following it."
            if state is not None and uid in client.models():
                # An earlier launch that ended otherwise still holds the uid.
                ctx.log(f"Removing the earlier {state.status.lower()} instance of {uid}.")
                client.terminate(uid)
            client.launch(launch_body(config))
        except XinferenceError as error:
            if not error.timed_out:
                raise StepFailed(str(error)) from error
            # Before 1.5 the launch call answers only once the model is ready.
            ctx.log("Xinference has not answered yet; following the launch by its status.")
    return f"Xinference is launching {served_name(config)!r} as {uid!r}."


def _stage_text(status: str, stage: str, progress: float | None) -> str:
    text = (stage or status).replace("_", " ").lower()
    return f"{text} ({progress:.0%})" if progress is not None else text


class _LaunchWatch:
    """Follows one launch in Xinference: signs in again before a login expires, records the
    stage and progress on the launch, and logs a line on each change of stage."""

    def __init__(self, ctx: StepContext, launch: ModelLaunch) -> None:
        self.ctx, self.launch = ctx, launch
        self.client = _xinference(launch)
        self.signed_in = time.monotonic()
        self.logged_at = 0.0
        self.status, self.stage = "CREATING", ""

    def ready(self) -> bool | None:
        """True once the model is ready; raises StepFailed when its launch failed."""
        uid = self.launch.model_uid
        if time.monotonic() - self.signed_in > RELOGIN_SECONDS:
            self.client.close()
            self.client = _xinference(self.launch)
            self.signed_in = time.monotonic()
        try:
            state = self.client.instance_status(uid)
            report = self.client.launch_progress(uid) if state and not state.ready else None
        except XinferenceError as error:
            if error.permanent:
                raise StepFailed(str(error)) from error
            state, report = None, None
            self.ctx.log(f"Xinference did not answer ({error}); asking again.")
        if state is not None and state.ready:
            _set(self.launch, progress=1.0, stage="loaded")
            return True
        if state is not None and state.failed:
            if not state.error:
                state = dataclasses.replace(
                    state, error=_reason_in_log(self.ctx, self.launch, state)
                )
            try:
                state.raise_for_error()
            except XinferenceError as error:
                raise StepFailed(str(error)) from error
        self.status = state.status if state else "CREATING"
        progress = report.progress if report else None
        stage = _stage_text(self.status, report.stage if report else "", progress)
        _set(self.launch, stage=stage[:200], progress=progress or 0.0)
        now = time.monotonic()
        if stage != self.stage or now - self.logged_at >= PROGRESS_LOG_SECONDS:
            self.ctx.log(f"{uid}: {stage}")
            self.stage, self.logged_at = stage, now
        return None

    def check_cancel(self) -> None:
        """A cancel of the run stops the launch in Xinference too."""
        try:
            self.ctx.check_cancel()
        except RunCancelled:
            _cancel(self.ctx, self.client, self.launch)
            raise


def wait_until_ready(ctx: StepContext) -> str:
    launch = launch_of(ctx)
    uid = launch.model_uid
    timeout = settings.MODEL_LAUNCH_TIMEOUT
    started = time.monotonic()
    watch = _LaunchWatch(ctx, launch)
    try:
        wait_for(
            watch.ready,
            timeout=timeout,
            interval=settings.MODEL_LAUNCH_POLL_SECONDS,
            check_cancel=watch.check_cancel,
            on_timeout=lambda: (
                f"{uid} is still {watch.status.lower()} after {timeout} s ({watch.stage}); "
                "Xinference reports no error. The launch goes on in Xinference: retry to wait "
                "longer, or terminate the model."
            ),
        )
    finally:
        watch.client.close()
    return f"{uid} is ready after {time.monotonic() - started:.0f} s."


def _reason_in_log(ctx: StepContext, launch: ModelLaunch, state: InstanceStatus) -> str | None:
    """Releases before 1.5 keep a failed launch's reason only in their log: read it there."""
    try:
        reason = launch_error_from_log(launch.stack, (state.uid, state.model_name))
    except SSHError as error:
        ctx.log(f"The xinference log could not be read for the reason: {error}")
        return None
    return mask_text(launch.stack_id, reason, service="xinference") if reason else reason


def _cancel(ctx: StepContext, client: XinferenceClient, launch: ModelLaunch) -> None:
    """Stop the launch in Xinference as well. The cancelled instance stays listed as ERROR,
    holding nothing: a later launch of the uid replaces it."""
    uid = launch.model_uid
    try:
        state = client.instance_status(uid)
        if state is not None and state.status in LAUNCHING:
            ctx.log(f"Cancelling the launch of {uid} in Xinference.")
            try:
                client.cancel(uid)
            except XinferenceError as error:
                if error.status_code != 404:
                    raise
                state = _wait_out_launch(ctx, client, uid)
        if state is not None and state.ready:
            client.terminate(uid)
            ctx.log(f"{uid} had loaded: stopped in Xinference.")
    except XinferenceError as error:
        ctx.log(f"Xinference could not cancel the launch of {uid}: {error}")
    _set(launch, status=LaunchStatus.TERMINATED, stage="cancelled")


def _wait_out_launch(ctx: StepContext, client: XinferenceClient, uid: str) -> InstanceStatus | None:
    """Before 1.5 a launch cannot be cancelled, nor a launching model stopped: wait for the
    launch to end, so that a model that loads is stopped rather than left holding its GPUs."""
    ctx.log(
        "This Xinference cannot stop a launch under way (that came in 1.5): the model is "
        "stopped once its launch has ended."
    )
    timeout = settings.MODEL_LAUNCH_TIMEOUT
    last: list[InstanceStatus | None] = [None]

    def ended() -> bool | None:
        last[0] = client.instance_status(uid)
        return True if last[0] is None or last[0].status not in LAUNCHING else None

    try:
        # The run is already cancelled: this wait is the cancel's own, so it is not cut short.
        wait_for(
            ended,
            timeout=timeout,
            interval=settings.MODEL_LAUNCH_POLL_SECONDS,
            on_timeout=lambda: (
                f"{uid} is still {last[0].status.lower()} after {timeout} s: stop it in "
                "Xinference once it has loaded."
            ),
        )
    except WaitTimedOut as timed_out:
        ctx.log(str(timed_out))
    return last[0]


def smoke_test(ctx: StepContext) -> str:
    launch = launch_of(ctx)
    config = launch.config
    kind = kind_of(config).kind
    _set(launch, stage="smoke test")
    with _xinference(launch, timeout=INFERENCE_TIMEOUT) as client:
        if kind == ModelKind.LLM:
            # The prompt and the answer must fit the model's context together.
            budget = max(16, min(smoke_checks.CHAT_MAX_TOKENS, config.max_context // 4))
            result = smoke_checks.check_chat(client, launch.model_uid, max_tokens=budget)
        elif kind == ModelKind.EMBEDDING:
            result = smoke_checks.check_embedding(client, launch.model_uid, config.dimensions)
        else:
            result = smoke_checks.check_rerank(client, launch.model_uid)
    _set(launch, smoke_test=result.as_dict())
    if not result.passed:
        ctx.log(f"Smoke test FLAGGED the model: {result.message}")
        notify.smoke_test_flagged(launch, result.message)
        return f"Flagged: {result.message}"
    return f"Passed: {result.message}"


def mark_ready(ctx: StepContext) -> str:
    launch = launch_of(ctx)
    _set(launch, status=LaunchStatus.READY, progress=1.0, stage="ready")
    return f"{launch.model_uid} is ready on {launch.stack.name}."


# Wiring, shared by launch and terminate ------------------------------------------------------


def wire_oneapi(ctx: StepContext) -> str:
    launch = launch_of(ctx)
    stack = launch.stack
    with _xinference(launch) as client:
        try:
            key = relay_key(stack, client)
        except XinferenceError as error:
            raise StepFailed(str(error)) from error
    with models_lock(stack):
        return update_oneapi(stack, ctx.log, key, ctx.check_cancel)


def wire_fastgpt(ctx: StepContext) -> str:
    stack = launch_of(ctx).stack
    with models_lock(stack):
        return update_fastgpt(stack, ctx.log)


def check_fastgpt(ctx: StepContext) -> str:
    return verify_fastgpt(launch_of(ctx).stack, ctx.log, ctx.check_cancel)


# Terminate -----------------------------------------------------------------------------------


def stop_model(ctx: StepContext) -> str:
    launch = launch_of(ctx)
    uid = launch.model_uid
    with _xinference(launch) as client:
        try:
            # A failed or cancelled launch is listed as ERROR but holds nothing to stop.
            if uid not in client.models():
                said = f"{uid} was not running in Xinference."
            else:
                client.terminate(uid)
                said = f"{uid} stopped in Xinference."
        except XinferenceError as error:
            raise StepFailed(str(error)) from error
    _set(launch, status=LaunchStatus.TERMINATED, stage="terminated", progress=0.0)
    return said


WIRING = (
    ("update One API", wire_oneapi),
    ("update FastGPT", wire_fastgpt),
    ("check FastGPT", check_fastgpt),
)

LAUNCH = register(
    Pipeline(
        kind=PipelineKind.MODEL_LAUNCH,
        steps=(
            ("check GPU memory", check_gpu_fit),
            ("register weights", register_weights),
            ("launch", start_launch),
            ("wait until ready", wait_until_ready),
            ("smoke test", smoke_test),
            ("mark ready", mark_ready),
            *WIRING,
        ),
    )
)

TERMINATE = register(
    Pipeline(
        kind=PipelineKind.MODEL_TERMINATE,
        steps=(("stop model", stop_model), *WIRING),
    )
)
