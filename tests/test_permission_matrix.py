"""The permission matrix: every route of the URL configuration and every websocket route, tried
by an anonymous visitor, an owner of another team, and a viewer, an operator and an owner of team
Alpha, which owns one object of each kind.

The routes are walked, not listed: a route that MATRIX does not decide fails every test of it,
so a new view cannot ship without saying which role its GET and its POST need. The answers:

- an anonymous visitor is sent to log in (Django's admin: to the admin's login);
- a member of another team gets 404 for anything of Alpha's, and never sees an Alpha name;
- a member of Alpha below the role gets 403; at or above it, not a refusal;
- a refused request changes nothing (no row added or removed, no role changed, no audit event,
  no run queued), and no GET changes anything, whoever sends it.

Allowed POSTs are sent empty: they get past the role check and stop at their form or their
action's own refusal. Tasks stay queued (the `queued` fixture), and every address the objects
name is a closed port on loopback, so nothing reaches a real server.
"""

import socket
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from controlpanel.asgi import application
from deployments.actions.invitations import token_hash
from deployments.choices import (
    DocumentSource,
    DocumentStatus,
    LaunchStatus,
    PipelineKind,
    Role,
    RunStatus,
)
from deployments.consumers import logs as log_consumers
from deployments.consumers.live_access import CLOSE_NOT_LOGGED_IN, CLOSE_NOT_VISIBLE
from deployments.models import (
    AuditEvent,
    ChatApp,
    Document,
    Invitation,
    KnowledgeBase,
    LLMModelConfig,
    Membership,
    ModelLaunch,
    NotificationChannel,
    RemoteProvider,
    Service,
    ShareLink,
    StackBackup,
)
from deployments.tasks import check_server_task
from testkit.factories import add_member, make_deployment, make_run, make_server, make_stack
from testkit.permissions import http_routes, reaches, snapshot, websocket_routes
from testkit.websockets import in_thread, session_cookie

# Who asks.
# Who may do what is decided in Python, the same on either database engine.
pytestmark = pytest.mark.engine_agnostic

ANONYMOUS = "anonymous"
OUTSIDER = "other-team"  # an owner of team Beta: the most an outsider can be
VIEWER, OPERATOR, OWNER = Role.VIEWER.value, Role.OPERATOR.value, Role.OWNER.value
ROLES = [ANONYMOUS, OUTSIDER, VIEWER, OPERATOR, OWNER]
RANK = {VIEWER: 1, OPERATOR: 2, OWNER: 3}

# What a method of a route needs, besides VIEWER, OPERATOR and OWNER (a role in the team that
# owns the route's object, or for a route about no object, in any team).
ANYONE = "anyone"  # anonymous visitors too
USER = "user"  # any logged-in user: the page shows their own teams' things
STAFF = "staff"  # Django's admin: staff accounts, which no team role makes
STAFF_LOGIN = "staff login"  # the admin's login: anonymous to the panel's login, others 403
# What does not exist here for anyone (a confirmation key that is no key, the OIDC provider
# while none is configured): 404.
ABSENT = "absent"
# A user's own authenticator that the users here have none of: 404 once logged in.
OWN_ABSENT = "own, absent"
# allauth's page for a third-party login that failed answers 401.
LOGIN_ERROR_PAGE = "401"
NOT_SERVED = "405"  # the GET of an action: 405 Method Not Allowed
# The POST of a page that only shows: answered like its GET (or 405), and it changes nothing.
NO_ACTION = "no action"

