from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import HttpResponse

from .. import access, audit
from ..forms.audit import AuditFilterForm
from ..models import AuditEvent
from .common import HtmxHttpRequest, paginate, render_page_or_partial


def visible_events(user) -> QuerySet[AuditEvent]:
    """Events of the user's teams; the user's own events that have no team (logins); failed
    logins and lockouts that named the user's account, or for a superuser, who manages the
    accounts, those of every name tried."""
    login_attempts = Q(team__isnull=True, action__in=audit.LOGIN_ATTEMPT_ACTIONS)
    if not user.is_superuser:
        login_attempts &= Q(details__username=user.get_username())
    return AuditEvent.objects.filter(
        Q(team__in=access.team_ids(user)) | Q(team__isnull=True, actor=user) | login_attempts
    )


@login_required
def audit_list(request: HtmxHttpRequest) -> HttpResponse:
    events = visible_events(request.user).select_related("team")
    form = AuditFilterForm(request.GET or None, events=events)
    if form.is_bound and not form.is_valid():
        events = events.none()
    elif form.is_bound and form.cleaned_data["action"]:
        events = events.filter(action=form.cleaned_data["action"])
    context = {"form": form, "page": paginate(request, events)}
    return render_page_or_partial(request, "deployments/audit_list.html", "table", context)
