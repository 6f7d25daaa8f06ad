from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from . import audit


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    audit.record("login", actor=user, request=request)


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        audit.record("logout", actor=user, request=request)


@receiver(user_login_failed)
def audit_login_failure(sender, credentials, request=None, **kwargs):
    # The username only: never the password that was tried.
    audit.record(
        "login_failed", request=request, details={"username": credentials.get("username", "")}
    )
