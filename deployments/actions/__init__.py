"""do_* functions: the only code that changes state. Each records an audit event.

Views, tasks and consumers call these; they never save models themselves.
"""


class ActionError(Exception):
    """An action cannot be done; the message says why, in words a user understands."""
