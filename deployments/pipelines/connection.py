"""A worker holds its database connection for as long as a run lasts. One the server dropped (a
restart, a failover) stays broken in Django until it is closed, so every later query of that
thread would fail: these close it, and the next query opens a new one."""

from django.db import connection


def reconnect_if_dropped() -> None:
    """Close this thread's connection where it no longer answers."""
    if connection.connection is not None and not connection.is_usable():
        connection.close()
