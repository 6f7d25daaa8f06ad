"""A thread that keeps a claimed run's heartbeat fresh while one of its steps runs."""

import logging
import threading

from django.db import DatabaseError, connections
from django.utils import timezone

from ..choices import RunStatus
from ..models import PipelineRun
from .connection import reconnect_if_dropped

logger = logging.getLogger(__name__)


class Heartbeat:
    """Use as `with Heartbeat(run_id, worker, interval):` around a step.

    A step may block for minutes (an image pull, a model download), so the beat runs in
    its own thread. It beats only while this worker still holds the run; once the run
    was taken away, `lost` is set and the thread stops.
    """

    def __init__(self, run_id: int, worker: str, interval: float) -> None:
        self.run_id = run_id
        self.worker = worker
        self.interval = interval
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-run-{run_id}", daemon=True
        )

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    held = PipelineRun.objects.filter(
                        pk=self.run_id, status=RunStatus.RUNNING, claimed_by=self.worker
                    ).update(heartbeat_at=timezone.now())
                except DatabaseError:
                    # A missed beat is not fatal; the reaper waits several intervals. A
                    # restarted database dropped the connection: the next beat opens another.
                    logger.warning("Heartbeat of run %s failed", self.run_id, exc_info=True)
                    reconnect_if_dropped()
                    continue
                if not held:
                    self.lost = True
                    return
        finally:
            # This thread's own connections; the step's thread keeps its connection.
            connections.close_all()
