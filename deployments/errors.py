"""Failures whose message is a sentence for the user.

Domain code (servers, stacks, llm) raises these; a pipeline step that lets one through
fails with its message shown as is, so no layer has to translate another's errors.
"""


class PanelError(Exception):
    """Something went wrong that the user can act on; the message says what."""


class WaitTimedOut(PanelError):
    """A wait reached its deadline; the message says what was awaited and what to do."""
