"""A live socket ends soon after its viewer loses access, not only at the next connect.

Every socket (a service's log, a stack's logs, a run's progress) asks again while it is open
whether its viewer is still logged in, by the session in the session store, and still in the
object's team (deployments/consumers/live_access.py). The real ASGI app, sessions and
channels-redis; the remote log stream is a stand-in (tests/test_log_consumers.py).
"""

from datetime import timedelta
from importlib import import_module

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from controlpanel.asgi import application
from deployments.choices import EventKind, Role, RunStatus
from deployments.consumers import live_access
from deployments.consumers import logs as log_consumers
from deployments.models import Membership, Service
from deployments.pipelines import events
from testkit.factories import make_run, make_server, make_stack
from testkit.pipelines import STEPS
from testkit.websockets import in_thread, session_cookie
from tests.test_log_consumers import Remote, receive_lines, receive_status, until
from tests.test_log_hub import stamped
from tests.test_run_events_consumer import LivePage, start_step

ORIGIN = b"http://localhost"
TIMEOUT = 10
CONTAINER = "prod-fastgpt-1"


@pytest.fixture(autouse=True)
def _quick_checks(settings):
    settings.LIVE_ACCESS_CHECK_SECONDS = 0.05


@pytest.fixture
def remote(monkeypatch) -> Remote:
    fake = Remote()
    monkeypatch.setattr(log_consumers, "open_remote_logs", fake)
    return fake


@pytest.fixture
def service(team):
    stack = make_stack(make_server(team))
    return Service.objects.create(stack=stack, name="fastgpt", container_name=CONTAINER)


@pytest.fixture
def running_run(team):
    return make_run(team, status=RunStatus.RUNNING, kind=STEPS, started_at=timezone.now())


class Viewer:
    """A logged-in user's socket, and its session key."""

    def __init__(self, user, cookie: bytes, communicator: WebsocketCommunicator) -> None:
        self.user = user
        self.session_key = cookie.decode().split("=", 1)[1]
        self.communicator = communicator

    async def close_code(self) -> int | None:
        """The code of the close the server sends, after whatever came before it."""
        while True:
            output = await self.communicator.receive_output(timeout=TIMEOUT)
            if output["type"] == "websocket.close":
                return output.get("code")


async def connect(path: str, user) -> Viewer:
    cookie = await in_thread(session_cookie, user)
    headers = [(b"host", b"localhost"), (b"origin", ORIGIN), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=TIMEOUT)
    assert connected, f"refused with {code}"
    return Viewer(user, cookie, communicator)


async def open_live(kind: str, objects: dict, user) -> Viewer:
    """A socket of `kind` that is under way: following its log, or showing its run."""
    if kind == "run":
        viewer = await connect(f"/ws/runs/{objects['run'].pk}/", user)
        await viewer.communicator.receive_from(timeout=TIMEOUT)  # the steps section
        return viewer
    service = objects["service"]
    path = {
        "service logs": f"/ws/services/{service.pk}/logs/",
        "stack logs": f"/ws/stacks/{service.stack_id}/logs/",
    }[kind]
    viewer = await connect(path, user)
    await receive_status(viewer.communicator, "following")
    return viewer


# What ends access


def remove_from_team(viewer: Viewer, team) -> None:
    Membership.objects.filter(team=team, user=viewer.user).delete()


def log_out(viewer: Viewer, team) -> None:
    """The logout the page's button posts, from the browser whose session the socket has."""
    client = Client()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = viewer.session_key
    response = client.post(reverse("logout"))
    assert response.status_code == 302


def expire_session(viewer: Viewer, team) -> None:
    store = import_module(django_settings.SESSION_ENGINE).SessionStore(viewer.session_key)
    store.set_expiry(timezone.now() - timedelta(seconds=1))
    store.save()


def change_password(viewer: Viewer, team) -> None:
    # Elsewhere: every other session of the user no longer verifies.
    viewer.user.set_password("a-new-password-for-this-test")
    viewer.user.save()


def deactivate(viewer: Viewer, team) -> None:
    viewer.user.is_active = False
    viewer.user.save(update_fields=["is_active"])


REVOCATIONS = {
    "removed from the team": (remove_from_team, live_access.CLOSE_NOT_VISIBLE),
    "logged out": (log_out, live_access.CLOSE_NOT_LOGGED_IN),
    "session expired": (expire_session, live_access.CLOSE_NOT_LOGGED_IN),
    "password changed elsewhere": (change_password, live_access.CLOSE_NOT_LOGGED_IN),
    "user deactivated": (deactivate, live_access.CLOSE_NOT_LOGGED_IN),
}
KINDS = ["service logs", "stack logs", "run"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("revocation", list(REVOCATIONS))
async def test_an_open_socket_is_closed_once_its_viewer_loses_access(
    kind, revocation, team, service, running_run, viewer, remote
):
    revoke, code = REVOCATIONS[revocation]
    live = await open_live(kind, {"service": service, "run": running_run}, viewer)

    await in_thread(revoke, live, team)

    assert await live.close_code() == code
    if kind != "run":
        # Nothing is left reading the container's log for the viewer that is gone.
        source = await remote.source(CONTAINER)
        await until(source.closed.is_set, "the remote stream to be closed")
    await live.communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_log_viewer_who_keeps_access_keeps_getting_lines_across_checks(
    team, service, viewer, remote, monkeypatch
):
    checks = count_checks(monkeypatch)
    live = await open_live("service logs", {"service": service}, viewer)
    # A role change that still lets the viewer watch ends nothing.
    await in_thread(Membership.objects.filter(team=team, user=viewer).update, role=Role.OPERATOR)

    await until(lambda: len(checks) >= 3, "three checks of the viewer's access")
    (await remote.source(CONTAINER)).put(stamped("still here"))

    messages = await receive_lines(live.communicator, 1)
    assert [line["text"] for message in messages for line in message["lines"]] == ["still here"]
    assert all(user is not None for user in checks)
    await live.communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_run_viewer_who_keeps_access_keeps_getting_its_progress_across_checks(
    team, running_run, viewer, monkeypatch
):
    checks = count_checks(monkeypatch)
    live = await open_live("run", {"run": running_run}, viewer)

    await until(lambda: len(checks) >= 3, "three checks of the viewer's access")
    await in_thread(start_step, running_run, 0, "first")
    await in_thread(
        events.record,
        running_run.pk,
        EventKind.OUTPUT,
        status=RunStatus.RUNNING,
        step_index=0,
        message="still here",
    )

    page = LivePage()
    while "still here" not in "".join(page.outputs.values()):
        page.apply(await live.communicator.receive_from(timeout=TIMEOUT))
    assert all(user is not None for user in checks)
    await live.communicator.disconnect()


def count_checks(monkeypatch) -> list:
    """The users each access check found, in order."""
    checks: list = []
    session_user = live_access.session_user

    def counted(session_key, user_pk):
        user = session_user(session_key, user_pk)
        checks.append(user)
        return user

    monkeypatch.setattr(live_access, "session_user", counted)
    return checks


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_socket_whose_access_cannot_be_checked_for_several_ticks_is_closed(
    kind, service, running_run, viewer, remote, monkeypatch
):
    live = await open_live(kind, {"service": service, "run": running_run}, viewer)
    failures: list[str] = []

    def unanswered(session_key, user_pk):
        failures.append(session_key)
        raise ConnectionError("the session store does not answer")

    monkeypatch.setattr(live_access, "session_user", unanswered)

    assert await live.close_code() == live_access.CLOSE_UNCHECKED
    assert len(failures) == live_access.FAILED_CHECKS_ALLOWED
    await live.communicator.disconnect()
