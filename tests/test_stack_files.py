"""One answer to "what are this stack's files": the stack page, the upgrade preview and a
deploy agree, launched models included, and showing them writes nothing."""

import json

import pytest
from django.urls import reverse

from deployments.actions.stacks import do_deploy_stack
from deployments.choices import LaunchStatus
from deployments.llm.presets import PRESETS
from deployments.models import ModelLaunch, Stack
from deployments.pipelines import stack_deploy
from deployments.pipelines.steps import StepContext
from deployments.stacks import versions
from deployments.stacks.files import files_diff, shown_files
from deployments.stacks.render import COMPOSE_FILE, CONFIG_FILE
from testkit.factories import make_server, make_stack

pytestmark = pytest.mark.django_db

LAUNCHED = ("qwen2-instruct-7b", "m3e-base", "bge-reranker-v2-m3")


@pytest.fixture
def stack(team):
    return make_stack(make_server(team), data_dir="/srv/llm")


@pytest.fixture
def launched(stack) -> list[str]:
    """A chat, an embedding and a rerank model ready on the stack, and one that failed."""
    models = []
    for preset in (*LAUNCHED, "llama-3.1-instruct-8b"):
        config = PRESETS[preset].build(stack.team)
        config.save()
        failed = preset not in LAUNCHED
        ModelLaunch.objects.create(
            team=stack.team,
            stack=stack,
            model_uid=config.model,
            status=LaunchStatus.FAILED if failed else LaunchStatus.READY,
            **{PRESETS[preset].config_kind.slug: config},
        )
        if not failed:
            models.append(config.model)
    return models


@pytest.fixture
def next_line(monkeypatch):
    line = versions.LINES[versions.DEFAULT_LINE]
    images = {**line.images, "oneapi": versions.Image("one-api", "v0.6.8", docker_hub="x/one-api")}
    monkeypatch.setitem(
        versions.LINES, "next", versions.VersionLine(key="next", label="Next", images=images)
    )


def deploy_render_step(stack, user) -> dict[str, str]:
    """Run the deploy's "render files" step and record its files as a finished deploy would."""
    deployment = do_deploy_stack(stack, user=user)
    step = StepContext(run=deployment.run, index=1, name="render files", worker="test:1")
    stack_deploy.render_files(step)
    deployment.refresh_from_db()
    Stack.objects.filter(pk=stack.pk).update(rendered_files=deployment.rendered_files)
    return deployment.rendered_files


def config_models(files: dict[str, str]) -> list[str]:
    document = json.loads(files[CONFIG_FILE])
    kinds = ("llmModels", "vectorModels", "reRankModels")
    return [entry["model"] for kind in kinds for entry in document[kind]]


def test_the_page_the_upgrade_preview_and_a_deploy_agree_with_launched_models(
    client, stack, launched, operator, next_line
):
    deployed = deploy_render_step(stack, operator)
    assert config_models(deployed) == launched

    client.force_login(operator)
    page = client.get(reverse("stack_detail", args=[stack.pk]))
    assert dict(page.context["files"]) == deployed

    # The same line: nothing would change. Another line: only One API's image does.
    url = reverse("stack_upgrade", args=[stack.pk])
    same = client.get(url, {"version_line": stack.version_line})
    assert same.context["diff"] == ""
    upgrade = client.get(url, {"version_line": "next"})
    diff = upgrade.context["diff"]
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    current = versions.LINES[stack.version_line].images["oneapi"]
    assert changed == [
        f"-    image: {current.reference(stack.registry, stack.registry_prefix)}",
        "+    image: x/one-api:v0.6.8",
    ]
    assert f"a/{CONFIG_FILE}" not in diff


def test_a_terminated_model_leaves_the_files_a_deploy_would_write(stack, launched, operator):
    ModelLaunch.objects.filter(stack=stack, model_uid=launched[0]).update(
        status=LaunchStatus.TERMINATED
    )
    assert config_models(shown_files(stack)) == launched[1:]
    assert config_models(deploy_render_step(stack, operator)) == launched[1:]


def test_showing_the_files_of_a_stack_without_secrets_writes_nothing(client, stack, viewer):
    Stack.objects.filter(pk=stack.pk).update(secrets="")
    before = Stack.objects.values("secrets", "updated_at").get(pk=stack.pk)

    client.force_login(viewer)
    page = client.get(reverse("stack_detail", args=[stack.pk]))

    assert page.status_code == 200
    assert Stack.objects.values("secrets", "updated_at").get(pk=stack.pk) == before
    env = dict(page.context["files"])[".env"]
    assert "PG_PASSWORD=********" in env
    assert COMPOSE_FILE in dict(page.context["files"])


def test_files_diff_names_each_file_that_changed():
    diff = files_diff({"a.txt": "one\n", "b.txt": "same\n"}, {"a.txt": "two\n", "b.txt": "same\n"})
    assert "--- a/a.txt" in diff and "+two" in diff and "-one" in diff
    assert "b.txt" not in diff
