"""The page an invitation link opens: public, as the person invited may have no account yet.

The link carries its token after `#` (/invitations/accept/#<token>), the part of an address a
browser never sends, so no access log, proxy or Referer header sees it. The page's script
(static/js/invitation.js) reads it and POSTs it; without JavaScript the person pastes the link.
The token then waits in the session for the person's answer, also across a login.

A logged-in user accepts or declines; a visitor logs in (and comes back here) or creates an
account, which is possible only here, with a token that is still valid.
"""

from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
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
from .common import HtmxHttpRequest

# The backend that logs in an account just created with a password.
_BACKEND = "django.contrib.auth.backends.ModelBackend"
# Where the token of the invitation being answered waits between requests.
SESSION_KEY = "invitation_token"


def invitation_link(request, token: str) -> str:
    """The link to give the person invited: the token in the fragment, never in the path."""
    return f"{request.build_absolute_uri(reverse('invitation_accept'))}#{token}"


def _posted_token(request) -> str:
    """The token the page's script put in the form, or the one in a pasted link (or a token
    pasted alone)."""
    token = request.POST.get("token", "").strip()
    if not token:
        token = request.POST.get("link", "").strip().rpartition("#")[2].strip()
    return token


def _unusable(request) -> HttpResponse:
    request.session.pop(SESSION_KEY, None)
    return render(
        request,
        "deployments/invitation_invalid.html",
        {"message": unusable_message()},
        status=404,
    )


def _opening(request, *, missing: bool = False) -> HttpResponse:
    """The page before the token is known: the script sends it, or the person pastes the link."""
    return render(request, "deployments/invitation_accept.html", {"missing": missing})


def _page(request, invitation: Invitation, token: str, signup_form: SignupForm | None = None):
    context = {"invitation": invitation, "token": token}
    if not request.user.is_authenticated:
        context["signup_form"] = signup_form or SignupForm(initial={"email": invitation.email})
    return render(request, "deployments/invitation_accept.html", context)


def _joined(request, membership) -> HttpResponse:
    request.session.pop(SESSION_KEY, None)
    messages.success(
        request,
        _("You joined team %(team)s as %(role)s.")
        % {"team": membership.team.name, "role": membership.get_role_display().lower()},
    )
    return redirect("team_detail", pk=membership.team_id)


@never_cache
@csrf_protect
@sensitive_post_parameters("token", "link", "password1", "password2")
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        token = request.session.get(SESSION_KEY, "")
        invitation = find_usable(token)
        if invitation is None:
            request.session.pop(SESSION_KEY, None)
            return _opening(request)
        return _page(request, invitation, token)

    token = _posted_token(request) or request.session.get(SESSION_KEY, "")
    if not token:
        return _opening(request, missing=True)
    invitation = find_usable(token)
    if invitation is None:
        return _unusable(request)
    request.session[SESSION_KEY] = token
    if "open" in request.POST:
        # The address of the answer holds no token, so reloading it sends nothing again.
        return redirect("invitation_accept")
    if request.user.is_authenticated:
        if "accept" not in request.POST:
            return _page(request, invitation, token)
        try:
            membership = do_accept_invitation(token, user=request.user, request=request)
        except InvitationUnusable:
            return _unusable(request)
        return _joined(request, membership)
    form = SignupForm(request.POST)
    if not form.is_valid():
        return _page(request, invitation, token, signup_form=form)
    try:
        membership = do_accept_with_new_account(token, signup_form=form, request=request)
    except InvitationUnusable:
        return _unusable(request)
    login(request, membership.user, backend=_BACKEND)
    return _joined(request, membership)
