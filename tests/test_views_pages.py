"""The read-only pages: dashboard, stacks, login, logout and the error pages."""

from django.urls import reverse

from deployments import audit
from deployments.choices import Health, Role, RunStatus, ServiceState
from deployments.models import Service
from testkit.factories import (
    add_member,
    make_deployment,
    make_server,
    make_stack,
    make_team,
    make_user,
)


def test_login_page_renders_and_logs_in_to_the_dashboard(client, operator):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert "<title>Log in" in page.content.decode()
    response = client.post(
        reverse("login"), {"login": operator.username, "password": operator.raw_password}
    )
    assert response.url == reverse("dashboard")


def test_a_wrong_password_shows_an_error_not_a_crash(client, operator):
    response = client.post(reverse("login"), {"login": operator.username, "password": "nope"})
    assert response.status_code == 200
    assert (
        "The username and/or password you specified are not correct." in response.content.decode()
    )


def test_log_out_is_a_post_form_in_the_nav(client, operator):
    client.force_login(operator)
    html = client.get(reverse("dashboard")).content.decode()
    assert f'method="post" action="{reverse("logout")}"' in html
    assert client.post(reverse("logout")).url == reverse("login")
    assert client.get(reverse("dashboard")).status_code == 302


def test_every_page_carries_the_csrf_token_for_htmx_and_the_htmx_script(client, operator):
    client.force_login(operator)
    html = client.get(reverse("dashboard")).content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert "/static/django_htmx/htmx-2.min.js" in html
    assert "https://" not in html


def test_dashboard_shows_teams_counts_deployments_and_events(client, team, operator):
    add_member(make_team("Gamma"), operator, role=Role.VIEWER)
    server = make_server(team, name="gpu-a")
    stack = make_stack(server, name="prod")
    running = make_deployment(stack, user=operator, status=RunStatus.RUNNING)
    for _ in range(12):
        make_deployment(stack, user=operator)
    audit.record("server.create", actor=operator, target=server)
    client.force_login(operator)
    response = client.get(reverse("dashboard"))
    html = response.content.decode()
    assert "Alpha" in html and "Gamma" in html
    assert response.context["server_count"] == 1
    assert response.context["stack_count"] == 1
    assert [run.pk for run in response.context["running"]] == [running.run_id]
    assert len(response.context["recent"]) == 10
    assert "server.create" in html


def test_dashboard_for_a_user_without_teams_says_what_to_do(client, db):
    client.force_login(make_user())
    html = client.get(reverse("dashboard")).content.decode()
    assert "not in any team yet" in html


def test_stack_list_shows_server_version_registry_and_status(client, team, viewer):
    server = make_server(team, name="gpu-a")
    make_stack(server, name="prod", version_line="fastgpt-4.8.8")
    client.force_login(viewer)
    html = client.get(reverse("stack_list")).content.decode()
    assert "prod" in html and "gpu-a" in html
    assert "fastgpt-4.8.8" in html
    assert "Docker Hub" in html
    assert "Not deployed" in html


def test_an_empty_stack_list_offers_the_form_to_operators_only(client, team, viewer, operator):
    client.force_login(operator)
    assert reverse("stack_create") in client.get(reverse("stack_list")).content.decode()
    client.force_login(viewer)
    assert reverse("stack_create") not in client.get(reverse("stack_list")).content.decode()


def test_stack_detail_shows_its_services_and_deployments(client, team, viewer):
    stack = make_stack(make_server(team, name="gpu-a"), name="prod", fastgpt_port=3100)
    Service.objects.create(
        stack=stack,
        name="fastgpt",
        image="ghcr.io/labring/fastgpt:v4.8.8",
        ports=["3100:3000"],
        state=ServiceState.RUNNING,
        health=Health.HEALTHY,
        restart_count=3,
    )
    deployment = make_deployment(stack, user=viewer)
    client.force_login(viewer)
    html = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert "ghcr.io/labring/fastgpt:v4.8.8" in html
    assert "3100:3000" in html
    assert "Healthy" in html
    assert "<td>3</td>" in html
    assert "FastGPT 3100" in html
    assert reverse("deployment_detail", args=[deployment.pk]) in html


def test_stack_detail_never_shows_its_secrets(client, team, owner):
    stack = make_stack(make_server(team), secrets='{"MONGO_PASSWORD": "s3cr3t-value-1"}')
    client.force_login(owner)
    html = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert "s3cr3t-value-1" not in html


def test_the_403_page_is_readable_and_inside_the_layout(client, team, viewer):
    server = make_server(team)
    client.force_login(viewer)
    response = client.get(reverse("server_edit", args=[server.pk]))
    html = response.content.decode()
    assert response.status_code == 403
    assert "<title>Not allowed" in html
    assert "This needs the operator role in the team." in html
    assert "Traceback" not in html


def test_every_page_has_its_own_title(client, team, operator):
    server = make_server(team, name="gpu-a")
    stack = make_stack(server, name="prod")
    deployment = make_deployment(stack)
    client.force_login(operator)
    titles = {
        reverse("dashboard"): "Dashboard",
        reverse("server_list"): "Servers",
        reverse("server_create"): "Add a server",
        reverse("server_detail", args=[server.pk]): "Server gpu-a",
        reverse("server_edit", args=[server.pk]): "Edit server gpu-a",
        reverse("stack_list"): "Stacks",
        reverse("stack_detail", args=[stack.pk]): "Stack prod",
        reverse("deployment_list"): "Deployments",
        reverse("deployment_detail", args=[deployment.pk]): (
            f"Deploy stack prod on gpu-a · deployment #{deployment.pk}"
        ),
        reverse("team_list"): "Teams",
        reverse("team_detail", args=[team.pk]): "Team Alpha",
        reverse("audit_list"): "Audit trail",
    }
    for url, title in titles.items():
        assert f"<title>{title} · " in client.get(url).content.decode(), url
