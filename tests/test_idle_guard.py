"""The idle guard decides from the model request counters and the GPU history, never touches a
server without a price or with the guard off, waits while a run is under way, and takes the
team's steps one run at a time, the power-off only after the grace period."""

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from deployments import tasks
from deployments.actions import ActionError
from deployments.actions.idle import do_keep_running, do_save_idle_settings
from deployments.choices import PipelineKind, RunStatus, StackStatus
from deployments.clients.xinference import XinferenceClient, model_requests_in
from deployments.idle import notes
from deployments.idle.detect import gpu_reading
from deployments.idle.status import idle_status
from deployments.models import AuditEvent, GpuSample, IdleGuard, IdleState, PipelineRun
from deployments.pipelines import idle_guard
from testkit.factories import make_run, make_server, make_stack

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
METRICS = """# HELP requests_total_counter Total number of requests received
# TYPE requests_total_counter counter
requests_total_counter{method="POST",path="/v1/embeddings"} 2
requests_total_counter{method="POST",path="/v1/chat/completions"} 3
requests_total_counter{method="GET",path="/v1/models/{model_uid}"} 40
requests_total_counter{method="GET",path="/status"} 9
responses_total_counter{method="POST",path="/v1/embeddings"} 2
"""


@pytest.fixture
def server(team):
    return make_server(team, hourly_price=Decimal("2.50"), facts={"gpus": [{"index": 0}]})


@pytest.fixture
def stack(server):
    return make_stack(server, status=StackStatus.RUNNING)


def guard_for(server, stack=None, count=5.0, quiet_for=timedelta(hours=2), **fields):
    fields.setdefault("enabled", True)
    fields.setdefault("idle_minutes", 60)
    return IdleGuard.objects.create(
        server=server,
        quiet_since=NOW - quiet_for,
        request_counts={str(stack.pk): count} if stack else {},
        **fields,
    )


def gpu(server, minutes_ago, percent, index=0):
    GpuSample.objects.create(
        server=server,
        gpu_index=index,
        at=NOW - timedelta(minutes=minutes_ago),
        memory_used_mib=100,
        memory_total_mib=24000,
        utilization_percent=percent,
        memory_used_peak_mib=100,
        utilization_peak_percent=percent,
    )


def reads(value):
    return lambda stacks: {stack: value for stack in stacks}


def never(stacks):
    raise AssertionError("the guard must not read anything here")


def check(server, read, now=NOW):
    return idle_guard.check(server, now=now, read=read)


# Xinference's counter ------------------------------------------------------------------------


def test_the_request_counter_sums_the_model_routes_only():
    assert model_requests_in(METRICS) == 5.0
    assert model_requests_in("") == 0.0


def test_the_client_reads_the_counter_from_xinferences_metrics_endpoint():
    import httpx

    seen = []

    def answer(request):
        seen.append(request.url.path)
        return httpx.Response(200, text=METRICS)

    client = XinferenceClient("http://xinference:9997", transport=httpx.MockTransport(answer))
    assert client.model_requests() == 5.0
    assert seen == ["/metrics"]


# Detection -----------------------------------------------------------------------------------


def test_a_moved_request_counter_means_not_idle(server, stack):
    guard = guard_for(server, stack, count=5.0)
    gpu(server, 30, 0)
    assert check(server, reads(6.0)) == []
    guard.refresh_from_db()
    assert guard.state == IdleState.WATCHING
    assert guard.quiet_since == NOW
    assert guard.request_counts == {str(stack.pk): 6.0}
    assert guard.note == [notes.part(notes.USED, stacks=stack.name)]


def test_a_busy_gpu_means_not_idle(server, stack):
    guard = guard_for(server, stack)
    gpu(server, 50, 0)
    gpu(server, 10, 40)
    assert check(server, reads(5.0)) == []
    guard.refresh_from_db()
    assert guard.state == IdleState.WATCHING
    assert guard.quiet_since == NOW - timedelta(minutes=10)


