"""What a teardown does to a stack's models and to the credentials the services gave the
panel: the models are gone with Xinference's container; with the data deleted, One API's and
Xinference's credentials are forgotten, the generated passwords kept."""

import pytest

from deployments.choices import DeploymentAction, LaunchStatus, StackStatus
from deployments.llm.presets import PRESETS
from deployments.models import ModelLaunch
from deployments.pipelines.stack_teardown import record_teardown
from deployments.pipelines.steps import StepContext
from deployments.stacks.secrets import (
    ONEAPI_ACCESS_TOKEN,
    ONEAPI_FASTGPT_KEY,
    SECRET_NAMES,
    XINFERENCE_API_KEY,
    save_obtained_secret,
    stack_secrets,
)
from testkit.factories import make_deployment, make_server, make_stack

pytestmark = pytest.mark.django_db


@pytest.fixture
def stack(team):
    stack = make_stack(make_server(team), status=StackStatus.RUNNING)
    stack_secrets(stack)
    for name in (ONEAPI_ACCESS_TOKEN, ONEAPI_FASTGPT_KEY, XINFERENCE_API_KEY):
        save_obtained_secret(stack, name, f"value-of-{name}")
    return stack


def launch(stack, preset: str, status: LaunchStatus) -> ModelLaunch:
    config = PRESETS[preset].build(stack.team)
    config.save()
    kind = {"qwen2-instruct-7b": "llm", "m3e-base": "embedding"}[preset]
    return ModelLaunch.objects.create(
        team=stack.team, stack=stack, model_uid=config.model, status=status, **{kind: config}
    )


def tear_down(stack, *, delete_data: bool) -> str:
    deployment = make_deployment(stack, action=DeploymentAction.TEARDOWN)
    deployment.run.params = {"stack_id": stack.pk, "delete_data": delete_data}
    deployment.run.save()
    return record_teardown(StepContext(run=deployment.run, index=2, name="record", worker="w"))


def test_a_teardown_marks_the_stacks_running_models_terminated(stack):
    ready = launch(stack, "qwen2-instruct-7b", LaunchStatus.READY)
    failed = launch(stack, "m3e-base", LaunchStatus.FAILED)
    tear_down(stack, delete_data=False)
    ready.refresh_from_db()
    failed.refresh_from_db()
    assert (ready.status, ready.stage) == (LaunchStatus.TERMINATED, "stack torn down")
    assert failed.status == LaunchStatus.FAILED
    stack.refresh_from_db()
    assert stack.status == StackStatus.TORN_DOWN
    # Data kept: the services' own credentials still hold.
    assert stack_secrets(stack)[ONEAPI_FASTGPT_KEY] == f"value-of-{ONEAPI_FASTGPT_KEY}"


def test_deleting_the_data_forgets_obtained_credentials_and_keeps_generated_ones(stack):
    generated = {name: stack_secrets(stack)[name] for name in SECRET_NAMES}
    tear_down(stack, delete_data=True)
    stack.refresh_from_db()
    secrets = stack_secrets(stack)
    assert {name: secrets[name] for name in SECRET_NAMES} == generated
    for name in (ONEAPI_ACCESS_TOKEN, ONEAPI_FASTGPT_KEY, XINFERENCE_API_KEY):
        assert name not in secrets


@pytest.fixture
def staging_dir(settings, tmp_path):
    settings.DOCUMENT_STAGING_DIR = tmp_path / "staging"
    settings.DOCUMENT_STAGING_DIR.mkdir()
    return settings.DOCUMENT_STAGING_DIR


def knowledge_of(stack, staging_dir):
    """A knowledge base with a document whose staged copy is on disk, a chat app answering
    from it with a share link, and a remote provider with its One API channel."""
    from deployments.models import ChatApp, Document, KnowledgeBase, RemoteProvider, ShareLink

    base = KnowledgeBase.objects.create(
        team=stack.team, stack=stack, name="Handbook", embedding_model="m3e", agent_model="qwen"
    )
    (staging_dir / "abc.pdf").write_bytes(b"%PDF-1.4")
    Document.objects.create(knowledge_base=base, name="guide.pdf", staged_file="abc.pdf")
    app = ChatApp.objects.create(team=stack.team, stack=stack, name="Helpdesk", chat_model="qwen")
    app.knowledge_bases.add(base)
    ShareLink.objects.create(app=app, name="public", fastgpt_share_id="s1")
    provider = RemoteProvider.objects.create(
        team=stack.team, stack=stack, name="cloud", api_key="sk-1", oneapi_channel_id=7
    )
    return base, app, provider


def test_deleting_the_data_forgets_the_stacks_knowledge_bases_apps_and_channels(stack, staging_dir):
    from deployments.models import ChatApp, Document, KnowledgeBase, ShareLink

    _, _, provider = knowledge_of(stack, staging_dir)
    output = tear_down(stack, delete_data=True)

    assert not KnowledgeBase.objects.filter(stack=stack).exists()
    assert not Document.objects.exists()
    assert not ChatApp.objects.filter(stack=stack).exists()
    assert not ShareLink.objects.exists()
    assert not (staging_dir / "abc.pdf").exists()
    provider.refresh_from_db()
    assert (provider.oneapi_channel_id, provider.api_key) == (None, "sk-1")
    assert "torn down" in output


def test_a_teardown_keeping_the_data_keeps_knowledge_bases_and_apps(stack, staging_dir):
    from deployments.models import ChatApp, Document, KnowledgeBase

    base, app, provider = knowledge_of(stack, staging_dir)
    tear_down(stack, delete_data=False)

    assert KnowledgeBase.objects.get(pk=base.pk).documents.count() == 1
    assert ChatApp.objects.get(pk=app.pk).share_links.count() == 1
    assert Document.objects.get().staged_file == "abc.pdf"
    assert (staging_dir / "abc.pdf").exists()
    provider.refresh_from_db()
    assert provider.oneapi_channel_id == 7