# URL name: (what its GET needs, what its POST needs, which of Alpha's objects its `pk` is).
MATRIX: dict[str, tuple[str, str, str | None]] = {
    "login": (ANYONE, ANYONE, None),
    # allauth's logout: its GET asks to confirm.
    "logout": (ANYONE, ANYONE, None),
    "dashboard": (USER, NO_ACTION, None),
    "server_list": (USER, NO_ACTION, None),
    "server_create": (OPERATOR, OPERATOR, None),
    "server_detail": (VIEWER, NO_ACTION, "server"),
    "server_edit": (OPERATOR, OPERATOR, "server"),
    "server_check": (NOT_SERVED, OPERATOR, "server"),
    "server_prepare": (NOT_SERVED, OPERATOR, "server"),
    "server_accept_host_key": (NOT_SERVED, OWNER, "server"),
    # The idle guard: owners set it, anyone of the team keeps an idle server running,
    # operators start again what it stopped.
    "server_idle_settings": (NOT_SERVED, OWNER, "server"),
    "server_idle_keep_running": (NOT_SERVED, VIEWER, "server"),
    "server_idle_start_again": (NOT_SERVED, OPERATOR, "server"),
    "stack_list": (USER, NO_ACTION, None),
    "stack_create": (OPERATOR, OPERATOR, None),
    "stack_detail": (VIEWER, NO_ACTION, "stack"),
    "stack_deploy": (NOT_SERVED, OPERATOR, "stack"),
    # Its GET asks before every service is restarted.
    "stack_restart": (OPERATOR, OPERATOR, "stack"),
    "stack_upgrade": (OPERATOR, OPERATOR, "stack"),
    "stack_rollback": (NOT_SERVED, OPERATOR, "stack"),
    "stack_teardown": (OPERATOR, OPERATOR, "stack"),
    "stack_services": (NOT_SERVED, OPERATOR, "stack"),
    # The services table that the stack's page reads again every few seconds.
    "stack_services_table": (VIEWER, NO_ACTION, "stack"),
    # A service's login, for an owner who types their password again.
    "stack_reveal_login": (NOT_SERVED, OWNER, "stack"),
    # Backups: members see the list; operators back up, set the keeping and download (a POST,
    # audited, streamed from the server).
    "stack_backups": (VIEWER, NO_ACTION, "stack"),
    "stack_backup_start": (NOT_SERVED, OPERATOR, "stack"),
    "stack_backup_settings": (NOT_SERVED, OPERATOR, "stack"),
    "stack_backup_download": (NOT_SERVED, OPERATOR, "backup"),
    # Its GET asks for the stack's name before the backup replaces the databases.
    "stack_backup_restore": (OPERATOR, OPERATOR, "backup"),
    "stack_logs": (VIEWER, NO_ACTION, "stack"),
    "stack_logs_recent": (VIEWER, NO_ACTION, "stack"),
    "stack_service_logs": (VIEWER, NO_ACTION, "service"),
    "stack_service_logs_recent": (VIEWER, NO_ACTION, "service"),
    "deployment_list": (USER, NO_ACTION, None),
    "deployment_detail": (VIEWER, NO_ACTION, "deployment"),
    "run_detail": (VIEWER, NO_ACTION, "run"),
    "run_steps": (VIEWER, NO_ACTION, "run"),
    "run_retry": (NOT_SERVED, OPERATOR, "run"),
    "run_cancel": (NOT_SERVED, OPERATOR, "run"),
    "team_list": (USER, NO_ACTION, None),
    "team_detail": (VIEWER, NO_ACTION, "team"),
    # Any user may start a team (they own it); members join through invitations.
    "team_create": (NOT_SERVED, USER, None),
    "team_invitation_create": (NOT_SERVED, OWNER, "team"),
    "team_invitation_revoke": (NOT_SERVED, OWNER, "team"),
    "team_owner_two_factor": (NOT_SERVED, OWNER, "team"),
    "team_budget": (NOT_SERVED, OWNER, "team"),
    # Public: whoever holds a valid link sees which team it is for, and joins or signs up.
    "invitation_accept": (ANYONE, ANYONE, None),
    "team_member_role": (NOT_SERVED, OWNER, "team"),
    # Its GET asks before the member is removed.
    "team_member_remove": (OWNER, OWNER, "team"),
    "audit_list": (USER, NO_ACTION, None),
    # Finds only the user's own teams' objects.
    "search": (USER, NO_ACTION, None),
    "model_list": (USER, NO_ACTION, None),
    "model_launch_detail": (VIEWER, NO_ACTION, "launch"),
    "model_launch_cancel": (NOT_SERVED, OPERATOR, "launch"),
    "model_launch_terminate": (NOT_SERVED, OPERATOR, "launch"),
    "model_preset": (OPERATOR, OPERATOR, None),
    "model_create": (OPERATOR, OPERATOR, None),
    "model_detail": (VIEWER, NO_ACTION, "model_config"),
    "model_edit": (OPERATOR, OPERATOR, "model_config"),
    "model_delete": (OPERATOR, OPERATOR, "model_config"),
    "model_launch_create": (NOT_SERVED, OPERATOR, "model_config"),
    "knowledge_list": (VIEWER, OPERATOR, "stack"),
    "knowledge_detail": (VIEWER, NO_ACTION, "knowledge_base"),
    "knowledge_upload": (NOT_SERVED, OPERATOR, "knowledge_base"),
    "knowledge_import": (NOT_SERVED, OPERATOR, "knowledge_base"),
    "knowledge_add_source": (NOT_SERVED, OPERATOR, "knowledge_base"),
    # FastGPT's search test only reads: viewers may.
    "knowledge_search": (VIEWER, NO_ACTION, "knowledge_base"),
    "knowledge_delete": (OPERATOR, OPERATOR, "knowledge_base"),
    "document_delete": (NOT_SERVED, OPERATOR, "document"),
    "document_reimport": (NOT_SERVED, OPERATOR, "document"),
    "chatbot_publish": (OPERATOR, OPERATOR, "stack"),
    "chatbot_upload": (NOT_SERVED, OPERATOR, "stack"),
    "chatbot_progress": (VIEWER, NO_ACTION, "chatbot_run"),
    "app_list": (VIEWER, NO_ACTION, "stack"),
    "app_create": (OPERATOR, OPERATOR, "stack"),
    "app_detail": (VIEWER, NO_ACTION, "app"),
    "app_edit": (OPERATOR, OPERATOR, "app"),
    "app_delete": (OPERATOR, OPERATOR, "app"),
    "app_chat_test": (NOT_SERVED, OPERATOR, "app"),
    "app_share_link_create": (NOT_SERVED, OPERATOR, "app"),
    "app_share_link_revoke": (NOT_SERVED, OPERATOR, "share_link"),
    "provider_list": (VIEWER, NO_ACTION, "stack"),
    "provider_create": (OPERATOR, OPERATOR, "stack"),
    "provider_test": (NOT_SERVED, OPERATOR, "stack"),
    "provider_edit": (OPERATOR, OPERATOR, "provider"),
    "provider_delete": (NOT_SERVED, OPERATOR, "provider"),
    # A team's notification channels: members see the list (never a URL's token or a secret),
    # operators may send a test, owners manage them; deleting asks to confirm first.
    "notification_list": (VIEWER, NO_ACTION, "team"),
    "notification_create": (OWNER, OWNER, "team"),
    "notification_edit": (OWNER, OWNER, "channel"),
    "notification_delete": (OWNER, OWNER, "channel"),
    "notification_test": (NOT_SERVED, OPERATOR, "channel"),
    # Accounts (allauth): the login, the password reset and the third-party login pages are
    # public; the rest is a user's own account.
    "account_index": (USER, NO_ACTION, None),
    "account_login": (ANYONE, ANYONE, None),
    "account_logout": (ANYONE, ANYONE, None),
    "account_inactive": (ANYONE, NO_ACTION, None),
    "account_signup": (ANYONE, ANYONE, None),
    "account_reauthenticate": (USER, USER, None),
    "account_request_reauthentication_code": (USER, USER, None),
    "account_confirm_reauthentication_code": (USER, USER, None),
    "account_email": (USER, USER, None),
    "account_email_verification_sent": (ANYONE, NO_ACTION, None),
    "account_confirm_email": (ANYONE, ABSENT, None),
    "account_change_password": (USER, USER, None),
    "account_set_password": (USER, USER, None),
    "account_reset_password": (ANYONE, ANYONE, None),
    "account_confirm_password_reset_code": (ANYONE, ANYONE, None),
    "account_complete_password_reset": (ANYONE, ANYONE, None),
    "account_password_reset_completed": (ANYONE, NO_ACTION, None),
    "account_confirm_login_code": (ANYONE, ANYONE, None),
    "mfa_index": (USER, NO_ACTION, None),
    "mfa_authenticate": (ANYONE, ANYONE, None),
    "mfa_reauthenticate": (USER, USER, None),
    "mfa_activate_totp": (USER, USER, None),
    "mfa_deactivate_totp": (OWN_ABSENT, OWN_ABSENT, None),
    "mfa_view_recovery_codes": (OWN_ABSENT, NOT_SERVED, None),
    "mfa_generate_recovery_codes": (USER, USER, None),
    "mfa_download_recovery_codes": (OWN_ABSENT, NO_ACTION, None),
    "usersessions_list": (USER, USER, None),
    "socialaccount_login_cancelled": (ANYONE, NO_ACTION, None),
    "socialaccount_login_error": (LOGIN_ERROR_PAGE, NOT_SERVED, None),
    "socialaccount_signup": (ANYONE, ANYONE, None),
    "socialaccount_connections": (USER, USER, None),
    "<accounts/social/login/cancelled/>": (ANYONE, ANYONE, None),
    "<accounts/social/login/error/>": (ANYONE, ANYONE, None),
    "<accounts/social/signup/>": (ANYONE, ANYONE, None),
    "<accounts/social/connections/>": (ANYONE, ANYONE, None),
    "openid_connect_login": (ABSENT, ABSENT, None),
    "openid_connect_callback": (ABSENT, ABSENT, None),
    # The language switch (Django's set_language): anyone may choose the page's language.
    "set_language": (ANYONE, ANYONE, None),
    # Django's admin: its login sends to the panel's (which asks for the second factor) and
    # refuses a user who is not staff; everything else is for staff accounts only.
    "admin:login": (STAFF_LOGIN, STAFF_LOGIN, None),
}
# A namespace decided as a whole: every route in it that MATRIX does not name.
NAMESPACES: dict[str, tuple[str, str, str | None]] = {"admin": (STAFF, STAFF, None)}

