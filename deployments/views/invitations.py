"""The page an invitation link opens: public, as the person invited may have no account yet.

A logged-in user accepts or declines; a visitor logs in (and comes back here) or creates an
account, which is possible only here, through a link that is still valid.
"""

from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from ..actions.invitations import (
    InvitationUnusable,
    do_accept_invitation,
    do_accept_with_new_account,
    find_usable,
    unusable_message,
)
from ..forms.teams import SignupForm
from ..models import Invitation
from .common import HtmxHttpRequest, form_data

# The backend that logs in an account just created with a password.
_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _unusable(request) -> HttpResponse:
    response = render(
        request,
        "deployments/invitation_invalid.html",
        {"message": unusable_message()},
        status=404,
    )
    # Django logs every 404 with its path, and this path holds the token.
    response._has_been_logged = True
    return response


def _page(request, invitation: Invitation, signup_form: SignupForm | None = None):
    context = {"invitation": invitation}
    if not request.user.is_authenticated:
        context["signup_form"] = signup_form or SignupForm(initial={"email": invitation.email})
    return render(request, "deployments/invitation_accept.html", context)


def _joined(request, membership) -> HttpResponse:
    messages.success(
        request,
        _("You joined team %(team)s as %(role)s.")
        % {"team": membership.team.name, "role": membership.get_role_display().lower()},
    )
    return redirect("team_detail", pk=membership.team_id)


@never_cache
@csrf_protect
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HtmxHttpRequest, token: str) -> HttpResponse:
    invitation = find_usable(token)
    if invitation is None:
        return _unusable(request)
    if request.method == "GET":
        return _page(request, invitation)
    if request.user.is_authenticated:
        if "accept" not in request.POST:
            return _page(request, invitation)
        try:
            membership = do_accept_invitation(token, user=request.user, request=request)
        except InvitationUnusable:
            return _unusable(request)
        return _joined(request, membership)
    form = SignupForm(form_data(request))
    if not form.is_valid():
        return _page(request, invitation, signup_form=form)
    try:
        membership = do_accept_with_new_account(token, signup_form=form, request=request)
    except InvitationUnusable:
        return _unusable(request)
    login(request, membership.user, backend=_BACKEND)
    return _joined(request, membership)
