import os

from axes.attempts import get_cool_off_threshold
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.backends.signals import connection_created
from django.db.models import Sum
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
        audit.LOGIN_FAILED, request=request, details={"username": credentials.get("username", "")}
    )


@receiver(user_locked_out)
def audit_lockout(sender, request, username, ip_address, **kwargs):
    # django-axes sends this for every failure while locked: the trail keeps the failure that
    # locked the account or the address, whose count has just reached the limit.
    limit = settings.AXES_FAILURE_LIMIT
    locked = []
    if username and failures_counted(request, username=username) == limit:
        locked.append("account")
    if ip_address and failures_counted(request, ip_address=ip_address) == limit:
        locked.append("address")
    if locked:
        audit.record(
            audit.LOGIN_LOCKED_OUT,
            request=request,
            details={
                "username": username or "",
                "locked": locked,
                "minutes": round(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
            },
        )


def failures_counted(request, **lookup) -> int:
    """The failures django-axes counts now against one account or one address."""
    attempts = AccessAttempt.objects.filter(
        attempt_time__gte=get_cool_off_threshold(request), **lookup
    )
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


@receiver(connection_created)
def keep_sqlite_files_private(sender, connection, **kwargs):
    # SQLite creates the database under the process's umask, and its -wal and -shm files with
    # the database's mode. var/ is closed to others already (settings.private_dir); the files
    # are too, so that a copy or a backup of them keeps them closed.
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    for path in (name, f"{name}-wal", f"{name}-shm"):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue  # an in-memory database, or no WAL yet
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.chmod(path, info.st_mode & 0o700)
