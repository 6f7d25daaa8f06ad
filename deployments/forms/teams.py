"""A team's members: adding one, and changing a member's role."""

from django import forms
from django.contrib.auth import get_user_model

from ..choices import Role
from ..models import Membership, Team


class AddMemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args, team: Team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            # One sentence for a name nobody has and for a disabled account: the form must not
            # tell an owner which usernames exist. (That the team's members exist, the owner
            # sees on the page: saying so below reveals nothing.)
            raise forms.ValidationError(
                f"“{username}” could not be added: check the username with the person."
            )
        if Membership.objects.filter(team=self.team, user=user).exists():
            raise forms.ValidationError(f"{username} is already a member of {self.team}.")
        return user


class ChangeRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