# The token of the invitation to team Alpha that the world holds.
INVITATION_TOKEN = "matrix-invitation-token"

# Arguments other than `pk` that name an object of Alpha's, by the argument's name.
OBJECT_ARGUMENTS = {
    "deployment_pk": "deployment",
    "membership_pk": "membership",
    "invitation_pk": "invitation",
    "run_id": "run",
    "service_id": "service",
    "stack_id": "stack",
}
# Arguments that name no object of Alpha's.
FIXED_ARGUMENTS: dict[str, object] = {
    "kind": "llm",
    "source": DocumentSource.TEXT.value,
    "option": 0,
    # Django's admin refuses before it looks anything up.
    "app_label": "deployments",
    "object_id": 1,
    "id": 1,
    "content_type_id": 1,
    "url": "no-such-page/",
    # The link of Alpha's pending invitation.
    "token": INVITATION_TOKEN,
    # allauth: an e-mail confirmation key that is no key, and an OIDC provider (none is set).
    "key": "no-such-key",
    "provider_id": "oidc",
}
# Websocket routes by consumer: what connecting needs. The object is the route's argument.
WEBSOCKET_MATRIX: dict[str, str] = {
    "PipelineRunConsumer": VIEWER,
    "ServiceLogsConsumer": VIEWER,
    "StackLogsConsumer": VIEWER,
}
# Allowed answers besides 2xx and 3xx, where a route gets past the role check and then stops
# for a reason of its own.
ALSO_ALLOWED: dict[str, set[int]] = {
    # No container to read (the stack was never deployed): "the logs could not be read".
    "stack_logs_recent": {502},
    "stack_service_logs_recent": {502},
    # An empty body is not a file: a JSON error the page shows.
    "knowledge_upload": {400},
    "chatbot_upload": {400},
}

