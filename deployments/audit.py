"""The audit trail: one row per thing a person did."""

from django.conf import settings
from django.db.models import Model
from django.utils.translation import gettext_lazy as _

from .models import AuditEvent, Team

# Attempts to log in, recorded with the username that was tried (actor and team are empty).
LOGIN_FAILED = "login_failed"
LOGIN_LOCKED_OUT = "login_locked_out"
LOGIN_ATTEMPT_ACTIONS = (LOGIN_FAILED, LOGIN_LOCKED_OUT)

# What each recorded action is called on the Audit page; the stored code stays as it is.
ACTION_LABELS = {
    "login": _("Logged in"),
    "logout": _("Logged out"),
    LOGIN_FAILED: _("Login failed"),
    LOGIN_LOCKED_OUT: _("Login locked out"),
    "user.bootstrap": _("First administrator created"),
    "user.signup": _("Signed up"),
    "team.create": _("Team created"),
    "team.member_remove": _("Member removed"),
    "team.member_role": _("Member's role changed"),
    "team.owner_two_factor": _("Two-factor authentication required of owners"),
    "team.budget": _("Monthly budget changed"),
    "invitation.create": _("Invitation sent"),
    "invitation.accept": _("Invitation accepted"),
    "invitation.revoke": _("Invitation revoked"),
    "server.create": _("Server added"),
    "server.update": _("Server changed"),
    "server.check": _("Server checked"),
    "server.host_key_accept": _("New host key accepted"),
    "server.idle_settings": _("Idle guard settings changed"),
    "server.idle_keep_running": _("Idle server kept running"),
    "server.idle_start_again": _("Started again after idle"),
    "stack.create": _("Stack created"),
    "stack.refresh_services": _("Services refreshed"),
    "stack.login_revealed": _("Service login shown"),
    "stack.login_reveal_failed": _("Service login refused"),
    "stack.backup": _("Backup started"),
    "stack.backup_download": _("Backup downloaded"),
    "stack.backup_settings": _("Backup settings changed"),
    "stack.restore": _("Backup restore started"),
    "pipeline.start": _("Run started"),
    "pipeline.retry": _("Run retried"),
    "pipeline.cancel": _("Run cancelled"),
    "model.create": _("Model added"),
    "model.update": _("Model changed"),
    "model.delete": _("Model deleted"),
    "model.launch": _("Model launched"),
    "model.cancel": _("Model launch cancelled"),
    "model.terminate": _("Model terminated"),
    "provider.add": _("Remote provider added"),
    "provider.edit": _("Remote provider changed"),
    "provider.delete": _("Remote provider deleted"),
    "provider.test": _("Remote provider tested"),
    "knowledge_base.create": _("Knowledge base created"),
    "knowledge_base.delete": _("Knowledge base deleted"),
    "knowledge_base.import": _("Documents imported"),
    "document.delete": _("Document deleted"),
    "app.create": _("Chat app created"),
    "app.update": _("Chat app changed"),
    "app.delete": _("Chat app deleted"),
    "app.chat_test": _("Chat app tested"),
    "app.share_link.create": _("Share link published"),
    "app.share_link.revoke": _("Share link revoked"),
    "notification_channel.add": _("Notification channel added"),
    "notification_channel.edit": _("Notification channel changed"),
    "notification_channel.delete": _("Notification channel deleted"),
    "notification_channel.test": _("Notification channel tested"),
}


def action_label(action: str) -> str:
    """An audit action as the Audit page names it; one without a label, as stored."""
    label = ACTION_LABELS.get(action)
    return str(label) if label is not None else action


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
