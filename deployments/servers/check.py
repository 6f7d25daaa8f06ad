"""Checking a server: reach it over SSH, gather its facts, record what was found."""

import logging

from django.conf import settings
from django.utils import timezone

from ..choices import ServerStatus
from ..clients.ssh import HostKeyChanged, SSHError
from ..models import Server
from ..notifications import notify
from .facts import check_docker_gpu, gather_facts
from .sessions import open_session

logger = logging.getLogger(__name__)


def check_server(server: Server) -> Server:
    """Connect, gather facts and save them; an unreachable server gets the reason instead.

    Never raises for a server that cannot be reached: that is an outcome, shown on its page.
    """
    now = timezone.now()
    try:
        with open_session(server) as client:
            # sudo for docker where the user is not root (the client skips it for root).
            facts = gather_facts(client, sudo=True)
            facts["docker_gpu"] = check_docker_gpu(
                client, settings.GPU_CHECK_IMAGE, facts, sudo=True
            )
    except SSHError as error:
        logger.info("Server %s unreachable: %s", server.pk, error)
        was, said = server.status, server.last_error
        server.status = ServerStatus.UNREACHABLE
        server.last_error = str(error)
        server.last_checked_at = now
        server.save(update_fields=["status", "last_error", "last_checked_at", "updated_at"])
        # Once when it happens, not at every check while it lasts.
        if isinstance(error, HostKeyChanged):
            if server.last_error != said:
                notify.host_key_changed(server)
        elif was != ServerStatus.UNREACHABLE:
            notify.server_unreachable(server)
        return server
    server.status = ServerStatus.REACHABLE
    server.last_error = ""
    server.last_checked_at = now
    server.facts = facts
    server.facts_checked_at = now
    server.save(
        update_fields=[
            "status",
            "last_error",
            "last_checked_at",
            "facts",
            "facts_checked_at",
            "updated_at",
        ]
    )
    return server
