"""What happens in the panel reaches the channels that asked for it: a failed run, a server
that stops answering, a document whose import failed. Tasks run here, eagerly, once the
transaction that saw the event commits; the receivers are real, on loopback."""

import json
from contextlib import contextmanager, nullcontext

import pytest
from django.db import connection

from deployments.actions.notifications import do_add_channel
from deployments.choices import (
    DocumentSource,
    DocumentStatus,
    PipelineKind,
    Role,
    RunStatus,
    ServerStatus,
)
from deployments.clients.ssh import HostKey, HostKeyChanged
from deployments.knowledge import documents
from deployments.llm.smoke import SmokeResult
from deployments.models import (
    ChannelKind,
    Document,
    IdleGuard,
    IdleState,
    IdleStep,
    KnowledgeBase,
    LLMModelConfig,
    ModelLaunch,
    NotificationEvent,
    PipelineRun,
)
from deployments.notifications import notify
from deployments.pipelines import model_launch, runner
from deployments.pipelines.steps import StepContext
from deployments.servers import check
from deployments.servers.check import check_server
from testkit.factories import add_member, make_server, make_stack
from testkit.pipelines import STEPS
from testkit.receivers import http_receiver


@pytest.fixture
def owner(team):
    return add_member(team, role=Role.OWNER)


def hook(team, owner, url, events, name="hook"):
    data = {
        "name": name,
        "target": url,
        "secret": "",
        "events": events,
        "allow_private": True,  # the receiver is on loopback
        "enabled": True,
    }
    return do_add_channel(team, kind=ChannelKind.WEBHOOK, data=data, user=owner)[0]


def bodies(receiver) -> list[dict]:
    return [json.loads(request.body) for request in receiver.requests]


def test_a_failed_run_notifies_the_channels_that_asked_for_it(
    team, owner, eager_tasks, django_capture_on_commit_callbacks
):
    with http_receiver() as subscribed, http_receiver() as other:
        hook(team, owner, subscribed.url, [NotificationEvent.RUN_FAILED])
        hook(team, owner, other.url, [NotificationEvent.DOCUMENT_FAILED], name="documents")
        run = PipelineRun.objects.create(
            team=team, kind=STEPS, params={"fail_at": 1, "fail_message": "the disk is full"}
        )
        with django_capture_on_commit_callbacks(execute=True):
            runner.run(run.pk, "test-worker")

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    [body] = bodies(subscribed)
    assert body["event"] == "run_failed"
    assert body["subject"].startswith(f"Run #{run.pk} failed")
    assert "the disk is full" in body["text"]
    assert body["url"].endswith(f"/runs/{run.pk}/")
    assert other.requests == []


def test_a_run_that_succeeds_notifies_nobody(
    team, owner, eager_tasks, django_capture_on_commit_callbacks
):
    with http_receiver() as receiver:
        hook(team, owner, receiver.url, [NotificationEvent.RUN_FAILED])
        run = PipelineRun.objects.create(team=team, kind=STEPS, params={})
        with django_capture_on_commit_callbacks(execute=True):
            runner.run(run.pk, "test-worker")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert receiver.requests == []


def test_a_switched_off_channel_is_not_sent_anything(
    team, owner, eager_tasks, django_capture_on_commit_callbacks
):
    with http_receiver() as receiver:
        channel = hook(team, owner, receiver.url, [NotificationEvent.RUN_FAILED])
        channel.enabled = False
        channel.save(update_fields=["enabled"])
        run = PipelineRun.objects.create(team=team, kind=STEPS, params={"fail_at": 0})
        with django_capture_on_commit_callbacks(execute=True):
            runner.run(run.pk, "test-worker")
    assert receiver.requests == []


def test_a_server_that_stops_answering_notifies_once(
    team, owner, eager_tasks, django_capture_on_commit_callbacks
):
    with http_receiver() as receiver:
        hook(team, owner, receiver.url, [NotificationEvent.SERVER_UNREACHABLE])
        # No key: unreachable at once, before any connection.
        server = make_server(team, name="gpu-7", host="169.254.169.254")
        with django_capture_on_commit_callbacks(execute=True):
            check_server(server)
        with django_capture_on_commit_callbacks(execute=True):
            check_server(server)  # still down: no second message

    server.refresh_from_db()
    assert server.status == ServerStatus.UNREACHABLE
    [body] = bodies(receiver)
    assert body["event"] == "server_unreachable"
    assert "gpu-7" in body["subject"]
    assert body["text"] == server.last_error  # why, as its page says it


def test_a_server_the_idle_guard_powered_off_is_not_reported_unreachable(
    team, owner, eager_tasks, django_capture_on_commit_callbacks
):
    with http_receiver() as receiver:
        hook(team, owner, receiver.url, [NotificationEvent.SERVER_UNREACHABLE])
        server = make_server(team, name="gpu-8", host="169.254.169.254")
        IdleGuard.objects.create(
            server=server,
            enabled=True,
            power_off=True,
            state=IdleState.STOPPED,
            steps_taken=[IdleStep.NOTIFY, IdleStep.POWER_OFF],
        )
        with django_capture_on_commit_callbacks(execute=True):
            check_server(server)

    server.refresh_from_db()
    assert server.status == ServerStatus.UNREACHABLE
    assert receiver.requests == []


