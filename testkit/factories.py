"""Small, explicit builders of domain objects for tests."""

import itertools
import secrets

from django.contrib.auth import get_user_model

from deployments.choices import DeploymentAction, Role, RunStatus
from deployments.models import Deployment, Membership, PipelineRun, Server, Stack, Team

_counter = itertools.count(1)


def make_user(username: str | None = None, password: str | None = None):
    username = username or f"user{next(_counter)}"
    password = password or secrets.token_urlsafe(12)
    user = get_user_model().objects.create_user(username=username, password=password)
    user.raw_password = password
    return user


def make_team(name: str | None = None) -> Team:
    return Team.objects.create(name=name or f"team-{next(_counter)}")


def add_member(team: Team, user=None, role: Role = Role.OPERATOR):
    user = user or make_user()
    Membership.objects.create(team=team, user=user, role=role)
    return user


def make_server(team: Team, **fields) -> Server:
    fields.setdefault("name", f"gpu-{next(_counter)}")
    fields.setdefault("host", "203.0.113.10")
    # The SSH targets and stand-ins of the tests listen on this machine's loopback: allowed, as
    # an owner allows it for a server that really runs on the panel's machine.
    fields.setdefault("allow_local_address", fields["host"] in ("127.0.0.1", "::1", "localhost"))
    return Server.objects.create(team=team, **fields)


def make_stack(server: Server, **fields) -> Stack:
    fields.setdefault("name", f"stack-{next(_counter)}")
    # Each stack has a directory of its own, as the panel requires.
    fields.setdefault("data_dir", f"/opt/fastgpt-{fields['name']}")
    return Stack.objects.create(team=server.team, server=server, **fields)


def make_run(team: Team, status: RunStatus = RunStatus.SUCCEEDED, **fields) -> PipelineRun:
    fields.setdefault("kind", "deploy")
    return PipelineRun.objects.create(team=team, status=status, **fields)


def make_deployment(
    stack: Stack,
    *,
    user=None,
    status: RunStatus = RunStatus.SUCCEEDED,
    action: DeploymentAction = DeploymentAction.DEPLOY,
    **fields,
) -> Deployment:
    run = make_run(stack.team, status=status, created_by=user)
    return Deployment.objects.create(
        team=stack.team, stack=stack, user=user, run=run, action=action, **fields
    )


def stack_form_data(server: Server, **overrides) -> dict:
    """What the stack form posts for a new stack on `server`, with `overrides`."""
    data = {
        "server": server.pk,
        "name": "staging",
        "version_line": "fastgpt-4.8.8",
        "registry": "dockerhub",
        "registry_prefix": "",
        "fastgpt_port": "3100",
        "oneapi_port": "3101",
        "xinference_port": "9998",
        "xinference_device": "gpu",
        "data_dir": "/opt/staging",
    }
    return {**data, **overrides}