def test_no_requests_and_quiet_gpus_for_the_idle_time_is_idle_and_the_team_is_told(server, stack):
    guard = guard_for(server, stack)
    gpu(server, 50, 0)
    gpu(server, 10, 3)
    queued = check(server, reads(5.0))
    guard.refresh_from_db()
    assert guard.state == IdleState.IDLE
    (run,) = PipelineRun.objects.filter(pk__in=queued)
    assert run.kind == PipelineKind.IDLE_NOTIFY
    assert run.params == {"server_id": server.pk}
    assert guard.step_run == run and guard.steps_taken == ["notify"]


def test_quiet_but_not_yet_for_the_idle_time_is_not_idle(server, stack):
    guard = guard_for(server, stack, quiet_for=timedelta(minutes=20))
    gpu(server, 10, 0)
    assert check(server, reads(5.0)) == []
    guard.refresh_from_db()
    assert guard.state == IdleState.WATCHING
    assert notes.render(guard.note) == "Quiet for 20 min of 60."


def test_the_checks_note_is_kept_as_codes_and_shown_in_the_pages_language(server, stack):
    guard = guard_for(server, stack, count=5.0)
    gpu(server, 30, 0)
    check(server, reads(6.0))
    guard.refresh_from_db()
    assert guard.note == [{"code": "used", "params": {"stacks": stack.name}}]
    guard.note += [notes.part(notes.QUIET, minutes=20, idle_minutes=60)]
    guard.save()
    with translation.override("zh-hans"):
        assert idle_status(server).note == (
            f"自上次检查以来，{stack.name} 的模型收到了请求。 已安静 20 分钟（共需 60 分钟）。"
        )
    with translation.override("en-us"):
        assert idle_status(server).note == (
            f"The models of {stack.name} received requests since the last check. "
            "Quiet for 20 min of 60."
        )


def test_a_note_naming_a_run_reads_its_title_in_the_pages_language(server, stack):
    guard = guard_for(server, stack)
    gpu(server, 10, 0)
    finish(check(server, reads(5.0)), RunStatus.FAILED)
    PipelineRun.objects.filter(kind=PipelineKind.IDLE_NOTIFY).update(error="No channel.")
    check(server, reads(5.0))
    guard.refresh_from_db()
    (part,) = guard.note
    assert part["code"] == notes.STEP_FAILED and part["params"]["error"] == "No channel."
    with translation.override("en-us"):
        english = idle_status(server).note
    with translation.override("zh-hans"):
        chinese = idle_status(server).note
    assert english.startswith("The step “") and english.endswith("” did not succeed: No channel.")
    title = english.removeprefix("The step “").split("”")[0]
    assert title and title not in chinese and "No channel." in chinese
    # The run gone, its title as it was kept.
    PipelineRun.objects.filter(pk=part["params"]["run"]).delete()
    with translation.override("en-us"):
        assert idle_status(server).note == english


def test_without_a_gpu_reading_in_the_idle_time_the_guard_does_not_guess(server, stack):
    guard = guard_for(server, stack)
    gpu(server, 120, 0)  # before the idle window
    assert check(server, reads(5.0)) == []
    guard.refresh_from_db()
    assert guard.state == IdleState.WATCHING
    assert [part["code"] for part in guard.note] == [notes.NO_GPU_READING]


def test_the_last_checks_facts_stand_in_where_the_history_holds_no_reading(server):
    server.facts = {"gpus": [{"index": 0, "utilization_percent": 0}]}
    server.facts_checked_at = NOW - timedelta(minutes=5)
    server.save()
    reading = gpu_reading(server, NOW - timedelta(minutes=60), NOW)
    assert reading.seen and reading.busy_at is None
    server.facts = {"gpus": [{"index": 0, "utilization_percent": 80}]}
    server.save()
    assert gpu_reading(server, NOW - timedelta(minutes=60), NOW).busy_at == server.facts_checked_at


