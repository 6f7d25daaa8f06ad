"""The dashboard's getting-started checklist: the tutorial's path from a bare server to a
published chatbot, read from what the user's teams really have.

Each step is done when the objects it makes exist, or a later step is; the first step not done
is the next one, with a link to the page where it is taken.
"""

from dataclasses import dataclass, replace

from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from . import access
from .choices import LaunchStatus, PipelineKind, Role, RunStatus, StackStatus
from .models import KnowledgeBase, ModelLaunch, PipelineRun, Server, ShareLink, Stack

# A stack in one of these states has been deployed and answers (or did until torn down).
DEPLOYED = (StackStatus.RUNNING, StackStatus.DEGRADED)


@dataclass(frozen=True)
class Step:
    key: str
    title: str | Promise
    done: bool
    # Where the step is taken; empty when the user cannot take it from here.
    url: str = ""


@dataclass(frozen=True)
class Checklist:
    steps: list[Step]

    @property
    def next_step(self) -> Step | None:
        return next((step for step in self.steps if not step.done), None)

    @property
    def done_count(self) -> int:
        return sum(step.done for step in self.steps)

    @property
    def complete(self) -> bool:
        return self.next_step is None


def _first_pk(queryset) -> int | None:
    return queryset.values_list("pk", flat=True).first()


def checklist(user) -> Checklist:
    """The steps for the teams where `user` can act (operator or owner)."""
    team_ids = access.team_ids(user, Role.OPERATOR)
    servers = Server.objects.filter(team_id__in=team_ids)
    stacks = Stack.objects.filter(team_id__in=team_ids)
    prepared_ids = {
        run_params.get("server_id")
        for run_params in PipelineRun.objects.filter(
            team_id__in=team_ids, kind=PipelineKind.SERVER_PREPARE, status=RunStatus.SUCCEEDED
        ).values_list("params", flat=True)
    }
    deployed = stacks.filter(status__in=DEPLOYED)
    first_deployed = _first_pk(deployed)

    unprepared = _first_pk(servers.exclude(pk__in=[pk for pk in prepared_ids if pk]))
    undeployed = _first_pk(stacks.exclude(status__in=DEPLOYED))

    steps = [
        Step("server", _("Add a server"), servers.exists(), reverse("server_create")),
        Step(
            "prepare",
            _("Prepare it: Docker and the NVIDIA container toolkit"),
            bool(prepared_ids & set(servers.values_list("pk", flat=True))),
            reverse("server_detail", args=[unprepared]) if unprepared else "",
        ),
        Step("stack", _("Create a stack"), stacks.exists(), reverse("stack_create")),
        Step(
            "deploy",
            _("Deploy the stack"),
            first_deployed is not None,
            reverse("stack_detail", args=[undeployed]) if undeployed else "",
        ),
        Step(
            "models",
            _("Launch models: chat, embedding and rerank"),
            ModelLaunch.objects.filter(team_id__in=team_ids, status=LaunchStatus.READY).exists(),
            reverse("model_list"),
        ),
        Step(
            "knowledge",
            _("Create a knowledge base"),
            KnowledgeBase.objects.filter(team_id__in=team_ids).exists(),
            reverse("knowledge_list", args=[first_deployed]) if first_deployed else "",
        ),
        Step(
            "chatbot",
            _("Publish a chatbot"),
            ShareLink.objects.filter(app__team_id__in=team_ids).exists(),
            reverse("chatbot_publish", args=[first_deployed]) if first_deployed else "",
        ),
    ]
    # Where a team got further by another way (a server prepared by hand, a remote provider's
    # models), the earlier steps are behind it: a step counts as done once a later one is.
    reached = False
    for index in reversed(range(len(steps))):
        reached = reached or steps[index].done
        steps[index] = replace(steps[index], done=reached)
    return Checklist(steps)