# In the name of every object of Alpha's: no page may show it to someone outside the team.
MARKER = "alphaonly"

HTTP_ROUTES = http_routes()
APP_ROUTES = [route for route in HTTP_ROUTES if not route.name.startswith("admin:")]
ADMIN_ROUTES = [route for route in HTTP_ROUTES if route.name.startswith("admin:")]
WEBSOCKET_ROUTES = websocket_routes()

# Outcomes.
TO_LOGIN = "sent to log in"
TO_ADMIN_LOGIN = "sent to the admin's login"
DENIED = "403"
HIDDEN = "404"
NOT_ALLOWED = "405"
ALLOWED = "allowed"
REFUSED = {TO_LOGIN, TO_ADMIN_LOGIN, DENIED, HIDDEN, NOT_ALLOWED}


def decision(route) -> tuple[str, str, str | None]:
    if route.name in MATRIX:
        return MATRIX[route.name]
    namespace = route.name.partition(":")[0] if ":" in route.name else ""
    if namespace in NAMESPACES:
        return NAMESPACES[namespace]
    pytest.fail(
        f"Route {route.name!r} ({route.pattern}) is not in the permission matrix: add it to "
        f"MATRIX in {__name__} with the role its GET and its POST need (NOT_SERVED for the "
        f"GET of an action, NO_ACTION for the POST of a page) and what its pk is."
    )


