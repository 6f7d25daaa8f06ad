"""Launching a model config on a stack of its team."""

from django import forms
from django.utils.translation import gettext_lazy as _

from ..llm.launch import LAUNCHABLE
from ..models import Stack, Team


class LaunchForm(forms.Form):
    """The stack of the config's team to launch a model on."""

    stack = forms.ModelChoiceField(
        label=_("Launch on stack"),
        queryset=Stack.objects.none(),
        empty_label=None,
        error_messages={
            "required": _("Choose a stack to launch the model on."),
            "invalid_choice": _("Choose one of the stacks of the model's team."),
        },
    )

    def __init__(self, *args, team: Team, **kwargs):
        super().__init__(*args, **kwargs)
        stacks = Stack.objects.filter(team=team).select_related("server").order_by("name")
        field = self.fields["stack"]
        field.queryset = stacks
        field.label_from_instance = lambda stack: (
            _("%(stack)s on %(server)s (%(status)s)")
            % {
                "stack": stack.name,
                "server": stack.server.name,
                "status": stack.get_status_display().lower(),
            }
        )
        # A stack whose Xinference runs is the likely choice.
        field.initial = next((stack.pk for stack in stacks if stack.status in LAUNCHABLE), None)
