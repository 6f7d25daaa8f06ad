"""Chat apps in a stack's FastGPT, against the V488 stand-in served from a thread: the graph it
gets on create and on every publish, a test question with its quotes, share links (made, listed,
revoked by their _id) with their public URL, embed snippet and QR code, who may do what, and
pages that say why when FastGPT cannot be reached."""

import json
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from deployments.actions import ActionError
from deployments.actions.apps import (
    do_chat_test,
    do_create_app,
    do_create_share_link,
    do_delete_app,
    do_revoke_share_link,
    do_update_app,
)
from deployments.choices import Role, StackStatus
from deployments.forms.apps import ChatAppForm, ChatTestForm, ShareLinkForm
from deployments.knowledge.apps import embed_snippet, qr_svg
from deployments.knowledge.session import signed_in_fastgpt
from deployments.models import AuditEvent, ChatApp, KnowledgeBase, ShareLink, Stack
from deployments.stacks.secrets import stack_secrets
from testkit.factories import add_member, make_server, make_stack
from testkit.sshd import free_port
from testkit.standins.client import call
from testkit.standins.fastgpt import FastGPT
from testkit.standins.fastgpt.chat import NO_MATCH_ANSWER
from testkit.standins.server import RunningStandin
from testkit.workers import wait_until

pytestmark = pytest.mark.django_db

CHAT_MODEL = "qwen2.5-instruct"
OTHER_CHAT_MODEL = "glm4-chat"
EMBEDDING = "m3e-base"
OTHER_EMBEDDING = "bge-m3"
RERANK = "bge-reranker-v2-m3"


def llm(model: str, name: str) -> dict:
    return {
        "model": model,
        "name": name,
        "maxContext": 32000,
        "maxResponse": 4000,
        "quoteMaxToken": 16000,
        "maxTemperature": 1.2,
        "charsPointsPrice": 0,
        "datasetProcess": True,
        "functionCall": False,
        "toolChoice": False,
        "customCQPrompt": "",
        "customExtractPrompt": "",
    }


def vector(model: str, name: str) -> dict:
    return {
        "model": model,
        "name": name,
        "defaultToken": 512,
        "maxToken": 512,
        "weight": 100,
        "charsPointsPrice": 0,
    }


CONFIG = {
    "feConfigs": {},
    "systemEnv": {"vectorMaxProcess": 15, "qaMaxProcess": 15, "pgHNSWEfSearch": 100},
    "llmModels": [llm(CHAT_MODEL, "Qwen 2.5"), llm(OTHER_CHAT_MODEL, "GLM-4")],
    "vectorModels": [vector(EMBEDDING, "M3E"), vector(OTHER_EMBEDDING, "BGE-M3")],
    "reRankModels": [
        {
            "model": RERANK,
            "name": "BGE reranker",
            "charsPointsPrice": 0,
            "requestUrl": "http://xinference:9997/v1/rerank",
            "requestAuth": "rerank-secret",
        }
    ],
}
FACTS = (
    "The control panel deploys FastGPT on a rented GPU server.\n\n"
    "Xinference serves the embedding model and the chat model."
)
PRICES = "The GPU server rents for two euros an hour, billed by the minute."
HOSTILE_NAME = '<script>alert("app")</script> & "quotes"'
HOSTILE_PROMPT = 'Answer briefly."}]}, {"flowNodeType": "evil"} </textarea><script>x()</script>'


def write_config(directory, config) -> str:
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


@contextmanager
def serve_fastgpt(stack: Stack, config_path: str):
    """The stand-in, with the stack's root password, on the port the stack's FastGPT is on."""
    env = {
        "DEFAULT_ROOT_PSW": stack_secrets(stack)["FASTGPT_ROOT_PASSWORD"],
        "TOKEN_KEY": "token-key-for-tests",
        "ROOT_KEY": "root-key-for-tests",
        "MONGODB_URI": "mongodb://user:pass@mongo:27017/fastgpt?authSource=admin",
        "PG_URL": "postgresql://username:password@pg:5432/postgres",
        "STANDIN_FASTGPT_CONFIG": config_path,
        "STANDIN_TRAINING_SECONDS": "0.2",
    }
    with RunningStandin(FastGPT(env)) as running:
        Stack.objects.filter(pk=stack.pk).update(fastgpt_port=running.port)
        stack.refresh_from_db()
        yield running