def outcome(need: str, role: str, *, about_alpha: bool) -> str:
    """What `role` should get from a method that needs `need`."""
    if need == NOT_SERVED:
        return NOT_ALLOWED
    if need == ANYONE:
        return ALLOWED
    if need == STAFF:
        return TO_ADMIN_LOGIN
    if need == STAFF_LOGIN:
        return TO_LOGIN if role == ANONYMOUS else DENIED
    if need == ABSENT:
        return HIDDEN
    if need == OWN_ABSENT:
        return TO_LOGIN if role == ANONYMOUS else HIDDEN
    if need == LOGIN_ERROR_PAGE:
        return need
    if role == ANONYMOUS:
        return TO_LOGIN
    if role == OUTSIDER:
        if about_alpha:
            return HIDDEN
        rank = RANK[OWNER]  # of their own team, which is what a route about no object asks
    else:
        rank = RANK[role]
    if need == USER or rank >= RANK[need]:
        return ALLOWED
    return DENIED


def redirects_to(response, *paths: str) -> bool:
    return response.status_code == 302 and urlparse(response.url).path in paths


def check_answer(response, expected: str, *, route, method: str, role: str, public: bool):
    status = response.status_code
    where = f"{method} {route.name} as {role} answered {status}"
    if expected == TO_LOGIN:
        assert redirects_to(response, reverse("login")), f"{where}, not a redirect to log in"
    elif expected == TO_ADMIN_LOGIN:
        # The admin's logout sends a visitor who is not staff to the admin's index, which
        # sends them to its login.
        admin = (reverse("admin:login"), reverse("admin:index"))
        assert redirects_to(response, *admin), f"{where}, not a redirect to the admin's login"
    elif expected == NOT_ALLOWED:
        # Logging in may come first.
        sent_to_log_in = role == ANONYMOUS and redirects_to(response, reverse("login"))
        assert status == 405 or sent_to_log_in, f"{where}, not 405"
    elif expected == ALLOWED:
        refused = status in (401, 403, 404, 405)
        assert not refused, f"{where}: refused, where the matrix allows it"
        if not public:
            assert not redirects_to(response, reverse("login")), f"{where}: sent to log in"
        ok = status < 400 or status in ALSO_ALLOWED.get(route.name, set())
        assert ok, f"{where}: {response.content[:500]!r}"
    else:
        assert status == int(expected), f"{where}, not {expected}"
    if role in (ANONYMOUS, OUTSIDER):
        body = b"" if getattr(response, "streaming", False) else response.content
        assert MARKER.encode() not in body, f"{where} and showed an object of team Alpha"


def person(username: str):
    # No password: hashing one costs more than the rest of a test here.
    return get_user_model().objects.create(username=username)


@pytest.fixture
def people(team, other_team):
    """Who asks, by role: None for the anonymous visitor."""
    return {
        ANONYMOUS: None,
        OUTSIDER: add_member(other_team, person("beta-owner"), role=Role.OWNER),
        VIEWER: add_member(team, person("alpha-viewer"), role=Role.VIEWER),
        OPERATOR: add_member(team, person("alpha-operator"), role=Role.OPERATOR),
        OWNER: add_member(team, person("alpha-owner"), role=Role.OWNER),
    }


