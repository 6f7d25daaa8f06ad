"""What a step's error says when the step raised something other than a PanelError.

Such an exception was not meant for a person: its class name ("SSHError", "KeyError") means
nothing to one. The run shows a plain lead that says which kind of thing went wrong, then the
exception's own detail; the class name goes to the server's log only (runner.py logs it).
"""

from django.db import InterfaceError, OperationalError
from django.utils.translation import gettext as _

from ..clients.fastgpt.errors import FastGPTError
from ..clients.oneapi import OneAPIError
from ..clients.ssh.errors import SSHError
from ..clients.xinference import XinferenceError

# SSH errors by kind: failing to get in is not the same as a command failing once in.
_SSH_CONNECT_KINDS = frozenset(
    {
        "unreachable",
        "timeout",
        "local_address",
        "auth",
        "host_key_changed",
        "host_key_unknown",
        "protocol",
    }
)


def _lead(error: BaseException) -> str:
    """A sentence start naming what went wrong, for the exception's type."""
    if isinstance(error, SSHError):
        if error.during_command and error.kind == "timeout":
            return _("A command on the server took too long")
        if error.during_command:
            return _("The server stopped answering")
        if error.kind in _SSH_CONNECT_KINDS:
            return _("Could not connect over SSH")
        if error.kind in ("permission", "sudo_password"):
            return _("The server did not allow a command")
        return _("A command on the server failed")
    if isinstance(error, XinferenceError):
        return _("Xinference could not do what was asked")
    if isinstance(error, OneAPIError):
        return _("One API could not do what was asked")
    if isinstance(error, FastGPTError):
        return _("FastGPT could not do what was asked")
    if isinstance(error, (OperationalError, InterfaceError)):
        # The panel's own database restarting or gone: nothing the server did.
        return _("The panel's database did not answer")
    if isinstance(error, TimeoutError):
        return _("Something took too long to answer")
    if isinstance(error, ConnectionError):
        return _("A connection failed")
    if isinstance(error, PermissionError):
        return _("Permission denied")
    if isinstance(error, FileNotFoundError):
        return _("A file was not found")
    if isinstance(error, OSError):
        return _("A system call failed")
    if isinstance(error, (KeyError, ValueError, TypeError, LookupError)):
        return _("Unexpected data")
    if isinstance(error, MemoryError):
        return _("The worker ran out of memory")
    return _("Unexpected error")


def _detail(error: BaseException) -> str:
    if isinstance(error, KeyError) and len(error.args) == 1:
        # str(KeyError("x")) is "'x'": say which name was missing.
        return _("nothing called %(key)s") % {"key": repr(error.args[0])}
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    return str(error).strip()


def describe(error: BaseException) -> str:
    """The error as a step shows it: "Could not connect over SSH: <the detail>".

    Without any detail, the lead alone, pointing at the server log, where the whole
    exception is.
    """
    lead = _lead(error)
    detail = _detail(error)
    if not detail:
        return _("%(lead)s; the panel's log has the details.") % {"lead": lead}
    return f"{lead}: {detail}"