def test_a_counter_that_cannot_be_read_is_never_taken_for_idle(server, stack):
    guard = guard_for(server, stack)
    gpu(server, 10, 0)
    assert check(server, reads("Xinference did not answer.")) == []
    guard.refresh_from_db()
    assert guard.state == IdleState.WATCHING
    assert "Xinference did not answer." in notes.render(guard.note)


@pytest.mark.parametrize("change", ["no price", "guard off", "no guard"])
def test_a_server_without_a_price_or_with_the_guard_off_is_never_touched(
    server, stack, change, monkeypatch
):
    if change == "no guard":
        pass
    else:
        guard_for(server, stack, enabled=change != "guard off")
    if change == "no price":
        server.hourly_price = None
        server.save()
    gpu(server, 10, 0)
    assert check(server, never) == []
    assert not PipelineRun.objects.exists()
    guard = IdleGuard.objects.filter(server=server).first()
    assert guard is None or guard.state == IdleState.WATCHING
    # The periodic task does not even look at it.
    sent = []
    monkeypatch.setattr(tasks.check_idle_server_task, "delay", sent.append)
    assert tasks.check_idle_servers() == 0 and sent == []


def test_nothing_is_read_or_stopped_while_a_run_is_under_way_on_the_stack(server, stack):
    guard = guard_for(server, stack)
    gpu(server, 10, 0)
    make_run(
        server.team,
        status=RunStatus.RUNNING,
        kind=PipelineKind.DATASET_IMPORT,
        params={"stack_id": stack.pk},
    )
    assert check(server, never) == []
    guard.refresh_from_db()
    assert guard.state == IdleState.WATCHING
    assert guard.quiet_since == NOW
    assert "under way" in notes.render(guard.note)


# The steps -----------------------------------------------------------------------------------


def finish(run_ids, status=RunStatus.SUCCEEDED):
    PipelineRun.objects.filter(pk__in=run_ids).update(status=status)


def test_the_chosen_steps_run_one_at_a_time_and_the_power_off_waits_for_the_grace_period(
    server, stack
):
    guard = guard_for(server, stack, stop_stacks=True, power_off=True, grace_minutes=15)
    gpu(server, 10, 0)
    kinds = []
    for minute in range(3):
        queued = check(server, reads(5.0), now=NOW + timedelta(minutes=minute))
        # The next step waits while the one before is under way.
        assert check(server, reads(5.0), now=NOW + timedelta(minutes=minute)) == []
        kinds += [run.kind for run in PipelineRun.objects.filter(pk__in=queued)]
        finish(queued)
    assert kinds == [
        PipelineKind.IDLE_NOTIFY,
        PipelineKind.IDLE_STOP_MODELS,
        PipelineKind.IDLE_STOP_STACKS,
    ]
    # The grace period: a warning, no run.
    assert check(server, reads(5.0), now=NOW + timedelta(minutes=3)) == []
    guard.refresh_from_db()
    assert guard.state == IdleState.POWER_OFF_PENDING
    assert guard.power_off_at == NOW + timedelta(minutes=18)
    assert check(server, reads(5.0), now=NOW + timedelta(minutes=17)) == []
    (power_off,) = check(server, reads(5.0), now=NOW + timedelta(minutes=18))
    assert PipelineRun.objects.get(pk=power_off).kind == PipelineKind.IDLE_POWER_OFF
    finish([power_off])
    assert check(server, reads(5.0), now=NOW + timedelta(minutes=19)) == []
    guard.refresh_from_db()
    assert guard.state == IdleState.STOPPED


def test_a_failed_step_stops_the_guard_from_going_on(server, stack):
    guard = guard_for(server, stack)
    gpu(server, 10, 0)
    finish(check(server, reads(5.0)), RunStatus.FAILED)
    assert check(server, reads(5.0)) == []
    guard.refresh_from_db()
    assert "did not succeed" in notes.render(guard.note)
    assert guard.steps_taken == ["notify"]