@pytest.fixture
def stack(team):
    return make_stack(make_server(team, host="127.0.0.1"), name="prod", status=StackStatus.RUNNING)


@pytest.fixture
def fastgpt(stack, tmp_path):
    with serve_fastgpt(stack, write_config(tmp_path, CONFIG)) as running:
        yield running


def recorded(fastgpt, path: str) -> list[dict]:
    """The requests the stand-in got on `path`, oldest first, with their JSON bodies parsed."""
    requests = call("GET", f"{fastgpt.url}/__standin__/requests").json()["requests"]
    found = []
    for request in requests:
        if request["path"].split("?")[0] == path:
            body = request["body"]
            found.append({**request, "json": json.loads(body) if body else None})
    return found


def node(nodes: list[dict], flow_type: str) -> dict:
    return next(n for n in nodes if n["flowNodeType"] == flow_type)


def node_value(nodes: list[dict], flow_type: str, key: str):
    return next(i["value"] for i in node(nodes, flow_type)["inputs"] if i["key"] == key)


def make_kb(stack: Stack, name: str, text: str, embedding: str = EMBEDDING) -> KnowledgeBase:
    """A knowledge base with one trained text document, made with the client directly."""
    with signed_in_fastgpt(stack) as client:
        dataset_id = client.create_dataset(name, vector_model=embedding, agent_model=CHAT_MODEL)
        client.create_text(dataset_id, f"{name}.txt", text)
        wait_until(
            lambda: all(c.trained for c in client.collections(dataset_id)),
            10,
            f"the training of {name}",
        )
    return KnowledgeBase.objects.create(
        team=stack.team,
        stack=stack,
        name=name,
        embedding_model=embedding,
        agent_model=CHAT_MODEL,
        fastgpt_dataset_id=dataset_id,
    )


def app_data(*knowledge_bases, **overrides) -> dict:
    data = {
        "name": "Helpdesk",
        "chat_model": CHAT_MODEL,
        "knowledge_bases": list(knowledge_bases),
        "system_prompt": "Answer from the documents.",
        "similarity": 0.5,
        "quote_limit": 3000,
        "using_rerank": False,
    }
    return {**data, **overrides}


def form_post(data: dict) -> dict:
    """`app_data` as a browser posts it."""
    post = {**data, "knowledge_bases": [kb.pk for kb in data["knowledge_bases"]]}
    if not post.pop("using_rerank"):
        return post
    return {**post, "using_rerank": "on"}


@pytest.fixture
def facts(stack, fastgpt):
    return make_kb(stack, "facts", FACTS)


@pytest.fixture
def app(stack, facts, operator):
    return do_create_app(stack, data=app_data(facts), user=operator)


def detail_url(app: ChatApp) -> str:
    return reverse("app_detail", args=[app.pk])


# Create ---------------------------------------------------------------------------------------


def test_creating_an_app_sends_fastgpt_the_whole_graph_with_its_datasets_and_model(
    stack, fastgpt, facts, operator
):
    prices = make_kb(stack, "prices", PRICES)

    app = do_create_app(stack, data=app_data(prices, facts), user=operator)

    (created,) = recorded(fastgpt, "/api/core/app/create")
    body = created["json"]
    assert body["name"] == "Helpdesk" and body["type"] == "simple"
    nodes = body["modules"]
    # Ordered by name: FastGPT searches with the first one's embedding model.
    assert node_value(nodes, "datasetSearchNode", "datasets") == [
        {"datasetId": facts.fastgpt_dataset_id},
        {"datasetId": prices.fastgpt_dataset_id},
    ]
    assert node_value(nodes, "datasetSearchNode", "similarity") == 0.5
    assert node_value(nodes, "datasetSearchNode", "limit") == 3000
    assert node_value(nodes, "datasetSearchNode", "usingReRank") is False
    assert node_value(nodes, "chatNode", "model") == CHAT_MODEL
    assert node_value(nodes, "chatNode", "systemPrompt") == "Answer from the documents."
    assert len(body["edges"]) == 2
    assert "Authorization" not in created["headers"]

    app.refresh_from_db()
    assert app.fastgpt_app_id and app.versions_published == 1
    assert list(app.knowledge_bases.order_by("name")) == [facts, prices]
    event = AuditEvent.objects.get(action="app.create")
    assert event.actor == operator and event.target_id == str(app.pk)
    assert event.details["knowledge_bases"] == ["facts", "prices"]
    assert event.details["fastgpt_app_id"] == app.fastgpt_app_id


