import re
from io import StringIO

from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.urls import reverse

from deployments.choices import Role
from deployments.models import Invitation, Membership


def run_bootstrap(*args: str) -> str:
    out = StringIO()
    call_command("bootstrap_admin", *args, stdout=out)
    return out.getvalue()


def test_first_start_creates_an_owner_with_a_printed_generated_password(db):
    output = run_bootstrap()
    password = re.search(r"Password: (\S+)", output).group(1)
    assert len(password) >= 16
    user = authenticate(username="admin", password=password)
    assert user is not None
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.team.name == "Default"


def test_the_first_user_is_no_django_superuser_and_is_sent_to_the_account_page(db):
    output = run_bootstrap()
    user = get_user_model().objects.get(username="admin")
    assert not user.is_superuser and not user.is_staff
    assert "Account page" in output
    assert "Admin" not in output


def test_the_page_the_first_start_names_exists_and_changes_the_password(client, db):
    output = run_bootstrap()
    path = re.search(r"Account page \((/\S+)\)", output).group(1)
    assert path == reverse("account_change_password")
    client.force_login(get_user_model().objects.get(username="admin"))
    assert client.get(path).status_code == 200


def test_the_first_user_does_all_an_owner_does_from_the_panel_pages(client, db):
    run_bootstrap()
    user = get_user_model().objects.get(username="admin")
    team = Membership.objects.get(user=user).team
    client.force_login(user)

    response = client.post(reverse("team_invitation_create", args=[team.pk]), {"role": "owner"})

    assert response.status_code == 200 and Invitation.objects.filter(team=team).exists()
    assert client.get(reverse("admin:index")).status_code == 302  # not staff: no admin


def test_superuser_flag_makes_the_first_user_a_superuser(db):
    run_bootstrap("--superuser")
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.is_staff
    assert Membership.objects.get(user=user).role == Role.OWNER


def test_later_starts_create_nobody_and_print_no_password(db):
    run_bootstrap()
    output = run_bootstrap()
    assert "Password" not in output
    assert get_user_model().objects.count() == 1


def test_each_installation_gets_its_own_password(db):
    first = re.search(r"Password: (\S+)", run_bootstrap()).group(1)
    get_user_model().objects.all().delete()
    second = re.search(r"Password: (\S+)", run_bootstrap()).group(1)
    assert first != second
