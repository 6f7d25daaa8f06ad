"""do_* functions: the only code that changes state. Each records an audit event.

Views, tasks and consumers call these; they never save models themselves.
"""

from django.utils.translation import gettext as _

from ..llm.launch import LAUNCHABLE


class ActionError(Exception):
    """An action cannot be done; the message says why, in words a user understands."""


def require_deployed(stack) -> None:
    """Refuse work that needs a stack's services while it is not deployed (or torn down)."""
    stack.refresh_from_db(fields=["status"])
    if stack.status not in LAUNCHABLE:
        raise ActionError(
            _("Stack “%(stack)s” is %(status)s: deploy it first.")
            % {"stack": stack.name, "status": stack.get_status_display().lower()}
        )
