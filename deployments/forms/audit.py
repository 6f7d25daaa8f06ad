"""The audit log's filter."""

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from ..audit import action_label
from ..models import AuditEvent


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(label=_("Action"), required=False)

    def __init__(self, *args, events: QuerySet[AuditEvent], **kwargs):
        super().__init__(*args, **kwargs)
        actions = events.order_by("action").values_list("action", flat=True).distinct()
        self.fields["action"].choices = [
            ("", _("Any action")),
            *((a, action_label(a)) for a in actions),
        ]
