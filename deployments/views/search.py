"""The top bar's search: jump to a server, stack, knowledge base or run of the user's teams."""

import re
from dataclasses import dataclass, field

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from .. import access
from ..choices import PipelineKind
from ..models import KnowledgeBase, PipelineRun, Server, Stack
from .common import HtmxHttpRequest

# Per kind of object: enough to pick from, few enough to read.
LIMIT = 20
QUERY_MAX_CHARS = 100
# What the "Knowledge" entry of the navigation lists: every knowledge base, no query needed.
KNOWLEDGE = "knowledge"
RUN_NUMBER = re.compile(r"#?(\d+)")


@dataclass
class Results:
    servers: list[Server] = field(default_factory=list)
    stacks: list[Stack] = field(default_factory=list)
    knowledge_bases: list[KnowledgeBase] = field(default_factory=list)
    runs: list[PipelineRun] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.servers) + len(self.stacks) + len(self.knowledge_bases) + len(self.runs)

    def only_url(self) -> str | None:
        """The page of the one object found, when exactly one is."""
        if self.count != 1:
            return None
        for server in self.servers:
            return reverse("server_detail", args=[server.pk])
        for stack in self.stacks:
            return reverse("stack_detail", args=[stack.pk])
        for base in self.knowledge_bases:
            return reverse("knowledge_detail", args=[base.pk])
        for run in self.runs:
            return reverse("run_detail", args=[run.pk])
        return None


def _run_filter(query: str) -> Q | None:
    """Runs by number ("12", "#12") or by what they do ("prepare", "stack.deploy")."""
    number = RUN_NUMBER.fullmatch(query)
    if number:
        return Q(pk=int(number.group(1)))
    lowered = query.lower()
    kinds = [
        kind.value
        for kind in PipelineKind
        if lowered in kind.value.lower() or lowered in str(kind.label).lower()
    ]
    return Q(kind__in=kinds) if kinds else None


def find(user, query: str) -> Results:
    """What of the user's teams matches `query` (by name, host or run number); nothing for an
    empty query. Objects of other teams are never looked at."""
    query = query.strip()[:QUERY_MAX_CHARS]
    if not query:
        return Results()
    servers = access.visible(Server.objects.select_related("team"), user).filter(
        Q(name__icontains=query) | Q(host__icontains=query)
    )
    stacks = access.visible(Stack.objects.select_related("server", "team"), user).filter(
        name__icontains=query
    )
    bases = access.visible(KnowledgeBase.objects.select_related("stack", "team"), user).filter(
        name__icontains=query
    )
    run_filter = _run_filter(query)
    runs = access.visible(
        PipelineRun.objects.select_related("team", "created_by", "deployment__stack__server"),
        user,
    )
    runs = runs.filter(run_filter) if run_filter is not None else runs.none()
    return Results(
        servers=list(servers[:LIMIT]),
        stacks=list(stacks[:LIMIT]),
        knowledge_bases=list(bases[:LIMIT]),
        runs=list(runs[:LIMIT]),
    )


def all_knowledge_bases(user) -> Results:
    bases = access.visible(KnowledgeBase.objects.select_related("stack", "team"), user)
    return Results(knowledge_bases=list(bases.order_by("name", "pk")))


@login_required
def search(request: HtmxHttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:QUERY_MAX_CHARS]
    listing = request.GET.get("in") == KNOWLEDGE and not query
    if listing:
        results = all_knowledge_bases(request.user)
    else:
        results = find(request.user, query)
        only = results.only_url()
        if only:
            return redirect(only)
    context = {"query": query, "results": results, "listing": listing}
    return render(request, "deployments/search.html", context)