def test_an_operator_creates_an_app_from_its_page_and_lands_on_it(
    client, stack, fastgpt, facts, operator
):
    client.force_login(operator)
    url = reverse("app_create", args=[stack.pk])
    page = client.get(url).content.decode()
    assert "Qwen 2.5 (qwen2.5-instruct)" in page and "GLM-4 (glm4-chat)" in page
    assert "facts (m3e-base)" in page
    # The stack lists a rerank model, so rerank is offered.
    assert 'name="using_rerank"' in page

    response = client.post(url, form_post(app_data(facts, using_rerank=True)))

    app = ChatApp.objects.get()
    assert response.status_code == 302 and response.url == detail_url(app)
    assert app.using_rerank is True
    (created,) = recorded(fastgpt, "/api/core/app/create")
    assert node_value(created["json"]["modules"], "datasetSearchNode", "usingReRank") is True
    html = client.get(response.url).content.decode()
    assert "Chat app “Helpdesk” created in FastGPT." in html
    assert app.fastgpt_app_id in html and "facts" in html


def test_rerank_is_not_offered_when_the_stack_lists_no_rerank_model(
    client, stack, operator, tmp_path
):
    with serve_fastgpt(stack, write_config(tmp_path, {**CONFIG, "reRankModels": []})):
        make_kb(stack, "facts", FACTS)
        client.force_login(operator)
        page = client.get(reverse("app_create", args=[stack.pk])).content.decode()
    assert 'name="chat_model"' in page and 'name="using_rerank"' not in page


def test_a_chat_model_fastgpt_does_not_list_is_refused(stack, fastgpt, facts, operator):
    with pytest.raises(ValidationError) as refused:
        do_create_app(stack, data=app_data(facts, chat_model="gpt-imaginary"), user=operator)
    assert "does not list the chat model “gpt-imaginary”" in str(refused.value.message_dict)
    assert not ChatApp.objects.exists()
    assert recorded(fastgpt, "/api/core/app/create") == []


def test_knowledge_bases_with_different_embedding_models_are_refused_saying_why(
    stack, fastgpt, facts, operator
):
    other = make_kb(stack, "other", PRICES, embedding=OTHER_EMBEDDING)
    with pytest.raises(ValidationError) as refused:
        do_create_app(stack, data=app_data(facts, other), user=operator)
    message = " ".join(refused.value.message_dict["knowledge_bases"])
    assert "different embedding models" in message
    assert "m3e-base: “facts”" in message and "bge-m3: “other”" in message
    assert "with the first one's embedding model" in message
    assert not ChatApp.objects.exists()


def test_a_knowledge_base_of_another_stack_or_team_is_refused(
    stack, fastgpt, facts, operator, other_team
):
    elsewhere = make_stack(stack.server, name="staging", status=StackStatus.RUNNING)
    theirs_stack = make_stack(make_server(other_team), status=StackStatus.RUNNING)
    for other_stack in (elsewhere, theirs_stack):
        foreign = KnowledgeBase.objects.create(
            team=other_stack.team,
            stack=other_stack,
            name="foreign",
            embedding_model=EMBEDDING,
            agent_model=CHAT_MODEL,
            fastgpt_dataset_id="a" * 24,
        )
        with pytest.raises(ValidationError) as refused:
            do_create_app(stack, data=app_data(facts, foreign), user=operator)
        assert "is not on stack “prod”" in str(refused.value.message_dict)
        # The form does not even offer it.
        form = ChatAppForm(
            form_post(app_data(foreign)),
            stack=stack,
            chat_models=[(CHAT_MODEL, CHAT_MODEL)],
            rerank=False,
        )
        assert not form.is_valid() and "knowledge_bases" in form.errors
    assert not ChatApp.objects.exists()


@pytest.mark.parametrize(
    ("status", "said"), [(StackStatus.DRAFT, "not deployed"), (StackStatus.TORN_DOWN, "torn down")]
)
def test_a_stack_that_is_not_running_refuses_apps_with_a_sentence(
    stack, fastgpt, facts, operator, status, said
):
    Stack.objects.filter(pk=stack.pk).update(status=status)
    with pytest.raises(ActionError) as refused:
        do_create_app(stack, data=app_data(facts), user=operator)
    assert str(refused.value) == (f"Stack “prod” is {said}: deploy it first.")
    assert not ChatApp.objects.exists()


