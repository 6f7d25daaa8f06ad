"""An owner sees a service's login (FastGPT's root password, One API's root password and token)
after typing their own password again: audited without the secret, in that answer only, and a
wrong password counts toward the login throttle. Viewers and operators get neither the form nor
the login."""

import json

import pytest
from axes.models import AccessAttempt
from django.urls import reverse

from deployments.choices import Role, StackStatus
from deployments.models import AuditEvent
from deployments.stacks.secrets import stack_secrets
from deployments.stacks.xinference_access import ADMIN_PASSWORD
from testkit.factories import add_member, make_server, make_stack, make_user

WRONG_SENTENCE = "That is not your password: the login stays hidden."


@pytest.fixture
def stack(team):
    """A deployed stack with its generated secrets."""
    stack = make_stack(
        make_server(team, host="203.0.113.7"),
        status=StackStatus.RUNNING,
        rendered_files={"docker-compose.yml": "services: {}\n"},
    )
    stack_secrets(stack)
    stack.refresh_from_db()
    return stack


def secrets_of(stack) -> dict:
    return json.loads(stack.secrets)


def reveal(client, stack, password, service="fastgpt", **extra):
    return client.post(
        reverse("stack_reveal_login", args=[stack.pk]),
        {"service": service, "password": password},
        **extra,
    )


def test_an_owner_with_the_right_password_sees_fastgpts_root_login(client, stack, owner):
    client.force_login(owner)
    response = reveal(client, stack, owner.raw_password)
    html = response.content.decode()
    assert response.status_code == 200
    assert secrets_of(stack)["FASTGPT_ROOT_PASSWORD"] in html
    assert "<code>root</code>" in html
    # One service at a time: One API's stays hidden.
    assert secrets_of(stack)["ONEAPI_ROOT_PASSWORD"] not in html


def test_one_apis_login_is_its_root_password_and_token(client, stack, owner):
    client.force_login(owner)
    html = reveal(client, stack, owner.raw_password, service="oneapi").content.decode()
    assert secrets_of(stack)["ONEAPI_ROOT_PASSWORD"] in html
    assert secrets_of(stack)["ONEAPI_ROOT_TOKEN"] in html
    assert secrets_of(stack)["FASTGPT_ROOT_PASSWORD"] not in html


def test_xinference_has_a_login_only_where_its_auth_is_on(client, stack, owner):
    client.force_login(owner)
    page = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert "None: its login is off." in page
    refused = reveal(client, stack, owner.raw_password, service="xinference").content.decode()
    assert "keeps no login for that service" in refused

    stored = secrets_of(stack) | {ADMIN_PASSWORD: "xinference-admin-secret-1"}
    stack.secrets = json.dumps(stored)
    stack.save()
    html = reveal(client, stack, owner.raw_password, service="xinference").content.decode()
    assert "xinference-admin-secret-1" in html and "<code>admin</code>" in html


def test_the_reveal_is_audited_without_the_secret(client, stack, owner):
    client.force_login(owner)
    reveal(client, stack, owner.raw_password)
    event = AuditEvent.objects.get(action="stack.login_revealed")
    assert (event.actor, event.team, event.details) == (owner, stack.team, {"service": "fastgpt"})
    password = secrets_of(stack)["FASTGPT_ROOT_PASSWORD"]
    every_event = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert password not in every_event


def test_the_login_is_in_that_answer_only_not_cached_not_kept(client, stack, owner):
    client.force_login(owner)
    response = reveal(client, stack, owner.raw_password)
    password = secrets_of(stack)["FASTGPT_ROOT_PASSWORD"]
    assert password in response.content.decode()
    assert "no-store" in response.headers["Cache-Control"]
    # Nothing of it in the session (messages included), and the page hides it again.
    session = client.session
    assert password not in json.dumps(dict(session.items()), default=str)
    again = client.get(reverse("stack_detail", args=[stack.pk]))
    assert password not in again.content.decode()
    assert "no-store" in again.headers["Cache-Control"]


