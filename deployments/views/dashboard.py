from django.contrib.auth.decorators import login_required
from django.db.models import Case, Count, F, Q, Value, When
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from .. import access, costs
from ..choices import Health, Role, RunStatus
from ..getting_started import checklist
from ..idle.status import stopped_on
from ..models import Deployment, Membership, PipelineRun, Server, Stack
from .audit import visible_events
from .common import HtmxHttpRequest

RECENT = 10
STACKS_SHOWN = 12
FAILURES_SHOWN = 5
SERVERS_SHOWN = 12
UNDER_WAY = (RunStatus.QUEUED, RunStatus.RUNNING)


def stacks_with_health(user, guard_stopped: frozenset[int]):
    """The user's stacks, those in trouble first, with their services counted by health. A
    stack the idle guard stopped (`guard_stopped`) is not in trouble, though Docker calls its
    stopped containers unhealthy."""
    return (
        access.visible(Stack.objects.select_related("server", "team"), user)
        .annotate(
            service_count=Count("services"),
            healthy_count=Count("services", filter=Q(services__health=Health.HEALTHY)),
            unhealthy_count=Count("services", filter=Q(services__health=Health.UNHEALTHY)),
            trouble=Case(When(pk__in=guard_stopped, then=Value(0)), default=F("unhealthy_count")),
        )
        .order_by("-trouble", "name", "pk")
    )


def servers_with_cost(user, now):
    """The user's servers with what each costs: (server, costs.ServerCost) pairs."""
    # Each row's idle badge reads the server's guard: read with the servers.
    servers = access.visible(
        Server.objects.select_related("team", "idle_guard__step_run"), user
    ).order_by("name", "pk")
    return [(server, costs.server_cost(server, now)) for server in servers[:SERVERS_SHOWN]]


def budgets(memberships, user, now):
    """The month so far of each of the user's teams that set a budget: (team, TeamBudget)."""
    teams = [
        membership.team for membership in memberships if membership.team.monthly_budget is not None
    ]
    servers = access.visible(Server.objects.filter(team__in=teams), user)
    by_team: dict[int, list] = {}
    for server in servers:
        by_team.setdefault(server.team_id, []).append(server)
    return [(team, costs.team_budget(team, by_team.get(team.pk, []), now)) for team in teams]


@login_required
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    user = request.user
    memberships = (
        Membership.objects.filter(user=user)
        .select_related("team")
        .annotate(member_count=Count("team__memberships"))
        .order_by("team__name")
    )
    runs = access.visible(
        PipelineRun.objects.select_related("team", "created_by", "deployment__stack__server"), user
    )
    deployments = access.visible(
        Deployment.objects.select_related("stack__server", "user", "run"), user
    )
    servers = access.visible(Server.objects.all(), user)
    idle_stopped = stopped_on(servers, user)
    stacks = stacks_with_health(user, idle_stopped.stack_ids)
    can_add_server = access.team_ids(user, Role.OPERATOR) != []
    steps = checklist(user) if can_add_server else None
    now = timezone.now()
    context = {
        "memberships": memberships,
        "checklist": steps if steps and not steps.complete else None,
        "server_count": servers.count(),
        "stack_count": stacks.count(),
        "stacks": stacks[:STACKS_SHOWN],
        "idle_stopped": idle_stopped,
        "running": runs.filter(status__in=UNDER_WAY)[:RECENT],
        "failures": runs.filter(status=RunStatus.FAILED).order_by(
            F("finished_at").desc(nulls_last=True), "-pk"
        )[:FAILURES_SHOWN],
        "recent": deployments[:RECENT],
        # The team's activity: logins and other account rows stay on the Audit page.
        "events": visible_events(user).filter(team__isnull=False).select_related("team")[:RECENT],
        "can_add_server": can_add_server,
        "can_add_stack": can_add_server,
        "servers": servers_with_cost(user, now),
        "budgets": budgets(memberships, user, now),
    }
    return render(request, "deployments/dashboard.html", context)
