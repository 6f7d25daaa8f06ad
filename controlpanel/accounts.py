"""Accounts: who may sign up, and whether a user logs in with a second factor."""

from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled


def has_two_factor(user) -> bool:
    """True when `user` must give an authenticator app's code at login (recovery codes alone
    are no second factor: they exist only beside one)."""
    return is_mfa_enabled(user, types=[Authenticator.Type.TOTP])
