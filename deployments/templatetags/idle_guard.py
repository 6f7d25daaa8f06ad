from django import template

from ..idle.status import idle_status, stopped_stacks
from ..models import Stack

register = template.Library()


@register.simple_tag(takes_context=True)
def idle_guard_of(context, server):
    """The server's idle guard as the page shows it to the user looking at it."""
    request = context.get("request")
    return idle_status(server, getattr(request, "user", None))


@register.inclusion_tag("deployments/idle_badge.html")
def idle_badge(server):
    """The server's idle state in a few words, for a row of a table of servers."""
    return {"idle": idle_status(server)}


@register.simple_tag(takes_context=True)
def idle_stopped_stacks(context, stacks):
    """Which of `stacks` (or of the one stack) the idle guard stopped, and which the user may
    start again."""
    request = context.get("request")
    stacks = [stacks] if isinstance(stacks, Stack) else stacks
    return stopped_stacks(stacks, getattr(request, "user", None))
