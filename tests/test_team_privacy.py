"""Inviting someone must not tell an owner which accounts exist on the panel, and must add no
one without their consent.

An owner never types a username: an invitation names a role and, if they like, an e-mail address.
Whether an account has that address changes nothing the owner sees, and no account joins until
the person holding the link accepts it.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from deployments.models import AuditEvent, Invitation


def invite(client, team, email: str) -> str:
    """The team page an owner gets back after inviting `email`, with the link and the address
    taken out."""
    response = client.post(
        reverse("team_invitation_create", args=[team.pk]), {"role": "viewer", "email": email}
    )
    assert response.status_code == 200
    html = response.content.decode()
    html = re.sub(r"/invitations/accept/#[^\"]+", "/invitations/accept/#TOKEN", html)
    # The pending list grows by one row each time: compare only the answer about this one.
    start = html.index('id="new-invitation"')
    return html[start : html.index("</section>", start)].replace(email, "EMAIL")


@pytest.fixture
def someone(db):
    return get_user_model().objects.create(username="sleeper", email="sleeper@example.com")


def test_an_address_with_an_account_and_one_without_get_the_same_answer(
    client, team, owner, someone, settings
):
    settings.EMAIL_HOST = ""
    client.force_login(owner)

    known = invite(client, team, someone.email)
    unknown = invite(client, team, "nobody-at-all@example.com")

    assert known == unknown


def test_an_invitation_adds_no_one_until_it_is_accepted(client, team, owner, someone, settings):
    settings.EMAIL_HOST = ""
    client.force_login(owner)

    invite(client, team, someone.email)

    assert not team.memberships.filter(user=someone).exists()
    assert team.memberships.count() == 1
    assert Invitation.objects.get().accepted_by is None
    assert not AuditEvent.objects.filter(action="invitation.accept").exists()


def test_the_invitation_page_does_not_say_whether_the_address_has_an_account(
    client, team, owner, someone, settings
):
    settings.EMAIL_HOST = ""
    client.force_login(owner)
    pages = []
    for email in (someone.email, "nobody-at-all@example.com"):
        response = client.post(
            reverse("team_invitation_create", args=[team.pk]), {"role": "viewer", "email": email}
        )
        pages.append(response.context["created"]["url"])
    client.logout()

    answers = []
    for url, email in zip(pages, (someone.email, "nobody-at-all@example.com"), strict=True):
        # What the page's script does with the link's token.
        token = url.rpartition("#")[2]
        opened = client.post(
            reverse("invitation_accept"), {"open": "1", "token": token}, follow=True
        )
        html = opened.content.decode().replace(email, "EMAIL").replace(token, "TOKEN")
        answers.append(re.sub(r'(csrfmiddlewaretoken" value=|X-CSRFToken": )"[^"]+"', "", html))
    assert answers[0] == answers[1]
    assert "Join team Alpha as viewer?" in answers[0]
    assert "sleeper" not in answers[0]
