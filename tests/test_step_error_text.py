"""A step that raised shows what went wrong in words, with the detail and without the class
name, which stays in the server's log."""

import logging

import pytest
from django.db import InterfaceError, OperationalError

from deployments.choices import RunStatus
from deployments.clients.fastgpt.errors import FastGPTError
from deployments.clients.oneapi import OneAPIError
from deployments.clients.ssh.errors import SSHError
from deployments.clients.xinference import XinferenceError
from deployments.models import StepRun
from deployments.pipelines import error_text, runner
from testkit.factories import make_run, make_team
from testkit.pipelines import STEPS


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            SSHError("No answer from 203.0.113.10:22.", kind="unreachable"),
            "Could not connect over SSH: No answer from 203.0.113.10:22.",
        ),
        (
            SSHError("Key refused.", kind="auth"),
            "Could not connect over SSH: Key refused.",
        ),
        (
            SSHError("apt-get exited with 100.", kind="command"),
            "A command on the server failed: apt-get exited with 100.",
        ),
        (
            SSHError("sudo asks for a password.", kind="sudo_password"),
            "The server did not allow a command: sudo asks for a password.",
        ),
        (
            XinferenceError("Model not found."),
            "Xinference could not do what was asked: Model not found.",
        ),
        (OneAPIError("Channel refused."), "One API could not do what was asked: Channel refused."),
        (FastGPTError("No such app."), "FastGPT could not do what was asked: No such app."),
        (
            OperationalError("server closed the connection unexpectedly"),
            "The panel's database did not answer: server closed the connection unexpectedly",
        ),
        (
            InterfaceError("connection already closed"),
            "The panel's database did not answer: connection already closed",
        ),
        (TimeoutError("read timed out"), "Something took too long to answer: read timed out"),
        (
            ConnectionRefusedError(111, "Connection refused"),
            "A connection failed: Connection refused",
        ),
        (KeyError("model_uid"), "Unexpected data: nothing called 'model_uid'"),
        (RuntimeError("boom"), "Unexpected error: boom"),
    ],
)
def test_an_error_is_told_by_a_plain_lead_and_its_detail(error, expected):
    assert error_text.describe(error) == expected


@pytest.mark.parametrize("error", [RuntimeError(), ValueError("  "), SSHError("", kind="timeout")])
def test_an_error_without_detail_points_at_the_log(error):
    text = error_text.describe(error)
    assert text.endswith("the panel's log has the details.")
    assert type(error).__name__ not in text


def test_no_class_name_reaches_the_text():
    for error in (SSHError("x", kind="protocol"), XinferenceError("x"), KeyError("x")):
        assert type(error).__name__ not in error_text.describe(error)


@pytest.mark.django_db(transaction=True)
def test_a_crashing_step_keeps_the_class_name_in_the_log_only(caplog):
    run = make_run(make_team(), status=RunStatus.QUEUED, kind=STEPS, params={"crash_at": 0})

    with caplog.at_level(logging.ERROR, logger="deployments.pipelines.runner"):
        runner.run(run.pk, "test-host:1")

    run.refresh_from_db()
    step = StepRun.objects.get(run=run)
    assert run.status == RunStatus.FAILED
    assert step.error == "Unexpected error: boom"
    assert "RuntimeError" not in run.error
    assert any("RuntimeError" in (record.exc_text or "") for record in caplog.records)
