"""The top bar's search finds the objects of the user's own teams, and only those."""

import pytest
from django.urls import reverse

from deployments.choices import PipelineKind, Role
from deployments.models import KnowledgeBase
from deployments.views.search import find
from testkit.factories import add_member, make_run, make_server, make_stack


def make_kb(stack, name):
    return KnowledgeBase.objects.create(
        team=stack.team, stack=stack, name=name, embedding_model="m3e", agent_model="qwen"
    )


@pytest.fixture
def alpha(team):
    server = make_server(team, name="gpu-alpha", host="198.51.100.7")
    stack = make_stack(server, name="chatbot-alpha")
    return {"server": server, "stack": stack, "kb": make_kb(stack, "manuals-alpha")}


@pytest.fixture
def beta(other_team):
    server = make_server(other_team, name="gpu-beta", host="198.51.100.8")
    stack = make_stack(server, name="chatbot-beta")
    return {"server": server, "stack": stack, "kb": make_kb(stack, "manuals-beta")}


def test_a_name_finds_servers_stacks_and_knowledge_bases_of_the_users_teams(alpha, viewer):
    results = find(viewer, "alpha")
    assert results.servers == [alpha["server"]]
    assert results.stacks == [alpha["stack"]]
    assert results.knowledge_bases == [alpha["kb"]]


def test_another_teams_objects_never_show_even_when_they_match(alpha, beta, viewer):
    for query in ("gpu", "chatbot", "manuals", "198.51.100", "beta"):
        results = find(viewer, query)
        found = results.servers + results.stacks + results.knowledge_bases
        assert beta["server"] not in found
        assert beta["stack"] not in found
        assert beta["kb"] not in found
    assert find(viewer, "beta").count == 0


def test_a_user_in_no_team_finds_nothing(alpha, beta, django_user_model):
    loner = django_user_model.objects.create_user("loner")
    assert find(loner, "gpu").count == 0


def test_a_server_is_found_by_its_host(alpha, viewer):
    assert find(viewer, "100.7").servers == [alpha["server"]]


def test_runs_are_found_by_number_and_by_what_they_do_in_the_users_teams_only(
    team, other_team, viewer
):
    own = make_run(team, kind=PipelineKind.SERVER_PREPARE)
    foreign = make_run(other_team, kind=PipelineKind.SERVER_PREPARE)
    assert find(viewer, f"#{own.pk}").runs == [own]
    assert find(viewer, str(own.pk)).runs == [own]
    assert find(viewer, f"#{foreign.pk}").runs == []
    # By the label a person reads ("Prepare server") as well as the stored kind.
    assert find(viewer, "prepare").runs == [own]
    assert find(viewer, "server.prep").runs == [own]


def test_an_empty_query_finds_nothing(alpha, viewer):
    assert find(viewer, "   ").count == 0


def test_the_page_goes_straight_to_the_only_match(client, alpha, viewer):
    client.force_login(viewer)
    response = client.get(reverse("search"), {"q": "chatbot-alpha"})
    assert response.status_code == 302
    assert response.url == reverse("stack_detail", args=[alpha["stack"].pk])


def test_the_page_lists_several_matches_and_no_other_teams(client, alpha, beta, viewer):
    client.force_login(viewer)
    response = client.get(reverse("search"), {"q": "a"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "gpu-alpha" in html and "chatbot-alpha" in html and "manuals-alpha" in html
    assert "beta" not in html


def test_a_match_of_another_team_alone_is_not_followed(client, beta, viewer):
    client.force_login(viewer)
    response = client.get(reverse("search"), {"q": "chatbot-beta"})
    assert response.status_code == 200
    assert "chatbot-beta" in response.content.decode()  # only echoed as the query
    assert reverse("stack_detail", args=[beta["stack"].pk]) not in response.content.decode()


def test_the_knowledge_listing_shows_every_knowledge_base_of_the_users_teams(
    client, alpha, beta, team
):
    member = add_member(team, role=Role.VIEWER)
    second = make_kb(alpha["stack"], "faq")
    client.force_login(member)
    html = client.get(reverse("search"), {"in": "knowledge"}).content.decode()
    assert reverse("knowledge_detail", args=[alpha["kb"].pk]) in html
    assert reverse("knowledge_detail", args=[second.pk]) in html
    assert "manuals-beta" not in html
