"""Accounts: who may sign up, how an OpenID Connect login finds its account, and whether a
user logs in with a second factor."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import ResetPasswordForm
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext


def has_two_factor(user) -> bool:
    """True when `user` must give an authenticator app's code at login (recovery codes alone
    are no second factor: they exist only beside one)."""
    return is_mfa_enabled(user, types=[Authenticator.Type.TOTP])


def email_configured() -> bool:
    """Whether the panel can send mail (a password reset link): an SMTP server is set, or a
    backend other than SMTP (the tests' locmem)."""
    smtp = settings.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend"
    return bool(settings.EMAIL_HOST) or not smtp


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        # Accounts come from an invitation by a team owner, or from an administrator.
        return False


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin) -> bool:
        return settings.OIDC_ALLOW_SIGNUP

    def authenticate_by_email(self, sociallogin):
        """The account whose verified address the provider vouches for, never one that only
        typed it in (nor one with the same name)."""
        for address in sociallogin.email_addresses:
            if not address.verified:
                continue
            local = EmailAddress.objects.filter(email__iexact=address.email, verified=True)
            match = local.select_related("user").first()
            if match is not None and match.user.is_active:
                return match.user, match.email
        return None


class MailResetPasswordForm(ResetPasswordForm):
    """Sends the reset link only where mail can go out: otherwise the page says so, and sends
    nothing that would fail or vanish."""

    @property
    def mail_configured(self) -> bool:
        return email_configured()

    def clean(self):
        if not self.mail_configured:
            raise ValidationError(
                gettext("No mail server is configured: ask an administrator for a new password."),
                code="mail_not_configured",
            )
        return super().clean()