def closed_ports(count: int) -> list[int]:
    """Loopback ports nothing listens on: a connection to one is refused at once."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture
def no_tasks(queued, monkeypatch):
    """What actions queue, kept here: run ids, then server checks."""
    checks: list[int] = []
    monkeypatch.setattr(check_server_task, "delay_on_commit", checks.append)
    return queued, checks


@pytest.fixture
def world(team, people, no_tasks, settings, tmp_path):
    """One object of each kind, in team Alpha, by the name its routes' arguments use."""
    settings.DOCUMENT_STAGING_DIR = tmp_path / "staging"
    ssh, fastgpt, oneapi, xinference, receiver = closed_ports(5)
    server = make_server(team, name=f"gpu-{MARKER}", host="127.0.0.1", ssh_port=ssh)
    stack = make_stack(
        server,
        name=f"stack-{MARKER}",
        fastgpt_port=fastgpt,
        oneapi_port=oneapi,
        xinference_port=xinference,
    )
    # No container yet: the logs say so instead of opening an SSH session.
    service = Service.objects.create(stack=stack, name=f"svc-{MARKER}")
    deployment = make_deployment(stack, user=people[OPERATOR])
    run = make_run(
        team,
        status=RunStatus.FAILED,
        kind=PipelineKind.SERVER_PREPARE,
        params={"server_id": server.pk},
        error=f"{MARKER} failed",
    )
    chatbot_run = make_run(
        team,
        status=RunStatus.RUNNING,
        kind=PipelineKind.CHATBOT_PUBLISH,
        params={"stack_id": stack.pk, "name": f"bot-{MARKER}"},
    )
    model_config = LLMModelConfig.objects.create(
        team=team,
        model=f"llm-{MARKER}",
        display_name=f"Chat {MARKER}",
        xinference_model_name="qwen2.5-instruct",
    )
    launch = ModelLaunch.objects.create(
        team=team,
        stack=stack,
        llm=model_config,
        model_uid=model_config.model,
        status=LaunchStatus.LAUNCHING,
        run=make_run(team, status=RunStatus.RUNNING, kind=PipelineKind.MODEL_LAUNCH),
    )
    knowledge_base = KnowledgeBase.objects.create(
        team=team,
        stack=stack,
        name=f"kb-{MARKER}",
        embedding_model="m3e-base",
        agent_model="qwen2.5-instruct",
    )
    document = Document.objects.create(
        knowledge_base=knowledge_base,
        source=DocumentSource.TEXT,
        name=f"doc-{MARKER}",
        text="Some text.",
        status=DocumentStatus.FAILED,
    )
    app = ChatApp.objects.create(
        team=team, stack=stack, name=f"app-{MARKER}", chat_model="qwen2.5-instruct"
    )
    share_link = ShareLink.objects.create(app=app, name=f"link-{MARKER}")
    provider = RemoteProvider.objects.create(
        team=team, stack=stack, name=f"prov-{MARKER}", api_key="sk-test", model_names=["gpt-x"]
    )
    channel = NotificationChannel.objects.create(
        team=team,
        kind="webhook",
        name=f"hook-{MARKER}",
        target=f"http://127.0.0.1:{receiver}/hooks/token-{MARKER}-webhook-url",
        target_hint=f"http://127.0.0.1:{receiver}/…",
        secret=f"whsec_{MARKER}_signing_secret",
        events=["run_failed"],
        # A closed port on loopback: a test sent by the matrix is refused at once.
        allow_private=True,
    )
    member = add_member(team, person(f"member-{MARKER}"), role=Role.VIEWER)
    invitation = Invitation.objects.create(
        team=team,
        role=Role.VIEWER,
        # The link's holder sees the team and this address: neither is an object's name.
        email="invited@example.com",
        token_hash=token_hash(INVITATION_TOKEN),
        created_by=people[OWNER],
        expires_at=timezone.now() + timedelta(days=1),
    )
    backup = StackBackup.objects.create(
        team=team, stack=stack, status="succeeded", folder=f"/opt/{MARKER}/backups/1"
    )
    AuditEvent.objects.create(team=team, action="server.create", target_repr=server.name)
    return {
        "backup": backup,
        "team": team,
        "server": server,
        "stack": stack,
        "service": service,
        "deployment": deployment,
        "run": run,
        "chatbot_run": chatbot_run,
        "model_config": model_config,
        "launch": launch,
        "knowledge_base": knowledge_base,
        "document": document,
        "app": app,
        "share_link": share_link,
        "provider": provider,
        "channel": channel,
        "membership": Membership.objects.get(user=member, team=team),
        "invitation": invitation,
    }


