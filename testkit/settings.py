"""The panel's settings for its tests, and for the servers and workers the tests start.

The production hasher spends about a second of CPU per password by design, and most tests make
users with passwords: the tests' throwaway accounts are hashed with MD5 instead. PBKDF2 stays
listed so a hash made by the panel's default (a management command run as the panel runs it)
still checks.
"""

import os
import secrets

from django.conf import global_settings

from controlpanel.settings import *  # noqa: F403

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    *global_settings.PASSWORD_HASHERS,
]

# The cache's keys of this test session: a run never meets what an earlier one left in Redis
# (rate limits of users with the same ids). The servers and workers a test starts inherit it.
CACHES["default"]["KEY_PREFIX"] = os.environ.setdefault(  # noqa: F405
    "TEST_CACHE_PREFIX", f"controlpanel-test-{secrets.token_hex(4)}"
)
