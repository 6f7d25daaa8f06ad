"""Cancelling a launch on Xinference before 1.5, which has no cancel endpoint and refuses to stop
a model while it is launching: the pipeline waits for the launch to end, then stops the model,
so nothing keeps holding the server's GPUs behind a launch the panel shows as cancelled.

The server is a transport that answers as 0.16's REST API does (shared/contracts, B2); the
same steps against a real 4.x Xinference are in test_model_launch_real.py.
"""

import json

import httpx
import pytest

from deployments.choices import LaunchStatus, StackStatus
from deployments.clients.xinference import XinferenceClient
from deployments.llm.presets import PRESETS
from deployments.models import ModelLaunch
from deployments.pipelines.model_launch import _cancel
from testkit.factories import make_server, make_stack

pytestmark = pytest.mark.django_db


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, text: str) -> None:
        self.lines.append(text)


class OldXinference:
    """0.16: an instance reports CREATING a few times, then how it ended; no cancel endpoint;
    DELETE of a launching model is refused with 400."""

    def __init__(self, uid: str, polls_until_done: int, done: str) -> None:
        self.uid, self.polls, self.done = uid, polls_until_done, done
        self.sent: list[tuple[str, str]] = []

    def status(self) -> str:
        return "CREATING" if self.polls > 0 else self.done

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        path = request.url.path
        if request.method == "GET" and path == "/v1/models/instances":
            status = self.status()
            self.polls -= 1
            instance = {"model_uid": self.uid, "model_name": "m3e-base", "status": status}
            return httpx.Response(200, json=[instance])
        if request.method == "POST" and path == f"/v1/models/{self.uid}/cancel":
            return httpx.Response(404, json={"detail": "Not Found"})
        if request.method == "DELETE" and path == f"/v1/models/{self.uid}":
            if self.status() == "CREATING":
                detail = f"[address=0.0.0.0:1, pid=1] {self.uid} is launching"
                return httpx.Response(400, content=json.dumps({"detail": detail}))
            return httpx.Response(200, json={})
        return httpx.Response(404, json={"detail": "Not Found"})


@pytest.fixture
def launch(team, settings):
    settings.MODEL_LAUNCH_POLL_SECONDS = 0.01
    stack = make_stack(make_server(team), status=StackStatus.RUNNING)
    config = PRESETS["m3e-base"].build(team)
    config.save()
    return ModelLaunch.objects.create(
        team=team,
        stack=stack,
        model_uid=config.model,
        status=LaunchStatus.LAUNCHING,
        embedding=config,
    )


def cancel_on(server: OldXinference, launch: ModelLaunch) -> list[str]:
    log = Log()
    with XinferenceClient("http://xinference:9997", transport=httpx.MockTransport(server)) as c:
        _cancel(log, c, launch)
    launch.refresh_from_db()
    return log.lines


def test_a_launch_that_cannot_be_cancelled_is_stopped_once_it_has_loaded(launch):
    server = OldXinference(launch.model_uid, polls_until_done=3, done="READY")

    lines = cancel_on(server, launch)

    assert ("POST", "/v1/models/m3e-base/cancel") in server.sent
    assert server.sent[-1] == ("DELETE", "/v1/models/m3e-base")
    assert any("cannot stop a launch under way" in line for line in lines)
    assert "m3e-base had loaded: stopped in Xinference." in lines
    assert launch.status == LaunchStatus.TERMINATED and launch.stage == "cancelled"


def test_a_launch_that_fails_on_its_own_needs_nothing_stopped(launch):
    server = OldXinference(launch.model_uid, polls_until_done=2, done="ERROR")

    lines = cancel_on(server, launch)

    assert ("DELETE", "/v1/models/m3e-base") not in server.sent
    assert not any("could not cancel" in line for line in lines)
    assert launch.status == LaunchStatus.TERMINATED


def test_a_launch_longer_than_the_timeout_is_left_with_a_sentence_saying_so(launch, settings):
    settings.MODEL_LAUNCH_TIMEOUT = 0
    server = OldXinference(launch.model_uid, polls_until_done=10**6, done="READY")

    lines = cancel_on(server, launch)

    assert ("DELETE", "/v1/models/m3e-base") not in server.sent
    assert any("is still creating after 0 s" in line for line in lines)
    assert launch.status == LaunchStatus.TERMINATED
