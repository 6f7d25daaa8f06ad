"""Teams: creating one, inviting people, a member's role, the owners' two-factor rule, and the
account a person creates when they accept an invitation."""

import unicodedata

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..choices import Role
from ..models import Team


class TeamForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name or any(unicodedata.category(c).startswith("C") for c in name):
            raise forms.ValidationError(_("Give the team a name of letters, digits and spaces."))
        if Team.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError(
                _("A team named “%(name)s” exists already.") % {"name": name}
            )
        return name


class InvitationForm(forms.Form):
    role = forms.ChoiceField(label=gettext_lazy("Role"), choices=Role.choices, initial=Role.VIEWER)
    email = forms.EmailField(
        label=gettext_lazy("E-mail (optional)"),
        required=False,
        help_text=gettext_lazy("The link is mailed there when the panel can send mail."),
    )


class OwnerTwoFactorForm(forms.Form):
    require_owner_two_factor = forms.BooleanField(
        label=gettext_lazy("Owners must use two-factor authentication"), required=False
    )


class BudgetForm(forms.ModelForm):
    """A team's monthly budget for its servers, and when the panel warns."""

    class Meta:
        model = Team
        fields = ["monthly_budget", "budget_currency", "budget_warning_percent"]
        labels = {
            "monthly_budget": gettext_lazy("Monthly budget"),
            "budget_currency": gettext_lazy("Currency"),
            "budget_warning_percent": gettext_lazy("Warn at (% of the budget)"),
        }
        help_texts = {
            "monthly_budget": gettext_lazy(
                "What the team means to spend on its servers in a calendar month. Empty: no budget."
            ),
            "budget_currency": gettext_lazy(
                "Three letters, like USD: servers priced in another currency are not counted."
            ),
            "budget_warning_percent": gettext_lazy(
                "The dashboard warns, and the team's channels are told once a month, when the "
                "month so far reaches this share."
            ),
        }

    def clean_budget_currency(self) -> str:
        return (self.cleaned_data.get("budget_currency") or "").strip().upper()


class ChangeRoleForm(forms.Form):
    role = forms.ChoiceField(label=gettext_lazy("Role"), choices=Role.choices)


class SignupForm(UserCreationForm):
    """An account created from an invitation: the only way to get one on the panel."""

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")
        labels = {"email": gettext_lazy("E-mail (optional)")}
