"""The panel speaks English or Simplified Chinese.

The language follows the browser (Accept-Language) until the switch in the page sets it (a
cookie); the catalogue in locale/ has every template string translated and is compiled; and the
key pages render in Chinese with no English left but product names and the fixtures' own names.
"""

import functools
import gettext
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from deployments import audit
from deployments.choices import Role, StackStatus
from deployments.models import KnowledgeBase, Service, StepRun
from testkit.browser import log_in
from testkit.factories import (
    add_member,
    make_deployment,
    make_server,
    make_stack,
    make_team,
    make_user,
)

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"
TEMPLATES = Path(settings.BASE_DIR) / "templates"
APP = Path(settings.BASE_DIR) / "deployments"
CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}

# What may stay in English on a Chinese page: product and protocol names, units, formats.
ALLOWED = [
    "FastGPT",
    "One API",
    "Xinference",
    "Docker",
    "Compose",
    "NVIDIA",
    "Celery",
    "SSH",
    "GPU",
    "CPU",
    "English",
    "HMAC-SHA256",
    "X-Panel-Signature",
    "Slack",
    "WeCom",
    "PDF",
    "Word",
    "PowerPoint",
    "Excel",
    "CSV",
    "Markdown",
    "HTML",
    "Webhook",
    "token",
    "UTC",
    "LLM",
]
# A run of ASCII words: a phrase left in English when two of them have three letters or more.
WORD_RUN = re.compile(r"[A-Za-z]+(?:[ \t\n,:;'’-]+[A-Za-z]+)+")
# The fixtures' own names, which no translation changes.
FIXTURE_NAMES = ["gpu-a", "kb-one", "bot-stack", "Alpha"]
COMMENT = re.compile(r"{#.*?#}|{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", re.S)
TRANSLATE = re.compile(r"""{%\s*translate\s+("[^"]*"|'[^']*')""")
BLOCKTRANSLATE = re.compile(r"{%\s*blocktranslate[^%]*%}(.*?){%\s*endblocktranslate\s*%}", re.S)
TEMPLATE_TAG = re.compile(r"{%.*?%}|{{.*?}}", re.S)
BETWEEN_TAGS = re.compile(r">([^<]+)<")
SKIPPED_TAGS = {"script", "style", "code", "pre", "textarea"}
SHOWN_ATTRIBUTES = {"aria-label", "placeholder", "title", "alt"}


class VisibleText(HTMLParser):
    """The text a reader sees or hears: text nodes outside code, and labelling attributes."""

    def __init__(self):
        super().__init__()
        self.skipping = 0
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in SKIPPED_TAGS:
            self.skipping += 1
        for name, value in attrs:
            if name in SHOWN_ATTRIBUTES and value:
                self.texts.append(value)

    def handle_endtag(self, tag):
        if tag in SKIPPED_TAGS and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping and data.strip():
            self.texts.append(" ".join(data.split()))


def english_left(html: str) -> list[str]:
    """Every visible text of `html` that still holds an English phrase."""
    parser = VisibleText()
    parser.feed(html)
    left = []
    for text in parser.texts:
        stripped = text
        for word in sorted(ALLOWED + FIXTURE_NAMES, key=len, reverse=True):
            stripped = stripped.replace(word, " ")
        if english_phrases(stripped):
            left.append(text)
    return left


def english_phrases(text: str) -> list[str]:
    runs = WORD_RUN.findall(text)
    return [run for run in runs if len(re.findall(r"[A-Za-z]{3,}", run)) >= 2]


def from_a_template(text: str) -> bool:
    """Whether English in `text` is written in a template (marked for translation or not): the
    templates' phrases make up at least half of it (a variable may fill in the rest)."""
    if text in python_source():
        return False
    covered = sum(len(piece) for piece in template_pieces() if piece in text)
    return covered * 2 >= len(text)


@functools.cache
def python_source() -> str:
    """The app's Python code, where the words of messages, forms and choices are written."""
    return "\n".join(path.read_text(encoding="utf-8") for path in APP.rglob("*.py"))


@functools.cache
def template_pieces() -> frozenset[str]:
    """The English phrases the templates write: their words marked for translation, and any
    text between tags, cut where a variable, a tag or markup comes between."""
    pieces = set()
    for path in TEMPLATES.rglob("*.html"):
        source = COMMENT.sub(" ", path.read_text(encoding="utf-8"))
        chunks = [quoted[1:-1] for quoted in TRANSLATE.findall(source)]
        chunks += BLOCKTRANSLATE.findall(source)
        chunks += BETWEEN_TAGS.findall(TEMPLATE_TAG.sub("{{}}", source))
        for chunk in chunks:
            for piece in re.split(r"{%.*?%}|{{.*?}}|<[^>]*>", chunk, flags=re.S):
                piece = " ".join(piece.split())
                if english_phrases(piece):
                    pieces.add(piece)
    return frozenset(pieces)