def arguments(route, world: dict | None, target: str | None) -> tuple[dict[str, object], bool]:
    """The values of the route's arguments, and whether one of them is an object of Alpha's;
    `target` is the object its `pk` is."""
    values: dict[str, object] = {}
    about_alpha = False
    for name in route.arguments:
        if name == "pk":
            if target is None:
                pytest.fail(f"Say in MATRIX which object the pk of {route.name!r} is.")
            values[name], about_alpha = world[target].pk, True
        elif name in OBJECT_ARGUMENTS:
            values[name], about_alpha = world[OBJECT_ARGUMENTS[name]].pk, True
        elif name in FIXED_ARGUMENTS:
            values[name] = FIXED_ARGUMENTS[name]
        else:
            pytest.fail(f"Say in OBJECT_ARGUMENTS or FIXED_ARGUMENTS what {name!r} is.")
    return values, about_alpha


def try_route(client, route, role: str, user, world: dict | None, no_tasks):
    """GET, then an empty POST: each answered as the matrix says; refused ones change nothing."""
    get_needs, post_needs, target = decision(route)
    values, about_alpha = arguments(route, world, target)
    path = route.path(values)
    assert reaches(route, path), f"{path} does not reach {route.name}"
    if user is not None:
        client.force_login(user)
    queued, checks = no_tasks if no_tasks is not None else ([], [])
    before = snapshot()

    expected = outcome(get_needs, role, about_alpha=about_alpha)
    response = client.get(path)
    public = get_needs == ANYONE
    check_answer(response, expected, route=route, method="GET", role=role, public=public)
    assert snapshot() == before, f"GET {route.name} as {role} changed the database"

    response = client.post(path)
    if post_needs == NO_ACTION:
        # A page: its POST is served like its GET, or refused outright.
        if expected == ALLOWED and response.status_code == 405:
            expected = NOT_ALLOWED
    else:
        expected = outcome(post_needs, role, about_alpha=about_alpha)
        public = post_needs == ANYONE
    check_answer(response, expected, route=route, method="POST", role=role, public=public)
    if expected in REFUSED or post_needs == NO_ACTION:
        where = f"POST {route.name} as {role}"
        assert snapshot() == before, f"{where} changed the database"
        assert (queued, checks) == ([], []), f"{where} queued work"


def test_the_matrix_decides_every_route_and_only_routes_that_exist():
    names = {route.name for route in HTTP_ROUTES}
    undecided = sorted(
        route.name
        for route in HTTP_ROUTES
        if route.name not in MATRIX and route.name.partition(":")[0] not in NAMESPACES
    )
    assert undecided == [], f"Add these routes to MATRIX in {__name__}: {undecided}"
    assert set(MATRIX) <= names, f"Not routes any more: {sorted(set(MATRIX) - names)}"
    for route in HTTP_ROUTES:
        target = decision(route)[2]
        assert (target is not None) == ("pk" in route.arguments), (
            f"{route.name}: its pk is {target}"
        )
    consumers = {route.name for route in WEBSOCKET_ROUTES}
    assert consumers == set(WEBSOCKET_MATRIX), (
        f"Decide WEBSOCKET_MATRIX for {sorted(consumers ^ set(WEBSOCKET_MATRIX))}"
    )


