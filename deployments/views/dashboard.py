from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import render

from .. import access
from ..choices import RUN_TERMINAL, Role
from ..models import Deployment, Membership, Server, Stack
from .audit import visible_events
from .common import HtmxHttpRequest

RECENT = 10


@login_required
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    user = request.user
    memberships = (
        Membership.objects.filter(user=user)
        .select_related("team")
        .annotate(member_count=Count("team__memberships"))
        .order_by("team__name")
    )
    deployments = access.visible(
        Deployment.objects.select_related("stack__server", "user", "run"), user
    )
    context = {
        "memberships": memberships,
        "server_count": access.visible(Server.objects.all(), user).count(),
        "stack_count": access.visible(Stack.objects.all(), user).count(),
        "running": deployments.exclude(run__status__in=RUN_TERMINAL)[:RECENT],
        "recent": deployments[:RECENT],
        "events": visible_events(user).select_related("team")[:RECENT],
        "can_add_server": access.team_ids(user, Role.OPERATOR) != [],
    }
    return render(request, "deployments/dashboard.html", context)