def test_a_degraded_stack_still_takes_an_app(stack, fastgpt, facts, operator):
    Stack.objects.filter(pk=stack.pk).update(status=StackStatus.DEGRADED)
    assert do_create_app(stack, data=app_data(facts), user=operator).fastgpt_app_id


def test_two_apps_of_one_stack_cannot_share_a_name(stack, app, facts, operator):
    with pytest.raises(ValidationError) as refused:
        do_create_app(stack, data=app_data(facts), user=operator)
    assert refused.value.message_dict["name"] == [
        "Stack “prod” already has a chat app named “Helpdesk”."
    ]
    assert ChatApp.objects.count() == 1


# Update: a new version each time --------------------------------------------------------------


def test_an_update_publishes_the_whole_graph_as_a_new_version_and_chat_answers_from_it(
    stack, fastgpt, app, facts, operator
):
    prices = make_kb(stack, "prices", PRICES)
    before = do_chat_test(app, question="How many euros per hour?", user=operator)
    assert before.text == NO_MATCH_ANSWER

    changed = do_update_app(
        app,
        data=app_data(prices, system_prompt="Quote prices exactly.", quote_limit=5000),
        user=operator,
    )

    assert changed.published and not changed.renamed_from
    (published,) = recorded(fastgpt, "/api/core/app/version/publish")
    assert published["path"].endswith(f"?appId={app.fastgpt_app_id}")
    body = published["json"]
    assert body["nodes"] and body["edges"] and body["chatConfig"]
    assert node_value(body["nodes"], "datasetSearchNode", "datasets") == [
        {"datasetId": prices.fastgpt_dataset_id}
    ]
    assert node_value(body["nodes"], "datasetSearchNode", "limit") == 5000
    assert node_value(body["nodes"], "chatNode", "model") == CHAT_MODEL
    assert node_value(body["nodes"], "chatNode", "systemPrompt") == "Quote prices exactly."
    app.refresh_from_db()
    assert app.versions_published == 2 and app.quote_limit == 5000
    assert list(app.knowledge_bases.all()) == [prices]

    after = do_chat_test(app, question="How many euros per hour?", user=operator)
    assert after.text == PRICES
    assert [quote.source_name for quote in after.quotes] == ["prices.txt"]
    event = AuditEvent.objects.get(action="app.update")
    assert event.details["version"] == 2 and event.details["knowledge_bases"] == ["prices"]


def test_saving_unchanged_settings_publishes_nothing(client, stack, fastgpt, app, facts, operator):
    assert not do_update_app(app, data=app_data(facts), user=operator)
    client.force_login(operator)
    response = client.post(
        reverse("app_edit", args=[app.pk]), form_post(app_data(facts)), follow=True
    )
    assert "Nothing changed, so no new version was published." in response.content.decode()
    assert recorded(fastgpt, "/api/core/app/version/publish") == []
    app.refresh_from_db()
    assert app.versions_published == 1


def test_editing_from_the_page_renames_the_app_in_fastgpt_and_publishes_its_settings(
    client, stack, fastgpt, app, facts, operator
):
    client.force_login(operator)
    url = reverse("app_edit", args=[app.pk])
    assert "Answer from the documents." in client.get(url).content.decode()

    data = form_post(app_data(facts, name="Renamed desk", chat_model=OTHER_CHAT_MODEL))
    response = client.post(url, data, follow=True)

    page = response.content.decode()
    assert "Chat app “Helpdesk” is now called “Renamed desk”." in page
    assert "saved and published as version 2." in page
    app.refresh_from_db()
    assert (app.name, app.chat_model, app.versions_published) == (
        "Renamed desk",
        OTHER_CHAT_MODEL,
        2,
    )
    (renamed,) = recorded(fastgpt, "/api/core/app/update")
    assert renamed["path"].endswith(f"?appId={app.fastgpt_app_id}")
    assert renamed["json"] == {"name": "Renamed desk"}
    with signed_in_fastgpt(stack) as fastgpt_client:
        assert [a["name"] for a in fastgpt_client.apps()] == ["Renamed desk"]
    event = AuditEvent.objects.get(action="app.update")
    assert event.details["renamed_from"] == "Helpdesk" and event.details["version"] == 2


