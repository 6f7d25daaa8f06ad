"""Empty pages name the next step and link to it; the server form's fields follow its choice."""

from django.urls import reverse

from deployments import audit
from deployments.models import KnowledgeBase
from testkit.factories import make_server, make_stack


def page(client, user, name, *args) -> str:
    client.force_login(user)
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return response.content.decode()


def test_adding_a_stack_without_a_server_says_to_add_one_first(client, operator):
    html = page(client, operator, "stack_create")
    assert "your teams have no server yet" in html
    assert f'class="button" href="{reverse("server_create")}"' in html
    assert 'name="server"' not in html


def test_adding_a_stack_with_a_server_shows_the_form(client, team, operator):
    make_server(team, name="gpu-a")
    html = page(client, operator, "stack_create")
    assert 'name="server"' in html
    assert "your teams have no server yet" not in html


def test_an_empty_stack_list_links_to_adding_a_stack_and_a_server(client, operator):
    html = page(client, operator, "stack_list")
    assert f'<a href="{reverse("stack_create")}">Add a stack</a>' in html
    assert f'<a href="{reverse("server_create")}">add a server</a>' in html


def test_an_empty_server_list_offers_the_first_server_to_operators_only(client, operator, viewer):
    assert reverse("server_create") in page(client, operator, "server_list")
    html = page(client, viewer, "server_list")
    assert reverse("server_create") not in html
    assert "A team operator or owner adds the team's servers." in html


def test_an_empty_model_list_links_to_the_presets(client, operator):
    html = page(client, operator, "model_list")
    assert reverse("model_preset") in html.split("No chat models yet.", 1)[1]
    assert reverse("model_create", args=["embedding"]) in html


def test_the_knowledge_list_has_breadcrumbs_to_its_stack(client, team, viewer):
    stack = make_stack(make_server(team), name="prod")
    KnowledgeBase.objects.create(
        team=team, stack=stack, name="kb", embedding_model="m3e", agent_model="q"
    )
    html = page(client, viewer, "knowledge_list", stack.pk)
    crumbs = html.split('class="breadcrumbs"', 1)[1].split("</nav>", 1)[0]
    assert reverse("stack_list") in crumbs
    assert reverse("stack_detail", args=[stack.pk]) in crumbs
    assert 'aria-current="page">Knowledge bases' in crumbs


def test_the_server_form_loads_its_script_and_renders_every_field(client, owner):
    html = page(client, owner, "server_create")
    assert "js/server_form.js" in html
    # Without the script, every field shows: none is hidden in the markup.
    assert 'name="ssh_private_key"' in html and 'name="ssh_password"' in html
    assert " hidden" not in html.split("<form", 2)[2].split("</form>", 1)[0]


def test_the_audit_times_stay_on_one_line(client, operator):
    audit.record("server.create", actor=operator)
    html = page(client, operator, "audit_list")
    assert '<td class="nowrap"><time' in html


def crumbs_of(html: str) -> str:
    return html.split('class="breadcrumbs"', 1)[1].split("</nav>", 1)[0]


def test_the_providers_and_teams_pages_have_breadcrumbs(client, team, viewer):
    stack = make_stack(make_server(team), name="prod")
    crumbs = crumbs_of(page(client, viewer, "provider_list", stack.pk))
    assert reverse("stack_detail", args=[stack.pk]) in crumbs
    assert 'aria-current="page">Remote providers' in crumbs
    crumbs = crumbs_of(page(client, viewer, "team_list"))
    assert reverse("dashboard") in crumbs and 'aria-current="page">Teams' in crumbs


def test_a_page_without_breadcrumbs_leaves_their_list_empty(client, viewer):
    assert "<ol></ol>" in crumbs_of(page(client, viewer, "stack_list"))
