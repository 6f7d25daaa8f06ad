"""do_* functions: the only code that changes state. Each records an audit event.

Views, tasks and consumers call these; they never save models themselves.
"""

from django.utils.translation import gettext as _

from ..llm.launch import LAUNCHABLE


class ActionError(Exception):
    """An action cannot be done; the message says why, in words a user understands."""


def require_deployed(stack) -> None:
    """Refuse work that needs a stack's services while it is not deployed (or torn down), or
    while a deploy, restart or teardown may recreate them."""
    stack.refresh_from_db(fields=["status"])
    if stack.status not in LAUNCHABLE:
        raise ActionError(
            _("Stack “%(stack)s” is %(status)s: deploy it first.")
            % {"stack": stack.name, "status": stack.get_status_display().lower()}
        )
    if stack.active_deployment() is not None:
        raise ActionError(
            _("An action on stack “%(stack)s” is under way: try again once it has finished.")
            % {"stack": stack.name}
        )