def test_a_rename_alone_publishes_no_version(stack, fastgpt, app, facts, operator):
    update = do_update_app(app, data=app_data(facts, name="Front desk"), user=operator)

    assert (update.renamed_from, update.published) == ("Helpdesk", False)
    assert recorded(fastgpt, "/api/core/app/version/publish") == []
    app.refresh_from_db()
    assert (app.name, app.versions_published) == ("Front desk", 1)


def test_a_rename_to_another_apps_name_is_refused_and_changes_nothing(
    stack, fastgpt, app, facts, operator
):
    other = do_create_app(stack, data=app_data(facts, name="Sales"), user=operator)
    with pytest.raises(ValidationError) as refused:
        do_update_app(other, data=app_data(facts, name="Helpdesk"), user=operator)
    assert refused.value.message_dict["name"] == [
        "Stack “prod” already has a chat app named “Helpdesk”."
    ]
    assert recorded(fastgpt, "/api/core/app/update") == []
    other.refresh_from_db()
    assert other.name == "Sales"


def test_the_app_page_lists_the_versions_fastgpt_keeps_newest_first(
    client, stack, app, facts, operator
):
    do_update_app(app, data=app_data(facts, similarity=0.7), user=operator)
    with signed_in_fastgpt(stack) as fastgpt_client:
        versions = fastgpt_client.app_versions(app.fastgpt_app_id)
    assert len(versions) == 2
    client.force_login(operator)
    html = client.get(detail_url(app)).content.decode()
    section = html[html.index('id="versions"') : html.index('id="share-links"')]
    assert "could not" not in section
    newest, oldest = (str(version["_id"]) for version in versions)
    assert section.index(newest) < section.index(oldest)
    assert "<td>2</td>" in section and "<td>1</td>" in section


# Chat test ------------------------------------------------------------------------------------


