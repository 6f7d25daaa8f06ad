"""The app's own messages (forms, choices, validators, actions, runs) speak Simplified Chinese.

The app's catalogue is deployments/locale; every entry in it is translated, none is fuzzy, and
each translation keeps its msgid's placeholders, so no message breaks when it is filled in.
"""

import re
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.template import Context, Template
from django.utils import translation

from deployments.actions import ActionError
from deployments.actions.pipelines import do_retry_run
from deployments.audit import action_label
from deployments.choices import (
    DocumentStatus,
    PipelineKind,
    RunStatus,
    ServiceState,
    StackStatus,
)
from deployments.consumers.runs import scope_language
from deployments.forms.servers import ServerForm
from deployments.models.pipelines import run_title
from deployments.notifications import notify
from deployments.pipelines import registry
from deployments.step_titles import STEP_TITLES, step_title
from deployments.validators import validate_hostname
from testkit.factories import make_run

CATALOGUE = Path(__file__).resolve().parent.parent / "deployments" / "locale" / "zh_Hans"
PO = CATALOGUE / "LC_MESSAGES" / "django.po"
PLACEHOLDER = re.compile(r"%\([A-Za-z_0-9]+\)[sd]|%[sd]")
HAN = re.compile(r"[\u4e00-\u9fff]")


def chinese(text) -> bool:
    return bool(HAN.search(str(text)))


def po_entries(path: Path) -> list[dict]:
    """The entries of a .po file: context, msgid, plural, msgstrs and flags, header left out."""
    entries, entry, field = [], None, None

    def unquote(value: str) -> str:
        return value[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")

    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip():
            if entry is not None and entry["msgid"]:
                entries.append(entry)
            entry, field = None, None
            continue
        if line.startswith("#~"):
            continue
        if entry is None:
            entry = {"msgctxt": "", "msgid": "", "msgid_plural": "", "msgstr": {}, "flags": ""}
        if line.startswith("#,"):
            entry["flags"] += line
            continue
        if line.startswith("#"):
            continue
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?) (".*")$', line)
        if match:
            keyword, number, value = match.groups()
            if keyword.startswith("msgstr"):
                field = ("msgstr", int(number or 0))
                entry["msgstr"][field[1]] = unquote(value)
            else:
                field = (keyword, None)
                entry[keyword] = unquote(value)
        elif line.startswith('"') and field is not None:
            if field[0] == "msgstr":
                entry["msgstr"][field[1]] += unquote(line)
            else:
                entry[field[0]] += unquote(line)
    return entries


@pytest.fixture
def zh():
    with translation.override("zh-hans"):
        yield


def test_the_app_catalogue_has_every_entry_translated_and_none_fuzzy():
    entries = po_entries(PO)
    assert len(entries) > 100
    untranslated = [e["msgid"] for e in entries if not all(e["msgstr"].values())]
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    assert untranslated == []
    assert fuzzy == []


def test_each_translation_keeps_the_placeholders_of_its_msgid():
    mismatched = [
        (e["msgid"], text)
        for e in po_entries(PO)
        for text in e["msgstr"].values()
        if sorted(PLACEHOLDER.findall(e["msgid"])) != sorted(PLACEHOLDER.findall(text))
    ]
    assert mismatched == []


def test_the_compiled_app_catalogue_is_there():
    assert (CATALOGUE / "LC_MESSAGES" / "django.mo").stat().st_size > 1000


@pytest.mark.django_db
def test_a_form_label_and_its_help_text_read_in_chinese(zh, team, owner):
    form = ServerForm(user=owner, teams=[team])
    assert form.fields["ssh_port"].label == "SSH 端口"
    assert chinese(form.fields["hourly_price"].help_text)


@pytest.mark.django_db
def test_a_form_label_stays_english_by_default(team, owner):
    form = ServerForm(user=owner, teams=[team])
    assert form.fields["ssh_port"].label == "SSH port"


