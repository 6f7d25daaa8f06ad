"""One API v0.6.7 stand-in (songquanpeng/one-api), for tests only.

Configured by the environment variables the real image reads: SQL_DSN (accepted and not used,
but a malformed one stops the start as the real MySQL driver would), SESSION_SECRET,
INITIAL_ROOT_TOKEN, MEMORY_CACHE_ENABLED, SYNC_FREQUENCY, GLOBAL_API_RATE_LIMIT, RELAY_TIMEOUT,
PORT. State lives in memory. The relay forwards for real, with urllib, to the channel's base_url.

    python3 -m testkit.standins.oneapi --host 0.0.0.0 --port 3000
"""

from testkit.standins.oneapi.app import OneAPI, main

__all__ = ["OneAPI", "main"]
