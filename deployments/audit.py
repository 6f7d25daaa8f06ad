"""The audit trail: one row per thing a person did."""

from django.conf import settings
from django.db.models import Model

from .models import AuditEvent, Team

# Attempts to log in, recorded with the username that was tried (actor and team are empty).
LOGIN_FAILED = "login_failed"
LOGIN_LOCKED_OUT = "login_locked_out"
LOGIN_ATTEMPT_ACTIONS = (LOGIN_FAILED, LOGIN_LOCKED_OUT)


def client_ip(request) -> str | None:
    """The caller's address. X-Forwarded-For is used only behind configured proxies."""
    if request is None:
        return None
    if settings.TRUSTED_PROXY_COUNT:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [p for p in forwarded if p]
        if len(forwarded) >= settings.TRUSTED_PROXY_COUNT:
            return forwarded[-settings.TRUSTED_PROXY_COUNT]
    return request.META.get("REMOTE_ADDR") or None


def record(
    action: str,
    *,
    actor=None,
    request=None,
    target: Model | None = None,
    team: Team | None = None,
    details: dict | None = None,
) -> AuditEvent:
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    if team is None and target is not None:
        team = getattr(target, "team", None)
    return AuditEvent.objects.create(
        team=team,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_name=actor.get_username() if actor is not None and actor.is_authenticated else "",
        action=action,
        target_type=target._meta.verbose_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        ip_address=client_ip(request),
        details=details or {},
    )
