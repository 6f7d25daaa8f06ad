"""Login throttling with django-axes: the backend that refuses a locked account or address,
and the login forms that say how long to wait."""

from allauth.account import forms as allauth_forms
from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import ngettext


class ThrottleBackend(AxesStandaloneBackend):
    """Raises PermissionDenied for a locked account or address, so no later backend checks the
    password; django-axes counts the failure through the user_login_failed signal.

    The login pages always pass their request. A call without one (a management command, the
    test client's login()) comes from no address axes could count: it goes on to the next
    backend instead of raising."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_message() -> str:
    # Every failure while locked starts the cool-off again, so the whole of it is left now.
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    return ngettext(
        "Too many failed logins for this account or from this address. "
        "Wait %(minutes)d minute, then try again.",
        "Too many failed logins for this account or from this address. "
        "Wait %(minutes)d minutes, then try again.",
        minutes,
    ) % {"minutes": minutes}


class LockoutMessageMixin:
    """Replaces "wrong username or password" by the wait when this login was refused as locked,
    or when its failure was the one that locked (django-axes flags the request either way)."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            if getattr(self.request, "axes_locked_out", False):
                raise ValidationError(lockout_message(), code="locked_out") from None
            raise


class AccountLoginForm(LockoutMessageMixin, allauth_forms.LoginForm):
    """The panel's login page (allauth's form: the name is its "login" field)."""


def axes_username(request, credentials: dict | None) -> str | None:
    """The name a login tried: from the credentials a backend was given, else from the form."""
    if credentials:
        return credentials.get("username")
    data = getattr(request, "POST", {})
    return data.get("login") or data.get("username")