def test_a_choice_label_reads_in_chinese(zh):
    assert str(StackStatus.TORN_DOWN.label) == "已拆除"
    assert str(RunStatus.SUCCEEDED.label) == "成功"


def test_a_validator_message_reads_in_chinese(zh):
    with pytest.raises(ValidationError) as raised:
        validate_hostname("not a host!")
    assert chinese(raised.value.messages[0])
    assert "IP" in raised.value.messages[0]


@pytest.mark.django_db
def test_an_action_error_reads_in_chinese_with_its_names_filled_in(zh, team, owner):
    run = make_run(team, status=RunStatus.RUNNING)
    with pytest.raises(ActionError) as raised:
        do_retry_run(run, user=owner)
    assert str(raised.value) == "只有失败或已取消的任务才能重试；此任务的状态为运行中。"


@pytest.mark.django_db
def test_an_action_error_stays_english_by_default(team, owner):
    run = make_run(team, status=RunStatus.RUNNING)
    with pytest.raises(ActionError) as raised:
        do_retry_run(run, user=owner)
    assert str(raised.value) == (
        "Only a failed or cancelled run can be retried; this one is running."
    )


def test_a_step_title_reads_in_chinese_and_unknown_names_stay_as_they_are(zh):
    assert step_title("pull images") == "拉取镜像"
    assert step_title("a step no pipeline has") == "a step no pipeline has"
    rendered = Template("{% load panel %}{{ name|step_title }}").render(
        Context({"name": "wait until healthy"})
    )
    assert rendered == "等待服务健康"


def test_a_step_title_is_its_name_in_english():
    with translation.override("en-us"):
        assert step_title("set up One API") == "set up One API"


def test_every_step_of_every_pipeline_has_a_title():
    # The product's pipelines; tests may register others of their own.
    product = [kind for kind in registry.kinds() if kind in PipelineKind.values]
    assert len(product) == len(PipelineKind.values)
    names = {step.name for kind in product for step in registry.get(kind).steps}
    assert names - set(STEP_TITLES) == set()


def test_a_run_title_reads_in_chinese(zh):
    title = run_title("stack.deploy", {"stack": "bot-stack", "server": "gpu-a"}, "deploy")
    assert title == "在 gpu-a 上部署堆栈 bot-stack"


def test_an_audit_action_is_named_in_chinese(zh):
    assert action_label("server.create") == "添加服务器"
    assert action_label("something.unknown") == "something.unknown"


@pytest.mark.django_db
def test_a_notification_is_written_in_the_panels_language_whoever_caused_it(zh, team, monkeypatch):
    sent = []
    monkeypatch.setattr(notify, "notify", lambda *args: sent.append(args) or 1)
    run = make_run(team, status=RunStatus.FAILED, kind="server.prepare")
    notify.run_failed(run.pk, "boom")
    subject = sent[0][2]
    assert subject == f"Run #{run.pk} failed: Prepare server"
    assert translation.get_language() == "zh-hans"


def test_a_run_page_followed_live_keeps_the_language_of_the_page(settings):
    by_browser = {"headers": [(b"accept-language", b"zh-CN,zh;q=0.9,en;q=0.5")], "cookies": {}}
    by_switch = {"headers": [], "cookies": {settings.LANGUAGE_COOKIE_NAME: "zh-hans"}}
    assert scope_language(by_browser).startswith("zh")
    assert scope_language(by_switch) == "zh-hans"
    assert scope_language({"headers": [], "cookies": {}}) == settings.LANGUAGE_CODE


def test_a_status_reads_as_a_status_not_as_a_column_heading(zh):
    # "Created" is also a column heading ("创建时间") in the pages' catalogue, which wins for
    # a msgid both have: the statuses carry a context of their own.
    assert str(ServiceState.CREATED.label) == "已创建"
    assert str(DocumentStatus.TRAINING.label) == "训练中"