def test_htmx_gets_only_the_services_login_box(client, stack, owner):
    client.force_login(owner)
    response = reveal(client, stack, owner.raw_password, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div class="service-login" id="login-fastgpt">')
    assert secrets_of(stack)["FASTGPT_ROOT_PASSWORD"] in html
    assert "<h1>" not in html


def test_a_wrong_password_is_refused_audited_and_counted_toward_the_throttle(client, stack, owner):
    client.force_login(owner)
    response = reveal(client, stack, "not-my-password")
    html = response.content.decode()
    assert WRONG_SENTENCE in html
    assert secrets_of(stack)["FASTGPT_ROOT_PASSWORD"] not in html
    failure = AuditEvent.objects.get(action="stack.login_reveal_failed")
    assert failure.actor == owner
    assert failure.details == {"service": "fastgpt", "reason": "password"}
    assert not AuditEvent.objects.filter(action="stack.login_revealed").exists()
    # The same count as a failed login on the login page.
    attempt = AccessAttempt.objects.get(username=owner.username)
    assert attempt.failures_since_start == 1


def test_after_too_many_wrong_passwords_even_the_right_one_is_refused(
    client, stack, owner, settings
):
    client.force_login(owner)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        reveal(client, stack, "not-my-password")
    response = reveal(client, stack, owner.raw_password)
    html = response.content.decode()
    assert response.status_code == 429
    assert "Too many failed logins" in html
    assert secrets_of(stack)["FASTGPT_ROOT_PASSWORD"] not in html
    assert not AuditEvent.objects.filter(action="stack.login_revealed").exists()
    last = AuditEvent.objects.filter(action="stack.login_reveal_failed").latest("pk")
    assert last.details["reason"] == "locked out"


def test_an_empty_password_asks_for_it_and_counts_nothing(client, stack, owner):
    client.force_login(owner)
    html = reveal(client, stack, "").content.decode()
    assert "Type your password to see the login." in html
    assert not AccessAttempt.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="stack.login_").exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_viewers_and_operators_get_neither_the_form_nor_the_login(client, stack, team, role):
    user = add_member(team, role=role)
    client.force_login(user)
    page = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert reverse("stack_reveal_login", args=[stack.pk]) not in page
    assert "owners of the team can see it" in page
    response = reveal(client, stack, user.raw_password)
    assert response.status_code == 403
    assert secrets_of(stack)["FASTGPT_ROOT_PASSWORD"] not in response.content.decode()
    assert not AuditEvent.objects.filter(action__startswith="stack.login_").exists()


def test_an_owner_of_another_team_gets_404(client, stack, other_team):
    stranger = add_member(other_team, role=Role.OWNER)
    client.force_login(stranger)
    assert reveal(client, stack, stranger.raw_password).status_code == 404


def test_an_owner_sees_the_form_for_each_service_with_a_login(client, stack, owner):
    client.force_login(owner)
    page = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert page.count(f'action="{reverse("stack_reveal_login", args=[stack.pk])}"') == 2
    assert 'id="reveal-password-fastgpt"' in page and 'id="reveal-password-oneapi"' in page
    assert secrets_of(stack)["FASTGPT_ROOT_PASSWORD"] not in page


def test_an_owner_without_a_password_is_sent_to_the_account_page(client, stack, team):
    # Logs in through single sign-on only: no usable password to confirm with.
    sso_owner = add_member(team, make_user("sso-owner"), role=Role.OWNER)
    sso_owner.set_unusable_password()
    sso_owner.save()
    client.force_login(sso_owner)
    page = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert "Set a password on your Account page." in page
    assert f'href="{reverse("account_index")}"' in page
    assert 'id="reveal-password-fastgpt"' not in page
    html = reveal(client, stack, "anything").content.decode()
    assert "set one on your Account page first" in html
    assert secrets_of(stack)["FASTGPT_ROOT_PASSWORD"] not in html