def test_keep_running_calls_off_the_power_off_and_starts_the_quiet_time_again(
    server, stack, viewer, client
):
    guard = guard_for(server, stack, notify=False, stop_models=False, power_off=True)
    gpu(server, 10, 0)
    assert check(server, reads(5.0)) == []
    guard.refresh_from_db()
    assert guard.state == IdleState.POWER_OFF_PENDING

    client.force_login(viewer)
    page = client.get(reverse("server_detail", args=[server.pk]))
    assert "Keep running" in page.content.decode()
    answer = client.post(reverse("server_idle_keep_running", args=[server.pk]))
    assert answer.status_code == 302
    guard.refresh_from_db()
    assert guard.state == IdleState.WATCHING
    assert guard.power_off_at is None and guard.steps_taken == []
    assert guard.quiet_since > NOW
    assert AuditEvent.objects.filter(action="server.idle_keep_running", actor=viewer).exists()
    # Quiet again, but not for the idle time since: no power-off.
    assert check(server, reads(5.0), now=timezone.now() + timedelta(minutes=30)) == []
    with pytest.raises(ActionError, match="not idle"):
        do_keep_running(server, user=viewer)


def test_an_owner_sets_the_guard_on_the_server_page_and_everyone_sees_its_state(
    server, owner, viewer, client
):
    client.force_login(owner)
    answer = client.post(
        reverse("server_idle_settings", args=[server.pk]),
        {"enabled": "on", "idle_minutes": "45", "stop_models": "on", "grace_minutes": "10"},
    )
    assert answer.status_code == 302
    guard = IdleGuard.objects.get(server=server)
    assert guard.enabled and guard.idle_minutes == 45 and guard.grace_minutes == 10
    assert guard.stop_models and not guard.notify and not guard.power_off
    client.force_login(viewer)
    page = client.get(reverse("server_detail", args=[server.pk])).content.decode()
    assert "Watching: quiet for" in page
    assert 'id="idle-guard-form"' not in page
    with pytest.raises(Exception, match="owner"):
        do_save_idle_settings(server, data={}, user=viewer)


def test_the_dashboard_shows_each_servers_idle_state(server, stack, viewer, client):
    guard = guard_for(server, stack)
    guard.quiet_since = timezone.now() - timedelta(minutes=25, seconds=10)
    guard.save()
    client.force_login(viewer)
    assert "idle for 25 min" in client.get(reverse("dashboard")).content.decode()
    guard.state = IdleState.POWER_OFF_PENDING
    guard.save()
    assert ": warning" in client.get(reverse("dashboard")).content.decode()
    guard.state = IdleState.STOPPED
    guard.stopped_stacks = [stack.pk]
    guard.save()
    page = client.get(reverse("dashboard")).content.decode()
    assert "Stopped by the idle guard" in page


def test_turning_the_guard_on_counts_the_quiet_time_from_then(server, stack, owner):
    guard = guard_for(server, stack, enabled=False, quiet_for=timedelta(hours=10))
    settings = {name: getattr(guard, name) for name in ("idle_minutes", "grace_minutes")}
    flags = dict(notify=True, stop_models=True, stop_stacks=False, power_off=False)
    do_save_idle_settings(server, data={"enabled": True, **settings, **flags}, user=owner)
    guard.refresh_from_db()
    assert guard.enabled and guard.quiet_since >= NOW and guard.request_counts == {}
    gpu(server, 10, 0)
    assert check(server, reads(5.0), now=timezone.now()) == []


def test_notes_written_in_english_before_read_in_the_pages_language_after_the_migration():
    migration = importlib.import_module("deployments.migrations.0018_idle_guard_note_codes")
    parts = migration.note_parts(
        "The models of chatbot, rag received requests since the last check. "
        "Quiet for 20 min of 60. Something else."
    )
    assert parts == [
        notes.part(notes.USED, stacks="chatbot, rag"),
        notes.part(notes.QUIET, minutes="20", idle_minutes="60"),
        notes.part(notes.TEXT, text="Something else."),
    ]
    with translation.override("zh-hans"):
        assert notes.render(parts) == (
            "自上次检查以来，chatbot, rag 的模型收到了请求。 已安静 20 分钟（共需 60 分钟）。 "
            "Something else."
        )
