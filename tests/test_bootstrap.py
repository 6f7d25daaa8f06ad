import re
from io import StringIO

from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from deployments.choices import Role
from deployments.models import Membership


def run_bootstrap() -> str:
    out = StringIO()
    call_command("bootstrap_admin", stdout=out)
    return out.getvalue()


def test_first_start_creates_an_owner_with_a_printed_generated_password(db):
    output = run_bootstrap()
    password = re.search(r"Password: (\S+)", output).group(1)
    assert len(password) >= 16
    user = authenticate(username="admin", password=password)
    assert user is not None and user.is_superuser
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.team.name == "Default"


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