def read_po(path: Path) -> list[dict]:
    """The entries of a .po file: msgid, msgid_plural, msgstr (by plural index) and flags."""
    entries: list[dict] = []
    entry: dict | None = None
    field = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            entry = None
            continue
        if entry is None:
            entry = {"flags": "", "msgid": "", "msgid_plural": None, "msgstr": {}, "msgctxt": None}
            entries.append(entry)
        if line.startswith("#,"):
            entry["flags"] += line
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            value = unquote(line)
            if field[0] == "msgstr":
                entry["msgstr"][field[1]] += value
            else:
                entry[field[0]] += value
        else:
            key, _, rest = line.partition(" ")
            match = re.fullmatch(r"msgstr(?:\[(\d+)\])?", key)
            if match:
                field = ("msgstr", int(match.group(1) or 0))
                entry["msgstr"][field[1]] = unquote(rest)
            else:
                field = (key, None)
                entry[key] = unquote(rest)
    return [entry for entry in entries if entry["msgid"]]


def unquote(quoted: str) -> str:
    body = quoted.strip()[1:-1]
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), body)


def test_a_page_is_in_english_by_default_and_in_chinese_for_a_chinese_browser(client, db):
    english = client.get(reverse("login")).content.decode()
    assert '<html lang="en">' in english
    assert "Forgot your password?" in english

    for accept in ("zh-hans", "zh-CN,zh;q=0.9,en;q=0.8"):
        chinese = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE=accept).content.decode()
        assert '<html lang="zh-hans">' in chinese
        assert "忘记密码？" in chinese
        assert "Forgot your password?" not in chinese


def test_every_page_has_a_switch_that_posts_to_set_language(client, owner):
    client.force_login(owner)
    html = client.get(reverse("dashboard")).content.decode()
    assert f'action="{reverse("set_language")}"' in html
    assert '<option value="en" lang="en" selected>English</option>' in html
    assert '<option value="zh-hans" lang="zh-hans">简体中文</option>' in html


def test_the_switch_changes_the_language_and_it_sticks(client, owner):
    client.force_login(owner)
    answer = client.post(
        reverse("set_language"), {"language": "zh-hans", "next": reverse("dashboard")}
    )
    assert answer.status_code == 302
    assert answer.url == reverse("dashboard")
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"

    # The choice wins over what the browser asks for, on every later page.
    for name in ("dashboard", "server_list", "team_list"):
        html = client.get(reverse(name), HTTP_ACCEPT_LANGUAGE="en").content.decode()
        assert '<html lang="zh-hans">' in html
        assert "仪表盘" in html

    client.post(reverse("set_language"), {"language": "en", "next": reverse("dashboard")})
    html = client.get(reverse("dashboard"), **CHINESE).content.decode()
    assert '<html lang="en">' in html


def test_the_account_pages_of_allauth_come_out_in_chinese(client, owner):
    client.force_login(owner)
    html = client.get(reverse("account_change_password"), **CHINESE).content.decode()
    assert "当前密码" in html  # allauth's own catalogue: "Current Password"
    html = client.get(reverse("account_email"), **CHINESE).content.decode()
    assert "电子邮件地址" in html


def test_the_catalogue_has_every_entry_translated_and_none_fuzzy():
    entries = read_po(CATALOGUE / "django.po")
    assert len(entries) > 100
    untranslated = [e["msgid"] for e in entries if not all(e["msgstr"].values())]
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    assert not untranslated, f"Translate these in locale/zh_Hans: {untranslated}"
    assert not fuzzy, f"Check and unmark these fuzzy entries in locale/zh_Hans: {fuzzy}"


