"""The panel's settings for its tests, and for the servers and workers the tests start.

The production hasher spends about a second of CPU per password by design, and most tests make
users with passwords: the tests' throwaway accounts are hashed with MD5 instead. PBKDF2 stays
listed so a hash made by the panel's default (a management command run as the panel runs it)
still checks.
"""

from django.conf import global_settings

from controlpanel.settings import *  # noqa: F403

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    *global_settings.PASSWORD_HASHERS,
]
