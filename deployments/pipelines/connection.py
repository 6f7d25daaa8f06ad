"""A worker holds its database connection for as long as a run lasts. One the server dropped (a
restart, a failover) stays broken in Django until it is closed, so every later query of that
thread would fail: these close it, and the next query opens a new one."""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Between two tries of a write while the database does not answer.
RETRY_PAUSE_SECONDS = 1.0


def reconnect_if_dropped() -> None:
    """Close this thread's connection where it no longer answers."""
    if connection.connection is not None and not connection.is_usable():
        connection.close()


def written(write: Callable[[], T], what: str) -> T:
    """`write` (one transaction), tried again on a new connection while the database does not
    answer, for up to PIPELINE_OUTCOME_RETRY_SECONDS: what a step did is recorded once the
    database is back, instead of the run waiting for the reaper to call its worker dead."""
    deadline = time.monotonic() + settings.PIPELINE_OUTCOME_RETRY_SECONDS
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError) as error:
            if time.monotonic() >= deadline:
                raise
            logger.warning("Could not write %s (%s); trying again", what, error)
            connection.close()
            time.sleep(RETRY_PAUSE_SECONDS)
