"""A 403 is one warning line in the log; a server error keeps its traceback."""

import logging

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import include, path, reverse

from testkit.factories import make_user

pytestmark = pytest.mark.django_db


def forbidden(request):
    raise PermissionDenied("This needs the owner role in the team.")


def broken(request):
    raise RuntimeError("a bug")


# The URLs of the tests marked pytest.mark.urls(__name__): the panel's, and two more.
urlpatterns = [
    path("forbidden/", forbidden),
    path("broken/", broken),
    path("", include("controlpanel.urls")),
]


def request_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "django.request"]


def test_a_403_of_a_panel_page_is_one_warning_line_without_a_traceback(client, caplog):
    # A user in no team may not add a server: the page raises PermissionDenied.
    client.force_login(make_user())
    with caplog.at_level(logging.INFO):
        response = client.get(reverse("server_create"))
    assert response.status_code == 403
    [record] = request_records(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"Forbidden (Permission denied): {reverse('server_create')}"
    assert record.exc_info is None
    assert "Traceback" not in caplog.text


@pytest.mark.urls(__name__)
def test_a_permission_denied_anywhere_logs_no_traceback(client, caplog):
    with caplog.at_level(logging.INFO):
        assert client.get("/forbidden/").status_code == 403
    [record] = request_records(caplog)
    assert record.exc_info is None
    assert "Traceback" not in caplog.text
    assert "PermissionDenied" not in caplog.text


@pytest.mark.urls(__name__)
def test_a_server_error_is_still_logged_with_its_traceback(caplog):
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        assert client.get("/broken/").status_code == 500
    [record] = request_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "RuntimeError: a bug" in caplog.text
