# testkit/needs.py names what each fixture here needs set up first (tests/test_needs.py checks
# that none is left out): scripts/test prepares only what the selected tests need.
import os

import pytest
from django.utils import translation

from deployments.choices import Role, StackStatus
from deployments.tasks import run_pipeline
from testkit.factories import add_member, make_server, make_stack, make_team
from testkit.knowledge import standin_fastgpt

# Compose projects of this test process get their own names, so two test runs on one
# Docker engine never share containers; worker processes inherit it from the environment.
PROJECT_PREFIX = os.environ.setdefault("STACK_PROJECT_PREFIX", f"test{os.getpid()}s")


@pytest.fixture(autouse=True)
def _own_compose_projects(settings):
    settings.STACK_PROJECT_PREFIX = PROJECT_PREFIX


@pytest.fixture(autouse=True)
def _english_after_each_test():
    # A request in another language leaves it active in the thread (LocaleMiddleware does not
    # undo it), so the next test would read Chinese where it expects the default.
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # The manifest storage needs `collectstatic` first; pages under test only need URLs.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def team(db):
    return make_team("Alpha")


@pytest.fixture
def other_team(db):
    return make_team("Beta")


@pytest.fixture
def owner(team):
    return add_member(team, role=Role.OWNER)


@pytest.fixture
def operator(team):
    return add_member(team, role=Role.OPERATOR)


@pytest.fixture
def viewer(team):
    return add_member(team, role=Role.VIEWER)


# A real SSH server in a container (testkit/target.py). Modules using these mark themselves slow.
@pytest.fixture(scope="session")
def ssh_target_image():
    from testkit.target import prepare_image

    return prepare_image()


@pytest.fixture
def ssh_target(ssh_target_image):
    """A started target: root and deploy accept `ssh_target.key`; deploy and limited have
    `ssh_target.passwords`."""
    from testkit.target import SSHTarget

    with SSHTarget(ssh_target_image, deploy_key=True) as target:
        yield target


@pytest.fixture
def page():
    """A chromium page driven by Playwright (tests using it are slow)."""
    from testkit.browser import browser_page

    with browser_page() as page:
        yield page


@pytest.fixture
def eager_tasks():
    """Celery tasks run in the process that queues them, for browser tests without a worker."""
    from controlpanel.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def fastgpt_stack(team, tmp_path, settings):
    """A running stack whose FastGPT is the stand-in, served from a thread on loopback; its
    `standin` is the running stand-in. Uploads are staged under tmp_path."""
    settings.DOCUMENT_STAGING_DIR = tmp_path / "staging"
    settings.TRAINING_POLL_SECONDS = 0
    stack = make_stack(make_server(team, host="127.0.0.1"), status=StackStatus.RUNNING)
    with standin_fastgpt(stack, tmp_path) as running:
        stack.standin = running
        yield stack


@pytest.fixture
def queued(monkeypatch):
    """The ids of the runs actions queue, for testkit.knowledge.run_queued to run here."""
    ids: list[int] = []
    monkeypatch.setattr(run_pipeline, "delay_on_commit", ids.append)
    return ids


@pytest.fixture
def data_dir(tmp_path):
    """A stack's data directory, seen at the same path by an SSH target (testkit/stacks.py)."""
    return tmp_path / "stack"


@pytest.fixture
def models_dir(data_dir):
    """A folder of model weights beside the stack's data, mounted into its Xinference."""
    folder = data_dir.parent / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
