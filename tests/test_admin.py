"""The Django admin shows the panel's objects but changes none of them: servers, stacks, runs,
deployments and launches change only through the actions, which check roles and audit."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from deployments.choices import LaunchStatus
from deployments.llm.presets import PRESETS
from deployments.models import ModelLaunch
from testkit.factories import make_deployment, make_server, make_stack

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests")
    client.force_login(user)
    return client


@pytest.fixture
def objects(team):
    server = make_server(team)
    stack = make_stack(server)
    deployment = make_deployment(stack)
    config = PRESETS["m3e-base"].build(team)
    config.save()
    launch = ModelLaunch.objects.create(
        team=team, stack=stack, embedding=config, model_uid="m", status=LaunchStatus.READY
    )
    return {
        "server": server,
        "stack": stack,
        "pipelinerun": deployment.run,
        "deployment": deployment,
        "modellaunch": launch,
    }


NAMES = ["server", "stack", "pipelinerun", "deployment", "modellaunch"]


@pytest.mark.parametrize("name", NAMES)
def test_the_admin_shows_but_cannot_change_add_or_delete(superuser_client, objects, name):
    obj = objects[name]
    change = reverse(f"admin:deployments_{name}_change", args=[obj.pk])
    page = superuser_client.get(change)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()

    assert superuser_client.post(change, {"name": "renamed"}).status_code == 403
    assert superuser_client.get(reverse(f"admin:deployments_{name}_add")).status_code == 403
    delete = reverse(f"admin:deployments_{name}_delete", args=[obj.pk])
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()
