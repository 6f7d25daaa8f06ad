from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import render

from .. import access
from ..models import Stack
from .common import HtmxHttpRequest

RECENT_DEPLOYMENTS = 10


@login_required
def stack_list(request: HtmxHttpRequest) -> HttpResponse:
    stacks = access.visible(
        Stack.objects.select_related("team", "server").annotate(service_count=Count("services")),
        request.user,
    ).order_by("team__name", "server__name", "name")
    return render(request, "deployments/stack_list.html", {"stacks": stacks})


@login_required
def stack_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = access.get_visible_or_404(
        Stack.objects.select_related("team", "server"), request.user, pk=pk
    )
    context = {
        "stack": stack,
        "services": stack.services.all(),
        "deployments": stack.deployments.select_related("user", "run")[:RECENT_DEPLOYMENTS],
    }
    return render(request, "deployments/stack_detail.html", context)
