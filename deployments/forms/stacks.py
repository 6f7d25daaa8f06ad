"""Stacks: adding one, moving it to another version line, and tearing it down."""

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import access
from ..choices import Role
from ..models import Server, Stack
from ..stacks.data_dirs import data_dir_problems
from ..stacks.ports import (
    DATABASE_SETTING,
    INTERNAL_SETTING,
    PORT_SETTINGS,
    PublishedPort,
    ports_published_twice,
    ports_taken_on_server,
)
from ..stacks.versions import line_choices


def _typed_field(*ports: PublishedPort) -> str:
    """The field to name a port's problem beside: a port the person typed rather than the
    checkbox that publishes the database ports, which came with fixed numbers."""
    typed = [port.setting for port in ports if port.setting != DATABASE_SETTING]
    return typed[-1] if typed else DATABASE_SETTING


class StackForm(forms.ModelForm):
    """A stack: where it goes, which versions, where images come from, which ports."""

    field_order = ["server", "name", "version_line", "registry", "registry_prefix"]

    class Meta:
        model = Stack
        # The settings are listed once, on the model: deploys snapshot the same fields.
        fields = ["server", "name", *Stack.SETTINGS_FIELDS]
        labels = {
            "server": gettext_lazy("Server"),
            "name": gettext_lazy("Name"),
            "registry": gettext_lazy("Registry"),
            "registry_prefix": gettext_lazy("Registry prefix"),
            "version_line": gettext_lazy("Version line"),
            "fastgpt_port": gettext_lazy("FastGPT port"),
            "oneapi_port": gettext_lazy("One API port"),
            "xinference_port": gettext_lazy("Xinference port"),
            "expose_database_ports": gettext_lazy("Publish the database ports on the server"),
            "publish_internal_services": gettext_lazy(
                "Publish One API and Xinference on the server's network"
            ),
            "xinference_device": gettext_lazy("Xinference runs on"),
            "data_dir": gettext_lazy("Data directory on the server"),
        }

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["server"].queryset = Server.objects.filter(
            team__in=access.team_ids(user, Role.OPERATOR)
        ).select_related("team")
        self.fields["server"].empty_label = None
        self.fields["version_line"] = forms.ChoiceField(
            label=_("Version line"), choices=line_choices()
        )
        # Only owners may publish One API and Xinference; the field is theirs alone.
        self.owned_team_ids = set(access.team_ids(user, Role.OWNER))
        if not self.owned_team_ids:
            del self.fields[INTERNAL_SETTING]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("registry") == "custom" and not cleaned.get("registry_prefix"):
            self.add_error("registry_prefix", _("Enter the registry prefix to pull images from."))
        server, name = cleaned.get("server"), cleaned.get("name")
        if server and name:
            same_name = Stack.objects.filter(server=server, name=name).exclude(pk=self.instance.pk)
            if same_name.exists():
                self.add_error(
                    "name",
                    _("Server %(server)s already has a stack “%(name)s”.")
                    % {"server": server.name, "name": name},
                )
        if cleaned.get(INTERNAL_SETTING) and server and server.team_id not in self.owned_team_ids:
            self.add_error(
                INTERNAL_SETTING,
                _("Only owners of team %(team)s can publish One API and Xinference.")
                % {"team": server.team.name},
            )
        self._clean_ports(cleaned)
        self._clean_data_dir(cleaned)
        return cleaned

    def _clean_data_dir(self, cleaned: dict) -> None:
        if not cleaned.get("server") or not cleaned.get("data_dir"):
            return
        stack = Stack(pk=self.instance.pk, server=cleaned["server"], data_dir=cleaned["data_dir"])
        for problem in data_dir_problems(stack):
            self.add_error("data_dir", problem)

    def _clean_ports(self, cleaned: dict) -> None:
        # The stack as it would be saved, so that its ports are those a deploy would publish.
        # It keeps the instance's pk: an edited stack is not compared with itself.
        stack = Stack(pk=self.instance.pk, **{name: cleaned.get(name) for name in PORT_SETTINGS})
        for first, second in ports_published_twice(stack):
            message = _("Port %(port)s would be published twice: by %(first)s and by %(second)s.")
            self.add_error(
                _typed_field(first, second),
                message % {"port": first.host, "first": first.label, "second": second.label},
            )
        server = cleaned.get("server")
        if server is None:
            return
        stack.server = server
        for port, other in ports_taken_on_server(stack):
            message = _("Port %(port)s is already published by stack “%(stack)s” on this server.")
            self.add_error(port.setting, message % {"port": port.host, "stack": other.name})


class UpgradeForm(forms.Form):
    version_line = forms.ChoiceField(label=gettext_lazy("Version line"), choices=line_choices)

    def __init__(self, *args, initial_line: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version_line"].initial = initial_line


class TeardownForm(forms.Form):
    delete_data = forms.BooleanField(
        label=gettext_lazy("Also delete the stack's data (databases, uploaded files, models)"),
        required=False,
    )
    confirm_name = forms.CharField(
        label=gettext_lazy("To delete the data, type the stack's name"),
        required=False,
        max_length=64,
    )
