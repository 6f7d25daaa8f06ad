"""Scheduled checks fan out to real Celery workers, which check several servers at once."""

import pytest

from controlpanel.celery import app as celery_app
from deployments.choices import ServerStatus
from deployments.models import Server
from deployments.tasks import check_all_servers
from testkit.factories import make_server
from testkit.target import KeyPair, free_port
from testkit.workers import Worker, stop_all, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_checking_all_servers_runs_one_check_per_server_on_the_workers(ssh_target, team, tmp_path):
    celery_app.control.purge()
    key = ssh_target.key.private_openssh
    reachable = [
        make_server(team, host=ssh_target.host, ssh_port=ssh_target.port, ssh_private_key=key)
        for _ in range(3)
    ]
    closed = make_server(
        team,
        host="127.0.0.1",
        ssh_port=free_port(),
        ssh_private_key=KeyPair.generate().private_openssh,
    )
    worker = Worker(tmp_path / "worker.log", concurrency=2).start()
    try:
        assert check_all_servers() == 4

        def all_checked():
            return not Server.objects.filter(last_checked_at__isnull=True).exists()

        wait_until(all_checked, 60, "every server to be checked")
    finally:
        stop_all([worker])

    for server in reachable:
        server.refresh_from_db()
        assert server.status == ServerStatus.REACHABLE, server.last_error
        assert server.facts["os"]["id"] == "debian"
    # All three pinned the same host key on first contact.
    assert len({s.host_key for s in Server.objects.filter(pk__in=[s.pk for s in reachable])}) == 1
    closed.refresh_from_db()
    assert closed.status == ServerStatus.UNREACHABLE
    assert "127.0.0.1" in closed.last_error
    # One task per server: a pool of workers shares them out instead of one long loop.
    assert worker.log.count("Task deployments.tasks.check_server_task") >= 4
