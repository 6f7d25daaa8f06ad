import pytest

from deployments.choices import Role
from testkit.factories import add_member, make_team


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