def test_the_chat_test_shows_the_answer_and_the_quoted_chunks_with_source_and_scores(
    client, app, operator
):
    client.force_login(operator)
    response = client.post(
        reverse("app_chat_test", args=[app.pk]),
        {"question": "Which server does the panel deploy FastGPT on?"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert not html.lstrip().startswith("<!doctype")
    assert 'id="chat-test"' in html
    assert "The control panel deploys FastGPT on a rented GPU server." in html
    assert "facts.txt" in html and "fullText" in html
    assert "1 quoted chunk" in html
    event = AuditEvent.objects.get(action="app.chat_test")
    assert event.details["quotes"] == 1
    assert event.details["question"] == "Which server does the panel deploy FastGPT on?"


def test_the_chat_test_without_htmx_shows_the_whole_page_with_the_answer(client, app, operator):
    client.force_login(operator)
    response = client.post(
        reverse("app_chat_test", args=[app.pk]), {"question": "What does Xinference serve?"}
    )
    html = response.content.decode()
    assert "<h1>Chat app Helpdesk</h1>" in html
    assert "Xinference serves the embedding model and the chat model." in html


def test_a_question_over_2000_characters_is_refused(client, app, operator):
    assert not ChatTestForm({"question": "x" * 2001}).is_valid()
    with pytest.raises(ValidationError):
        do_chat_test(app, question="x" * 2001, user=operator)
    client.force_login(operator)
    html = client.post(
        reverse("app_chat_test", args=[app.pk]), {"question": "x" * 2001}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "at most 2000 characters" in html


# Share links ----------------------------------------------------------------------------------


def test_a_share_link_is_made_listed_and_revoked_by_its_id(client, stack, fastgpt, app, operator):
    client.force_login(operator)
    expires = timezone.localtime() + timedelta(days=7)
    response = client.post(
        reverse("app_share_link_create", args=[app.pk]),
        {
            "name": "Website",
            "show_references": "on",
            "qpm": 30,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 302 and response.url.endswith("#share-links")
    link = ShareLink.objects.get()
    with signed_in_fastgpt(stack) as fastgpt_client:
        (listed,) = fastgpt_client.share_links(app.fastgpt_app_id)
    assert listed["shareId"] == link.fastgpt_share_id and listed["_id"] == link.fastgpt_link_id
    assert listed["name"] == "Website" and listed["responseDetail"] is True
    assert listed["limit"]["QPM"] == 30 and listed["limit"]["expiredTime"].endswith("Z")
    assert link.show_references and link.qpm == 30 and link.expires_at is not None

    html = client.get(detail_url(app)).content.decode()
    url = f"http://127.0.0.1:{stack.fastgpt_port}/chat/share?shareId={link.fastgpt_share_id}"
    assert f'value="{url}"' in html
    assert f"&lt;iframe src=&quot;{url}&quot;" in html
    assert "<svg" in html and "<path" in html
    assert "Share link “Website” published." in html
    assert "gone from FastGPT" not in html
    assert 'data-copy="share-url-' in html and "data-confirm=" in html

    response = client.post(reverse("app_share_link_revoke", args=[link.pk]), follow=True)

    assert "Share link “Website” revoked" in response.content.decode()
    (deleted,) = recorded(fastgpt, "/api/support/outLink/delete")
    assert deleted["method"] == "DELETE"
    assert deleted["path"].endswith(f"?id={link.fastgpt_link_id}")
    assert link.fastgpt_share_id not in deleted["path"]
    assert not ShareLink.objects.exists()
    with signed_in_fastgpt(stack) as fastgpt_client:
        assert fastgpt_client.share_links(app.fastgpt_app_id) == []
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-2:] == ["app.share_link.create", "app.share_link.revoke"]
    revoke = AuditEvent.objects.get(action="app.share_link.revoke")
    assert revoke.target_id == str(link.pk) and revoke.team == app.team


def test_a_share_link_deleted_in_fastgpt_by_hand_shows_as_gone(stack, app, operator, client):
    link = do_create_share_link(app, data={"name": "Kiosk", "qpm": 100}, user=operator)
    with signed_in_fastgpt(stack) as fastgpt_client:
        fastgpt_client.delete_share_link(link.fastgpt_link_id)
    client.force_login(operator)
    assert "gone from FastGPT" in client.get(detail_url(app)).content.decode()
    # Revoking it still works: FastGPT no longer having it is what revoking wants.
    do_revoke_share_link(link, user=operator)
    assert not ShareLink.objects.exists()


def test_the_embed_snippet_and_qr_code_escape_and_encode_the_url():
    url = 'http://203.0.113.10:3000/chat/share?shareId=abc&x="><script>'
    snippet = embed_snippet(url, title='<b>"Help"</b>')
    assert snippet.startswith(
        '<iframe src="http://203.0.113.10:3000/chat/share?shareId=abc&amp;x=&quot;&gt;&lt;script&gt;"'
    )
    assert 'title="&lt;b&gt;&quot;Help&quot;&lt;/b&gt;"' in snippet
    assert snippet.endswith("></iframe>") and "<script>" not in snippet
    svg = qr_svg(url)
    assert svg.startswith("<svg") and "<path" in svg and "script" not in svg


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "Site", "qpm": 0}, "qpm"),
        ({"name": "Site", "qpm": 10001}, "qpm"),
        ({"name": "Site", "qpm": 100, "expires_at": "2001-01-01T00:00"}, "expires_at"),
        ({"name": "bell\x07", "qpm": 100}, "name"),
        ({"name": "right-to-left\u202eevil", "qpm": 100}, "name"),
        ({"name": "   ", "qpm": 100}, "name"),
    ],
)
def test_a_share_link_form_refuses_bad_values(data, field):
    form = ShareLinkForm(data)
    assert not form.is_valid() and field in form.errors


def test_an_expiry_in_the_past_is_refused_by_the_action_too(app, operator):
    past = timezone.now() - timedelta(minutes=1)
    with pytest.raises(ValidationError) as refused:
        do_create_share_link(
            app, data={"name": "Old", "qpm": 100, "expires_at": past}, user=operator
        )
    assert "expires_at" in refused.value.message_dict
    assert not ShareLink.objects.exists()


# Delete ---------------------------------------------------------------------------------------


def test_deleting_an_app_needs_its_name_typed_and_removes_it_in_fastgpt(
    client, stack, fastgpt, app, operator
):
    do_create_share_link(app, data={"name": "Website", "qpm": 100}, user=operator)
    client.force_login(operator)
    url = reverse("app_delete", args=[app.pk])
    html = client.post(url, {"confirm_name": "helpdesk"}).content.decode()
    assert "Type the app&#x27;s name, “Helpdesk”, to delete it." in html
    assert ChatApp.objects.exists()

    response = client.post(url, {"confirm_name": "Helpdesk"})

    assert response.status_code == 302 and response.url == reverse("app_list", args=[stack.pk])
    (deleted,) = recorded(fastgpt, "/api/core/app/del")
    assert deleted["path"].endswith(f"?appId={app.fastgpt_app_id}")
    assert not ChatApp.objects.exists() and not ShareLink.objects.exists()
    event = AuditEvent.objects.get(action="app.delete")
    assert event.details["share_links"] == 1 and event.target_id == str(app.pk)


