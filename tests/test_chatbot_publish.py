"""The one-click chatbot: files dropped on the stack's publish page, models picked, a name; one
run makes the knowledge base, imports and trains the files, makes the chat app and publishes a
share link, and the page ends on the public URL. A failing step says why and a retry goes on
from it, making nothing twice."""

from urllib.parse import quote

from django.urls import reverse

from deployments.actions.pipelines import do_retry_run
from deployments.choices import DocumentStatus, RunStatus, StackStatus
from deployments.knowledge.session import signed_in_fastgpt
from deployments.models import ChatApp, Document, KnowledgeBase, ShareLink
from testkit.factories import make_server, make_stack
from testkit.knowledge import CHAT, EMBEDDING, PLAIN_CHAT, recorded, run_queued
from testkit.standins.client import call

HANDBOOK = (
    "The lighthouse keeper winds the clockwork lamp every evening at dusk.\n\n"
    "Spare wicks are kept in the blue cabinet beside the stairs."
)


def upload(client, stack, name: str, content: bytes):
    return client.post(
        reverse("chatbot_upload", args=[stack.pk]),
        data=content,
        content_type="application/octet-stream",
        headers={"X-Upload-Name": quote(name)},
    )


def publish(client, stack, tokens: list[str], name="Keeper bot"):
    return client.post(
        reverse("chatbot_publish", args=[stack.pk]),
        {
            "name": name,
            "chat_model": CHAT,
            "embedding_model": EMBEDDING,
            "agent_model": CHAT,
            "training_type": "chunk",
            "chunk_size": 300,
            "chunk_splitter": "",
            "documents": tokens,
        },
    )


def test_the_page_offers_the_stacks_models_with_the_first_of_each_by_default(
    transactional_db, fastgpt_stack, operator, client
):
    client.force_login(operator)
    form = client.get(reverse("chatbot_publish", args=[fastgpt_stack.pk])).context["form"]
    assert [value for value, _ in form.fields["chat_model"].choices] == [PLAIN_CHAT, CHAT]
    # The model FastGPT marks for file processing comes first.
    assert form.fields["agent_model"].choices[0][0] == CHAT


def test_one_run_goes_from_files_to_a_public_url(
    transactional_db, fastgpt_stack, operator, client, queued
):
    client.force_login(operator)
    first = upload(client, fastgpt_stack, "handbook.md", HANDBOOK.encode()).json()
    second = upload(client, fastgpt_stack, "ferry.txt", b"The ferry leaves at nine.").json()
    answer = publish(client, fastgpt_stack, [first["id"], second["id"]])
    assert answer.status_code == 302, answer.content.decode()[:2000]

    (run,) = run_queued(queued)
    assert run.status == RunStatus.SUCCEEDED, run.error
    base = KnowledgeBase.objects.get(stack=fastgpt_stack, name="Keeper bot")
    assert base.agent_model == CHAT and base.embedding_model == EMBEDDING
    assert {document.name for document in base.documents.all()} == {"handbook.md", "ferry.txt"}
    assert set(base.documents.values_list("status", flat=True)) == {DocumentStatus.READY}
    app = ChatApp.objects.get(stack=fastgpt_stack, name="Keeper bot")
    assert list(app.knowledge_bases.all()) == [base] and app.chat_model == CHAT
    link = ShareLink.objects.get(app=app)

    page = client.get(answer["Location"])
    url = (
        f"http://127.0.0.1:{fastgpt_stack.fastgpt_port}/chat/share?shareId={link.fastgpt_share_id}"
    )
    assert page.context["url"] == url
    assert "<svg" in page.context["qr"]
    # The link really chats from the documents, as a visitor would.
    reply = call(
        "POST",
        f"{fastgpt_stack.standin.url}/api/v1/chat/completions",
        json={
            "shareId": link.fastgpt_share_id,
            "outLinkUid": "visitor",
            "messages": [{"role": "user", "content": "Where are the spare wicks kept?"}],
        },
    )
    assert "blue cabinet" in reply.json()["choices"][0]["message"]["content"]


def test_a_forged_or_foreign_upload_token_is_refused(
    transactional_db, fastgpt_stack, operator, client, team
):
    client.force_login(operator)
    other = make_stack(make_server(team, host="127.0.0.1"), status=StackStatus.RUNNING)
    token = upload(client, other, "handbook.md", HANDBOOK.encode()).json()["id"]
    for tokens in ([token], ["not-a-token"]):
        page = publish(client, fastgpt_stack, tokens)
        assert page.status_code == 200
        assert "no longer known" in page.content.decode()
    assert not KnowledgeBase.objects.exists()


def test_a_failed_step_names_itself_and_a_retry_goes_on_from_it(
    transactional_db, fastgpt_stack, operator, client, queued
):
    client.force_login(operator)
    # FastGPT's community edition holds 30 knowledge bases (K2): the team has used them all.
    with signed_in_fastgpt(fastgpt_stack) as fastgpt:
        made = [
            fastgpt.create_dataset(f"old {n}", vector_model=EMBEDDING, agent_model=CHAT)
            for n in range(30)
        ]
    token = upload(client, fastgpt_stack, "handbook.md", HANDBOOK.encode()).json()["id"]
    publish(client, fastgpt_stack, [token])
    (run,) = run_queued(queued)
    assert run.status == RunStatus.FAILED
    assert run.steps.get(status="failed").name == "create knowledge base"
    assert "30" in run.error

    with signed_in_fastgpt(fastgpt_stack) as fastgpt:
        fastgpt.delete_dataset(made[0])
    do_retry_run(run, user=operator)
    (again,) = run_queued(queued)
    assert again.status == RunStatus.SUCCEEDED, again.error
    # Nothing was made twice: one knowledge base, one document, one app, one link.
    assert KnowledgeBase.objects.count() == 1
    uploads = recorded(fastgpt_stack.standin, "/api/core/dataset/collection/create/localFile")
    assert len(uploads) == 1
    assert ChatApp.objects.count() == 1 and ShareLink.objects.count() == 1
    assert Document.objects.get().status == DocumentStatus.READY
