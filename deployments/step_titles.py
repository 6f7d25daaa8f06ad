"""Pipeline steps' names as a person reads them, in the language of the page.

A step's name is stored with its run as it is in the pipeline's definition (English); it is
translated when shown, so a run reads in the language of whoever opens it.
"""

from django.utils.translation import pgettext_lazy

STEP_TITLES = {
    # Prepare a server
    "connect": pgettext_lazy("pipeline step", "connect"),
    "install docker engine": pgettext_lazy("pipeline step", "install docker engine"),
    "install compose": pgettext_lazy("pipeline step", "install compose"),
    "install nvidia container toolkit": pgettext_lazy(
        "pipeline step", "install nvidia container toolkit"
    ),
    "restart docker": pgettext_lazy("pipeline step", "restart docker"),
    "check again": pgettext_lazy("pipeline step", "check again"),
    # Deploy, restart and tear down a stack
    "check server": pgettext_lazy("pipeline step", "check server"),
    "render files": pgettext_lazy("pipeline step", "render files"),
    "upload files": pgettext_lazy("pipeline step", "upload files"),
    "pull images": pgettext_lazy("pipeline step", "pull images"),
    "start services": pgettext_lazy("pipeline step", "start services"),
    "wait until healthy": pgettext_lazy("pipeline step", "wait until healthy"),
    "back up before upgrade": pgettext_lazy("pipeline step", "back up before upgrade"),
    "set up One API": pgettext_lazy("pipeline step", "set up One API"),
    "record": pgettext_lazy("pipeline step", "record"),
    "restart": pgettext_lazy("pipeline step", "restart"),
    "stop services": pgettext_lazy("pipeline step", "stop services"),
    "remove data": pgettext_lazy("pipeline step", "remove data"),
    # Back up a stack
    "prepare folder": pgettext_lazy("pipeline step", "prepare folder"),
    "dump PostgreSQL": pgettext_lazy("pipeline step", "dump PostgreSQL"),
    "dump MySQL": pgettext_lazy("pipeline step", "dump MySQL"),
    "dump MongoDB": pgettext_lazy("pipeline step", "dump MongoDB"),
    "archive files": pgettext_lazy("pipeline step", "archive files"),
    "record checksums": pgettext_lazy("pipeline step", "record checksums"),
    "remove old backups": pgettext_lazy("pipeline step", "remove old backups"),
    "check backup": pgettext_lazy("pipeline step", "check backup"),
    "restore PostgreSQL": pgettext_lazy("pipeline step", "restore PostgreSQL"),
    "restore MySQL": pgettext_lazy("pipeline step", "restore MySQL"),
    "restore MongoDB": pgettext_lazy("pipeline step", "restore MongoDB"),
    # Launch and stop a model; update remote providers
    "check GPU memory": pgettext_lazy("pipeline step", "check GPU memory"),
    "register weights": pgettext_lazy("pipeline step", "register weights"),
    "launch": pgettext_lazy("pipeline step", "launch"),
    "wait until ready": pgettext_lazy("pipeline step", "wait until ready"),
    "smoke test": pgettext_lazy("pipeline step", "smoke test"),
    "mark ready": pgettext_lazy("pipeline step", "mark ready"),
    "update One API": pgettext_lazy("pipeline step", "update One API"),
    "update FastGPT": pgettext_lazy("pipeline step", "update FastGPT"),
    "check FastGPT": pgettext_lazy("pipeline step", "check FastGPT"),
    "stop model": pgettext_lazy("pipeline step", "stop model"),
    "test channels": pgettext_lazy("pipeline step", "test channels"),
    # The idle guard's steps, and starting again
    "notify team": pgettext_lazy("pipeline step", "notify team"),
    "stop models": pgettext_lazy("pipeline step", "stop models"),
    "stop stacks": pgettext_lazy("pipeline step", "stop stacks"),
    "power off": pgettext_lazy("pipeline step", "power off"),
    "start stacks": pgettext_lazy("pipeline step", "start stacks"),
    "relaunch models": pgettext_lazy("pipeline step", "relaunch models"),
    # Import documents, publish a chatbot
    "create knowledge base": pgettext_lazy("pipeline step", "create knowledge base"),
    "send documents to FastGPT": pgettext_lazy("pipeline step", "send documents to FastGPT"),
    "follow training": pgettext_lazy("pipeline step", "follow training"),
    "create chat app": pgettext_lazy("pipeline step", "create chat app"),
    "publish share link": pgettext_lazy("pipeline step", "publish share link"),
}


def step_title(name: str) -> str:
    """The step called `name` in the language of the page; a name not known here, as it is."""
    title = STEP_TITLES.get(name)
    return str(title) if title is not None else name
