"""Login throttling with django-axes: the backend that refuses a locked account or address,
and the login forms (the panel's and the admin's) that say how long to wait."""

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
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


class LoginForm(LockoutMessageMixin, AuthenticationForm):
    pass


class AdminLoginForm(LockoutMessageMixin, AdminAuthenticationForm):
    pass
