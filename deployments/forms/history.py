"""The deployment history's filters."""

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .. import access
from ..choices import RunStatus
from ..models import Deployment, Server, Stack


class DeploymentFilterForm(forms.Form):
    """The history's filters. Choices are limited to what the user may see."""

    server = forms.ModelChoiceField(
        label=_("Server"), queryset=Server.objects.none(), required=False
    )
    stack = forms.ModelChoiceField(label=_("Stack"), queryset=Stack.objects.none(), required=False)
    user = forms.ModelChoiceField(
        label=_("User"), queryset=get_user_model().objects.none(), required=False
    )
    outcome = forms.ChoiceField(
        label=_("Outcome"), choices=[("", _("Any outcome")), *RunStatus.choices], required=False
    )

    def __init__(self, *args, viewer, **kwargs):
        super().__init__(*args, **kwargs)
        team_ids = access.team_ids(viewer)
        self.fields["server"].queryset = access.visible(Server.objects.all(), viewer)
        self.fields["server"].empty_label = _("Any server")
        self.fields["stack"].queryset = access.visible(
            Stack.objects.select_related("server"), viewer
        )
        self.fields["stack"].empty_label = _("Any stack")
        self.fields["user"].queryset = (
            get_user_model()
            .objects.filter(
                Q(memberships__team__in=team_ids) | Q(pk__in=_deployment_user_ids(team_ids))
            )
            .distinct()
            .order_by("username")
        )
        self.fields["user"].empty_label = _("Anyone")

    def filter(self, queryset):
        data = self.cleaned_data
        if data.get("server"):
            queryset = queryset.filter(stack__server=data["server"])
        if data.get("stack"):
            queryset = queryset.filter(stack=data["stack"])
        if data.get("user"):
            queryset = queryset.filter(user=data["user"])
        if data.get("outcome"):
            queryset = queryset.filter(run__status=data["outcome"])
        return queryset


def _deployment_user_ids(team_ids):
    # People who deployed and have since left the team still appear in its history.
    return Deployment.objects.filter(team__in=team_ids, user__isnull=False).values("user")
