from django import forms
from django.utils.translation import gettext_lazy as _

from ..models import IdleGuard


class IdleGuardForm(forms.ModelForm):
    class Meta:
        model = IdleGuard
        fields = [
            "enabled",
            "idle_minutes",
            "notify",
            "stop_models",
            "stop_stacks",
            "power_off",
            "grace_minutes",
        ]
        labels = {
            "enabled": _("Idle guard on"),
            "idle_minutes": _("Idle time (minutes)"),
            "notify": _("Tell the team"),
            "stop_models": _("Stop the models"),
            "stop_stacks": _("Stop the stacks"),
            "power_off": _("Power the server off"),
            "grace_minutes": _("Grace period before the power-off (minutes)"),
        }