def test_the_walk_finds_the_routes_of_every_area():
    names = {route.name for route in HTTP_ROUTES}
    # One of each urls module, and one nested in a namespace.
    assert {"login", "stack_detail", "knowledge_list", "app_list", "provider_list"} <= names
    assert "admin:index" in names
    assert {route.pattern for route in WEBSOCKET_ROUTES} == {
        "ws/runs/<int:run_id>/",
        "ws/services/<int:service_id>/logs/",
        "ws/stacks/<int:stack_id>/logs/",
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", APP_ROUTES, ids=str)
def test_a_route_answers_each_role_as_the_matrix_says(client, people, world, no_tasks, route, role):
    try_route(client, route, role, people[role], world, no_tasks)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=str)
def test_the_admin_is_for_staff_whatever_the_team_role(client, people, route, role):
    try_route(client, route, role, people[role], None, None)


@pytest.fixture
def remote(monkeypatch):
    """The containers a log socket opens: none may be, as no service has one."""
    opened: list[str] = []

    def open_remote_logs(server, container, tail):
        opened.append(container)
        raise AssertionError("a log socket opened a remote stream")

    monkeypatch.setattr(log_consumers, "open_remote_logs", open_remote_logs)
    return opened


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", WEBSOCKET_ROUTES, ids=str)
async def test_a_websocket_lets_in_only_those_who_may_see_its_object(
    people, world, remote, route, role
):
    needs = WEBSOCKET_MATRIX.get(route.name)
    if needs is None:
        pytest.fail(f"Add {route.name} ({route.pattern}) to WEBSOCKET_MATRIX in {__name__}.")
    values, about_alpha = arguments(route, world, None)
    assert about_alpha, f"{route.name}: the matrix only knows sockets about an object"
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    user = people[role]
    if user is not None:
        headers.append((b"cookie", await in_thread(session_cookie, user)))
    communicator = WebsocketCommunicator(application, route.path(values), headers=headers)
    connected, code = await communicator.connect(timeout=10)
    try:
        expected = outcome(needs, role, about_alpha=True)
        where = f"{route.name} as {role}"
        if expected == TO_LOGIN:
            assert (connected, code) == (False, CLOSE_NOT_LOGGED_IN), where
        elif expected in (HIDDEN, DENIED):
            assert (connected, code) == (False, CLOSE_NOT_VISIBLE), where
        else:
            assert connected, f"{where} was refused with {code}"
        assert remote == []
    finally:
        await communicator.disconnect()


# The secret scan: what the panel holds is never in a page, whoever asks.


def held_secrets(world: dict) -> dict[str, str]:
    """Every secret the world's objects hold, by where it is held: the stack's generated and
    obtained ones, the server's private key, a provider's API key, a notification channel's
    URL and signing secret."""
    from deployments.stacks.secrets import ONEAPI_ACCESS_TOKEN, save_obtained_secret, stack_secrets
    from testkit.target import KeyPair

    stack, server, provider = world["stack"], world["server"], world["provider"]
    save_obtained_secret(stack, ONEAPI_ACCESS_TOKEN, f"token-{MARKER}-oneapi-access")
    server.ssh_private_key = KeyPair.generate().private_openssh
    server.save()
    provider.api_key = f"sk-{MARKER}-provider-key"
    provider.save()
    held = {f"stack {name}": value for name, value in stack_secrets(stack).items()}
    # A key's body lines: any of them in a page is a leak.
    for number, line in enumerate(server.ssh_private_key.splitlines()[1:-1]):
        held[f"ssh key line {number}"] = line
    held["provider api key"] = provider.api_key
    held["notification channel url"] = world["channel"].target
    held["notification channel secret"] = world["channel"].secret
    return held


@pytest.mark.parametrize("route", APP_ROUTES, ids=str)
def test_no_page_shows_a_secret_the_panel_holds(client, people, world, no_tasks, route):
    held = held_secrets(world)
    get_needs, _post_needs, target = decision(route)
    if get_needs == NOT_SERVED:
        return
    values, _about_alpha = arguments(route, world, target)
    client.force_login(people[OWNER])

    body = client.get(route.path(values)).content.decode(errors="replace")

    shown = [where for where, value in held.items() if len(value) >= 8 and value in body]
    assert shown == [], f"{route.name} shows {shown}"