def test_the_compiled_catalogue_holds_every_entry_of_the_po_file():
    with (CATALOGUE / "django.mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)._catalog
    missing = []
    for entry in read_po(CATALOGUE / "django.po"):
        # A message with a context is kept under the context, EOT and the message.
        key = (
            entry["msgid"]
            if entry["msgctxt"] is None
            else f"{entry['msgctxt']}\x04{entry['msgid']}"
        )
        if entry["msgid_plural"]:
            found = catalogue.get((key, 0)) == entry["msgstr"][0]
        else:
            found = catalogue.get(key) == entry["msgstr"][0]
        if not found:
            missing.append(entry["msgid"])
    assert not missing, (
        "locale/zh_Hans/LC_MESSAGES/django.mo is older than django.po: run "
        f"manage.py compilemessages. Missing or different: {missing[:10]}"
    )


def test_the_english_phrase_check_finds_english_and_lets_product_names_pass():
    assert english_left("<p>Add a server</p>") == ["Add a server"]
    assert english_left('<input placeholder="Text in the line">') == ["Text in the line"]
    assert english_left("<p>在 FastGPT 和 One API 中</p><code>docker compose up</code>") == []
    assert english_left("<script>const words = 'not shown';</script><p>堆栈 bot-stack</p>") == []


@pytest.fixture
def world(team, owner):
    """A team with a deployed stack, a run with a step, a knowledge base and audit events."""
    server = make_server(team, name="gpu-a")
    stack = make_stack(server, name="bot-stack", status=StackStatus.RUNNING)
    now = timezone.now()
    Service.objects.create(stack=stack, name="fastgpt", state="running", health="healthy")
    deployment = make_deployment(stack, user=owner)
    StepRun.objects.create(
        run=deployment.run,
        index=0,
        name="compose.up",
        status="succeeded",
        started_at=now,
        finished_at=now,
    )
    KnowledgeBase.objects.create(
        team=team, stack=stack, name="kb-one", embedding_model="bge-m3", agent_model="qwen2"
    )
    audit.record("server.create", actor=owner, target=server)
    viewer = add_member(team, role=Role.VIEWER)
    return {"server": server, "stack": stack, "run": deployment.run, "viewer": viewer}


KEY_PAGES = [
    ("dashboard", None),
    ("server_list", None),
    ("server_detail", "server"),
    ("stack_list", None),
    ("stack_detail", "stack"),
    ("run_detail", "run"),
    ("knowledge_list", "stack"),
    ("team_detail", "team"),
    ("audit_list", None),
    ("account_index", None),
    ("model_list", None),
    ("deployment_list", None),
    ("team_list", None),
    ("notification_list", "team"),
    ("app_list", "stack"),
]


@pytest.mark.parametrize(("name", "about"), KEY_PAGES)
def test_a_key_page_renders_fully_translated_in_chinese(client, team, owner, world, name, about):
    objects = {**world, "team": team}
    # A viewer's knowledge list asks nothing of FastGPT; the rest is seen as the team's owner.
    client.force_login(world["viewer"] if name == "knowledge_list" else owner)
    args = [objects[about].pk] if about else []
    response = client.get(reverse(name, args=args), follow=True, **CHINESE)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html
    left = english_left(html)
    in_templates = [text for text in left if from_a_template(text)]
    assert not in_templates, (
        f"{name}: template text left in English (mark it and translate it in locale/): "
        f"{in_templates}"
    )
    # What is left is written in Python (messages, form labels, choices, step names): its
    # catalogue is deployments/locale.
    assert not left, f"{name}: Python text left in English (deployments/locale): {left}"


DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser_owner(transactional_db):
    team = make_team("Alpha")
    user = make_user("owner-olga")
    add_member(team, user, role=Role.OWNER)
    make_server(team, name="gpu-a")
    return user


@pytest.mark.slow
@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}]
)
def test_in_a_browser_a_chinese_reader_gets_chinese_and_the_switch_keeps_english(
    live_server, page, browser_owner, viewport, tmp_path
):
    page.set_viewport_size(viewport)
    log_in(page, live_server.url, browser_owner.username, browser_owner.raw_password)
    page.set_extra_http_headers({"Accept-Language": "zh-CN,zh;q=0.9"})
    page.goto(f"{live_server.url}/servers/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("heading", level=1)).to_have_text("服务器")
    # Nothing reaches past the window's width in Chinese either.
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.screenshot(path=str(tmp_path / "servers-zh.png"), full_page=True)

    if viewport["width"] < 600:
        page.locator("details.menu > summary").click()
    page.get_by_label("语言").select_option("en")
    page.get_by_role("button", name="切换").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Servers")
    page.screenshot(path=str(tmp_path / "servers-en.png"), full_page=True)

    # The choice sticks, though the browser still asks for Chinese.
    page.goto(f"{live_server.url}/stacks/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Stacks")
    expect(page.locator("html")).to_have_attribute("lang", "en")
