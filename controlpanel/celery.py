import os

from celery import Celery
from celery.contrib.django.task import DjangoTask
from django.db import transaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")


class Task(DjangoTask):
    def delay_on_commit(self, *args, **kwargs) -> None:
        """Send once the transaction commits. A broker that does not answer is logged, not
        raised into the request: its work is saved, the reaper sends a queued run again and
        servers are checked again on schedule."""

        def send() -> None:
            self.delay(*args, **kwargs)

        send.__qualname__ = f"send {self.name}"  # names the task in the log line
        transaction.on_commit(send, robust=True)


app = Celery("controlpanel", task_cls=Task)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