def test_deleting_an_app_fastgpt_lost_already_still_deletes_it(stack, app, operator):
    with signed_in_fastgpt(stack) as fastgpt_client:
        fastgpt_client.delete_app(app.fastgpt_app_id)
    do_delete_app(app, confirm_name="Helpdesk", user=operator)
    assert not ChatApp.objects.exists()


# Who may --------------------------------------------------------------------------------------


def test_a_viewer_sees_apps_but_cannot_create_change_ask_or_share(
    client, stack, app, facts, viewer
):
    link = do_create_share_link(
        app, data={"name": "Website", "qpm": 100}, user=add_member(stack.team, role=Role.OWNER)
    )
    client.force_login(viewer)
    listing = client.get(reverse("app_list", args=[stack.pk])).content.decode()
    assert "Helpdesk" in listing and reverse("app_create", args=[stack.pk]) not in listing
    page = client.get(detail_url(app)).content.decode()
    assert "Website" in page and "/chat/share?shareId=" in page
    for url in (
        reverse("app_chat_test", args=[app.pk]),
        reverse("app_share_link_create", args=[app.pk]),
        reverse("app_share_link_revoke", args=[link.pk]),
        reverse("app_edit", args=[app.pk]),
        reverse("app_delete", args=[app.pk]),
    ):
        assert url not in page
        assert client.post(url, {"question": "hi", "name": "x", "qpm": 1}).status_code == 403
    assert (
        client.post(reverse("app_create", args=[stack.pk]), form_post(app_data(facts))).status_code
        == 403
    )
    with pytest.raises(PermissionDenied):
        do_create_app(stack, data=app_data(facts, name="Mine"), user=viewer)
    with pytest.raises(PermissionDenied):
        do_chat_test(app, question="hi", user=viewer)
    assert ChatApp.objects.count() == 1 and ShareLink.objects.count() == 1


def test_another_team_gets_404_for_the_apps_and_their_links(client, stack, app, other_team, facts):
    outsider = add_member(other_team, role=Role.OWNER)
    link = do_create_share_link(
        app, data={"name": "Website", "qpm": 100}, user=add_member(stack.team, role=Role.OWNER)
    )
    client.force_login(outsider)
    for method, url in (
        ("get", reverse("app_list", args=[stack.pk])),
        ("get", reverse("app_create", args=[stack.pk])),
        ("get", detail_url(app)),
        ("get", reverse("app_edit", args=[app.pk])),
        ("post", reverse("app_chat_test", args=[app.pk])),
        ("post", reverse("app_share_link_create", args=[app.pk])),
        ("post", reverse("app_share_link_revoke", args=[link.pk])),
        ("post", reverse("app_delete", args=[app.pk])),
    ):
        assert getattr(client, method)(url).status_code == 404, url
    with pytest.raises(PermissionDenied):
        do_revoke_share_link(link, user=outsider)
    assert ShareLink.objects.exists()


# FastGPT out of reach -------------------------------------------------------------------------


def test_pages_say_why_when_fastgpt_cannot_be_reached(client, stack, operator):
    Stack.objects.filter(pk=stack.pk).update(fastgpt_port=free_port())
    stack.refresh_from_db()
    app = ChatApp.objects.create(
        team=stack.team,
        stack=stack,
        name="Helpdesk",
        chat_model=CHAT_MODEL,
        fastgpt_app_id="b" * 24,
    )
    client.force_login(operator)

    create = client.get(reverse("app_create", args=[stack.pk]))
    assert create.status_code == 200
    html = create.content.decode()
    assert "The stack's FastGPT could not list its models:" in html
    assert f"Could not reach FastGPT at http://127.0.0.1:{stack.fastgpt_port}" in html
    assert "Traceback" not in html

    detail = client.get(detail_url(app))
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "FastGPT could not be asked about this app:" in html
    assert "Could not reach FastGPT" in html

    chat = client.post(
        reverse("app_chat_test", args=[app.pk]), {"question": "hello?"}, HTTP_HX_REQUEST="true"
    )
    assert chat.status_code == 200
    assert "No answer:" in chat.content.decode()
    assert "Could not reach FastGPT" in chat.content.decode()

    with pytest.raises(ActionError, match="Could not reach FastGPT"):
        do_create_share_link(app, data={"name": "Site", "qpm": 10}, user=operator)
    assert not ShareLink.objects.exists()


