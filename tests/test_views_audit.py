from django.urls import reverse

from deployments import audit
from deployments.models import AuditEvent
from testkit.factories import make_server, make_user


def actions_listed(response) -> list[str]:
    return [event.action for event in response.context["page"].object_list]


def test_audit_page_shows_the_teams_events_newest_first(client, team, operator):
    server = make_server(team, name="gpu-a")
    audit.record("server.create", actor=operator, target=server)
    audit.record("server.update", actor=operator, target=server, details={"changed": ["host"]})
    client.force_login(operator)
    response = client.get(reverse("audit_list"))
    html = response.content.decode()
    # Logging in is on the trail too, as the newest event.
    assert actions_listed(response) == ["login", "server.update", "server.create"]
    assert operator.username in html
    assert "changed: host" in html


def test_audit_page_includes_the_users_own_logins_but_not_other_peoples(
    client, team, operator, viewer
):
    client.post(reverse("login"), {"login": viewer.username, "password": viewer.raw_password})
    client.post(reverse("logout"))
    client.post(reverse("login"), {"login": operator.username, "password": operator.raw_password})
    response = client.get(reverse("audit_list"))
    events = list(response.context["page"].object_list)
    assert [e.action for e in events] == ["login"]
    assert events[0].actor == operator


def test_audit_page_hides_other_teams_events(client, team, other_team, operator):
    outsider = make_user()
    audit.record("server.create", actor=outsider, target=make_server(other_team, name="theirs"))
    client.force_login(operator)
    response = client.get(reverse("audit_list"))
    assert "theirs" not in response.content.decode()
    assert "server.create" not in actions_listed(response)


def test_audit_page_filters_by_action(client, team, operator):
    server = make_server(team)
    audit.record("server.create", actor=operator, target=server)
    audit.record("server.update", actor=operator, target=server)
    client.force_login(operator)
    response = client.get(reverse("audit_list"), {"action": "server.create"})
    assert actions_listed(response) == ["server.create"]


def test_an_unknown_action_filter_is_a_form_error_not_a_500(client, team, operator):
    client.force_login(operator)
    response = client.get(reverse("audit_list"), {"action": "<script>"})
    assert response.status_code == 200
    assert "action" in response.context["form"].errors
    assert actions_listed(response) == []


def test_audit_page_is_paginated_and_htmx_gets_the_table_only(client, team, operator):
    server = make_server(team)
    AuditEvent.objects.bulk_create(
        AuditEvent(
            team=team,
            actor=operator,
            actor_name=operator.username,
            action="server.update",
            target_repr=server.name,
        )
        for _ in range(30)
    )
    client.force_login(operator)
    second = client.get(reverse("audit_list"), {"page": 2}, headers={"HX-Request": "true"})
    # 30 updates and the login: 25 on the first page, 6 on the second.
    assert len(second.context["page"].object_list) == 6
    assert second.content.decode().lstrip().startswith('<div id="audit-table">')


def test_user_text_in_the_trail_is_escaped(client, team, operator):
    server = make_server(team)
    audit.record(
        "server.update", actor=operator, target=server, details={"note": "<img src=x onerror=1>"}
    )
    client.force_login(operator)
    html = client.get(reverse("audit_list")).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=1&gt;" in html


def test_audit_page_names_actions_in_words_in_the_pages_language(client, team, operator):
    server = make_server(team, name="gpu-words")
    audit.record("server.create", actor=operator, target=server)
    audit.record("stack.unknown_action", actor=operator, target=server)
    client.force_login(operator)
    html = client.get(reverse("audit_list")).content.decode()
    assert 'title="server.create">Server added</span>' in html
    assert 'title="login">Logged in</span>' in html
    assert "<code>server.create</code>" not in html
    # An action without a name yet is shown as stored.
    assert 'title="stack.unknown_action">stack.unknown_action</span>' in html
    chinese = client.get(reverse("audit_list"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'title="server.create">添加服务器</span>' in chinese