def test_a_changed_host_key_notifies_once_and_not_as_unreachable(
    team, owner, eager_tasks, django_capture_on_commit_callbacks, monkeypatch
):
    offered = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAI", "SHA256:new")

    @contextmanager
    def refused(server):
        raise HostKeyChanged(server.host, server.ssh_port, offered, "SHA256:old")
        yield

    # The SSH client's own tests meet a real changed key; here only what the check does next.
    monkeypatch.setattr(check, "open_session", refused)
    with http_receiver() as receiver:
        hook(
            team,
            owner,
            receiver.url,
            [NotificationEvent.HOST_KEY_CHANGED, NotificationEvent.SERVER_UNREACHABLE],
        )
        server = make_server(team, name="gpu-8")
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                check_server(server)

    [body] = bodies(receiver)
    assert body["event"] == "host_key_changed"
    assert "gpu-8" in body["subject"]
    assert "SHA256:old" in body["text"] and "SHA256:new" in body["text"]


def test_a_flagged_smoke_test_notifies(
    team, owner, eager_tasks, django_capture_on_commit_callbacks, monkeypatch
):
    stack = make_stack(make_server(team), name="stack-3")
    config = LLMModelConfig.objects.create(
        team=team, model="qwen-chat", display_name="Qwen", xinference_model_name="qwen2.5-instruct"
    )
    run = PipelineRun.objects.create(team=team, kind=PipelineKind.MODEL_LAUNCH)
    launch = ModelLaunch.objects.create(
        team=team, stack=stack, llm=config, model_uid="qwen-chat", run=run
    )
    run.params = {"launch_id": launch.pk}
    run.save(update_fields=["params"])
    flagged = SmokeResult(False, "json_only", "It answered in raw JSON, not in plain text.")
    # The real check against a real Xinference is in the launch's own tests; here only what the
    # step does with a flagged answer.
    monkeypatch.setattr(model_launch, "_xinference", lambda launch, **kwargs: nullcontext())
    monkeypatch.setattr(model_launch.smoke_checks, "check_chat", lambda *a, **k: flagged)

    with http_receiver() as receiver:
        hook(team, owner, receiver.url, [NotificationEvent.SMOKE_TEST_FLAGGED])
        context = StepContext(run=run, index=3, name="smoke test", worker="test-worker")
        with django_capture_on_commit_callbacks(execute=True):
            said = model_launch.smoke_test(context)

    assert said.startswith("Flagged")
    [body] = bodies(receiver)
    assert body["event"] == "smoke_test_flagged"
    assert "qwen-chat" in body["subject"] and "stack-3" in body["subject"]
    assert body["text"] == "It answered in raw JSON, not in plain text."
    assert body["url"].endswith(f"/models/launches/{launch.pk}/")


def test_a_failed_document_import_notifies(
    team, owner, eager_tasks, django_capture_on_commit_callbacks
):
    stack = make_stack(make_server(team))
    base = KnowledgeBase.objects.create(
        team=team, stack=stack, name="handbook", embedding_model="m3e", agent_model="qwen"
    )
    document = Document.objects.create(
        knowledge_base=base, source=DocumentSource.TEXT, name="policy.pdf", text="Some text."
    )
    with http_receiver() as receiver:
        hook(team, owner, receiver.url, [NotificationEvent.DOCUMENT_FAILED])
        with django_capture_on_commit_callbacks(execute=True):
            documents.fail(document, "Training stood still for 10 minutes.")

    assert document.status == DocumentStatus.FAILED
    [body] = bodies(receiver)
    assert body["event"] == "document_failed"
    assert "policy.pdf" in body["subject"] and "handbook" in body["subject"]
    assert body["text"] == "Training stood still for 10 minutes."
    assert body["url"].endswith(f"/knowledge/{base.pk}/")


def test_a_broker_that_does_not_answer_does_not_fail_the_run(
    team, owner, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(*args, **kwargs):
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(notify, "enqueue", broken)
    hook(team, owner, "http://127.0.0.1:9/", [NotificationEvent.RUN_FAILED])
    run = PipelineRun.objects.create(team=team, kind=STEPS, params={"fail_at": 0})
    with django_capture_on_commit_callbacks(execute=True):
        runner.run(run.pk, "test-worker")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.finished_at is not None


def test_links_are_absolute_where_the_panel_says_where_it_is_served(settings):
    settings.PANEL_URL = "https://panel.example.com"
    assert notify.absolute("/runs/7/") == "https://panel.example.com/runs/7/"
    settings.PANEL_URL = ""
    assert notify.absolute("/runs/7/") == "/runs/7/"


def test_a_failed_read_of_the_channels_does_not_fail_the_runs_record(
    team, owner, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(team_id, event):
        # A real database error, inside the transaction that ends the run (on PostgreSQL it
        # would abort that transaction, but for the savepoint around the read).
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table_here")

    monkeypatch.setattr(notify, "subscribed", broken)
    run = PipelineRun.objects.create(team=team, kind=STEPS, params={"fail_at": 0})
    with django_capture_on_commit_callbacks(execute=True):
        runner.run(run.pk, "test-worker")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.events.filter(kind="run_finished").exists()