def test_pages_of_a_stack_that_is_not_running_say_so_and_offer_no_actions(
    client, stack, fastgpt, app, operator
):
    Stack.objects.filter(pk=stack.pk).update(status=StackStatus.TORN_DOWN)
    before = len(call("GET", f"{fastgpt.url}/__standin__/requests").json()["requests"])
    client.force_login(operator)
    said = "Stack “prod” is torn down: deploy it before working with its chat apps."
    for url in (
        detail_url(app),
        reverse("app_list", args=[stack.pk]),
        reverse("app_create", args=[stack.pk]),
        reverse("app_edit", args=[app.pk]),
    ):
        html = client.get(url).content.decode()
        assert said in html, url
        assert 'name="chat_model"' not in html and 'id="chat-test"' not in html, url
    assert len(call("GET", f"{fastgpt.url}/__standin__/requests").json()["requests"]) == before
    with pytest.raises(ActionError, match="torn down"):
        do_chat_test(app, question="hello?", user=operator)


# Hostile text ---------------------------------------------------------------------------------


def test_hostile_names_and_prompts_are_escaped_in_pages_and_sent_as_json(
    client, stack, fastgpt, facts, operator
):
    app = do_create_app(
        stack,
        data=app_data(facts, name=HOSTILE_NAME, system_prompt=HOSTILE_PROMPT),
        user=operator,
    )
    link = do_create_share_link(app, data={"name": HOSTILE_NAME, "qpm": 5}, user=operator)

    (created,) = recorded(fastgpt, "/api/core/app/create")
    assert created["json"]["name"] == HOSTILE_NAME
    nodes = created["json"]["modules"]
    assert node_value(nodes, "chatNode", "systemPrompt") == HOSTILE_PROMPT
    assert [n["flowNodeType"] for n in nodes].count("evil") == 0
    (shared,) = recorded(fastgpt, "/api/support/outLink/create")
    assert shared["json"]["name"] == HOSTILE_NAME
    assert link.name == HOSTILE_NAME

    client.force_login(operator)
    for url in (
        detail_url(app),
        reverse("app_list", args=[stack.pk]),
        reverse("app_edit", args=[app.pk]),
        reverse("app_delete", args=[app.pk]),
    ):
        html = client.get(url).content.decode()
        assert "<script>alert" not in html and "<script>x()" not in html, url
        assert "&lt;script&gt;alert(&quot;app&quot;)&lt;/script&gt;" in html, url
    html = client.get(detail_url(app)).content.decode()
    assert "&lt;/textarea&gt;&lt;script&gt;x()&lt;/script&gt;" in html
    # The embed snippet's title carries the name escaped once for HTML, and again for the page.
    assert "title=&quot;&amp;lt;script&amp;gt;alert(&amp;quot;app&amp;quot;)" in html


@pytest.mark.parametrize(
    "name", ["tab\tname", "line\nbreak", "nul\x00", "zero\u200bwidth", "", "x" * 101]
)
def test_app_names_with_control_characters_or_out_of_bounds_are_refused(stack, name):
    form = ChatAppForm(
        {"name": name, "chat_model": CHAT_MODEL, "similarity": 0.4, "quote_limit": 1500},
        stack=stack,
        chat_models=[(CHAT_MODEL, CHAT_MODEL)],
        rerank=False,
    )
    assert not form.is_valid() and "name" in form.errors


@pytest.mark.parametrize(
    ("field", "value"),
    [("similarity", 1.5), ("similarity", -0.1), ("quote_limit", 99), ("quote_limit", 20001)],
)
def test_the_app_form_keeps_similarity_and_quote_limit_in_bounds(stack, field, value):
    data = {"name": "Ok", "chat_model": CHAT_MODEL, "similarity": 0.4, "quote_limit": 1500}
    form = ChatAppForm(
        {**data, field: value}, stack=stack, chat_models=[(CHAT_MODEL, CHAT_MODEL)], rerank=False
    )
    assert not form.is_valid() and field in form.errors
