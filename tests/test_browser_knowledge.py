"""A real browser from files to a public chatbot: make a knowledge base, drop two files on its
page and see both become ready as a real worker imports them, run a search test, create a chat
app, ask it a question, publish a share link and open the public URL.

FastGPT is the stand-in, served from a thread; the stack's server is this machine's loopback.
"""

import pytest
from playwright.sync_api import expect

from deployments.choices import Role, StackStatus
from deployments.models import ShareLink
from testkit.browser import log_in
from testkit.documents import make_pdf
from testkit.factories import add_member, make_server, make_stack, make_team, make_user
from testkit.knowledge import CHAT, EMBEDDING, standin_fastgpt
from testkit.workers import Worker

pytestmark = pytest.mark.slow

PDF_SENTENCE = "The lighthouse keeper winds the clockwork lamp every evening at dusk."
NOTES = "Spare wicks are kept in the blue cabinet beside the stairs."


@pytest.fixture
def worker(transactional_db, tmp_path, settings):
    """A real worker that sees the same staging folder as the pages."""
    staging = tmp_path / "staging"
    settings.DOCUMENT_STAGING_DIR = staging
    env = {"DOCUMENT_STAGING_DIR": str(staging), "TRAINING_POLL_SECONDS": "1"}
    started = Worker(tmp_path / "worker.log", env=env).start()
    yield started
    started.stop()


def test_two_dropped_files_become_a_published_chatbot(live_server, worker, page, tmp_path):
    team = make_team("Alpha")
    operator = make_user("ops-alice")
    add_member(team, operator, role=Role.OPERATOR)
    stack = make_stack(
        make_server(team, name="gpu-1", host="127.0.0.1"), name="prod", status=StackStatus.RUNNING
    )
    notes = tmp_path / "wicks.md"
    notes.write_text(f"# Wicks\n\n{NOTES}\n")
    pdf = make_pdf(tmp_path / "keeper.pdf", PDF_SENTENCE)
    with standin_fastgpt(stack, tmp_path, training_seconds=2) as fastgpt:
        log_in(page, live_server.url, "ops-alice", operator.raw_password)
        page.goto(f"{live_server.url}/stacks/{stack.pk}/")
        page.get_by_role("link", name="Knowledge bases").click()
        page.get_by_label("Name").fill("Keeper handbook")
        page.get_by_label("Embedding model").select_option(EMBEDDING)
        page.get_by_label("File-processing model").select_option(CHAT)
        page.get_by_role("button", name="Create knowledge base").click()
        expect(page.get_by_role("heading", name="Keeper handbook")).to_be_visible()

        expect(page.locator(".dropzone[data-ready]")).to_have_count(1)
        # Both files go up at once, each with its own progress bar, then into one import.
        page.get_by_label("Files to upload").set_input_files([str(pdf), str(notes)])
        # Generous waits: the machine may be busy with other tests' services.
        settled = page.locator(".uploads li.uploaded, .uploads li.failed")
        expect(settled).to_have_count(2, timeout=30_000)
        assert page.locator(".uploads li.failed").all_inner_texts() == []
        expect(page.locator(".staged input:checked")).to_have_count(2)
        page.locator("#upload").get_by_label("Chunk size (characters)").fill("300")
        page.get_by_role("button", name="Import the uploaded files").click()
        documents = page.locator("#documents tr[data-document]")
        expect(documents).to_have_count(2, timeout=30_000)
        expect(page.locator('#documents tr[data-status="ready"]')).to_have_count(2, timeout=60_000)

        page.locator("#search").get_by_label("Question").fill("Where are the spare wicks kept?")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#search-results")).to_contain_text("blue cabinet", timeout=30_000)
        expect(page.locator("#search-results")).to_contain_text("wicks.md")

        page.goto(f"{live_server.url}/stacks/{stack.pk}/apps/new/")
        page.get_by_label("Name").fill("Keeper bot")
        page.get_by_label("Chat model").select_option(CHAT)
        page.get_by_label("Keeper handbook").check()
        page.get_by_role("button", name="Create app").click()
        expect(page.get_by_role("heading", name="Keeper bot")).to_be_visible()

        chat = page.locator("#chat-test")
        chat.get_by_label("Question").fill("When does the keeper wind the lamp?")
        chat.get_by_role("button", name="Ask").click()
        expect(page.locator("#chat-test")).to_contain_text("clockwork lamp", timeout=30_000)

        links = page.locator("#new-share-link")
        links.get_by_label("Name").fill("Website")
        links.get_by_role("button", name="Publish share link").click()
        link = ShareLink.objects.get(name="Website")
        url = page.locator(f"#share-url-{link.pk}").input_value()
        assert url == (
            f"http://127.0.0.1:{fastgpt.port}/chat/share?shareId={link.fastgpt_share_id}"
        )
        expect(page.locator(f"#share-link-{link.pk} svg")).to_be_visible()

        public = page.context.new_page()
        answer = public.goto(url)
        assert answer is not None and answer.status == 200
