"""Invitations: an owner makes a link with a role; whoever holds it joins once they accept, with
the account they have or one they create then. The link's token is stored only as a hash, rides
after the link's `#` (never in a path or query a server logs), and never reaches the audit trail
or a log.

The page's script sends the token from the address's fragment in a POST; `open_link` does what it
does."""

import hashlib
import logging
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse, reverse_lazy
from django.utils import timezone

from deployments.actions.invitations import (
    InvitationUnusable,
    do_accept_invitation,
    do_create_invitation,
    unusable_message,
)
from deployments.choices import Role
from deployments.models import AuditEvent, Invitation, Membership
from testkit.factories import add_member, make_user

UNUSABLE = "This invitation link is not valid"


@pytest.fixture(autouse=True)
def _no_mail_server(settings):
    settings.EMAIL_HOST = ""


def create(client, team, **data) -> tuple[str, object]:
    """The link an owner (logged in on `client`) gets for a new invitation, and the page."""
    data.setdefault("role", "operator")
    response = client.post(reverse("team_invitation_create", args=[team.pk]), data)
    assert response.status_code == 200
    return response.context["created"]["url"], response


def token_of(url: str) -> str:
    return url.rpartition("#")[2]


ACCEPT = reverse_lazy("invitation_accept")


def open_link(client, url_or_token: str, **extra):
    """What the browser shows once the page's script has POSTed the token of the link."""
    token = token_of(url_or_token)
    return client.post(ACCEPT, {"open": "1", "token": token}, follow=True, **extra)


def accept(client, token: str, **extra):
    return client.post(ACCEPT, {"accept": "1", "token": token}, **extra)


def test_an_owner_gets_a_link_shown_once_and_only_its_hash_is_stored(client, team, owner):
    client.force_login(owner)

    url, response = create(client, team, role="operator")

    html = response.content.decode()
    assert url.startswith("http://testserver/invitations/accept/#")
    assert f'value="{url}"' in html and "data-copy=" in html
    token = token_of(url)
    assert len(token) >= 40 and token not in url.partition("#")[0]
    invitation = Invitation.objects.get()
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(Invitation.objects.values().get())
    assert invitation.role == Role.OPERATOR and invitation.created_by == owner
    assert timedelta(days=6, hours=23) < invitation.expires_at - timezone.now() <= timedelta(days=7)
    again = client.get(reverse("team_detail", args=[team.pk])).content.decode()
    assert token not in again


def test_the_pending_invitations_show_role_address_expiry_and_who_made_them(client, team, owner):
    client.force_login(owner)
    create(client, team, role="viewer", email="new@example.com")

    html = client.get(reverse("team_detail", args=[team.pk])).content.decode()

    assert "Pending invitations" in html
    assert "new@example.com" in html and "Viewer" in html and owner.username in html
    invitation = Invitation.objects.get()
    assert reverse("team_invitation_revoke", args=[team.pk, invitation.pk]) in html


def test_expiry_follows_the_setting(client, team, owner, settings):
    settings.INVITATION_DAYS = 2
    client.force_login(owner)
    create(client, team)
    left = Invitation.objects.get().expires_at - timezone.now()
    assert timedelta(days=1, hours=23) < left <= timedelta(days=2)


def test_the_link_is_mailed_when_the_panel_has_a_mail_server(client, team, owner, settings):
    settings.EMAIL_HOST = "smtp.example.com"
    client.force_login(owner)

    url, response = create(client, team, email="new@example.com")

    [message] = mail.outbox
    assert message.to == ["new@example.com"]
    assert url in message.body and "Alpha" in message.subject
    assert "The link was mailed to new@example.com" in response.content.decode()


def test_without_a_mail_server_the_page_says_the_link_was_not_mailed(client, team, owner):
    client.force_login(owner)

    _url, response = create(client, team, email="new@example.com")

    assert mail.outbox == []
    assert "The link was not mailed to new@example.com" in response.content.decode()


def test_a_bad_role_or_address_is_refused_beside_its_field(client, team, owner):
    client.force_login(owner)
    response = client.post(
        reverse("team_invitation_create", args=[team.pk]), {"role": "admin", "email": "nope"}
    )
    assert response.status_code == 200
    assert set(response.context["invitation_form"].errors) == {"role", "email"}
    assert not Invitation.objects.exists()


def test_a_logged_in_user_is_asked_before_joining(client, team, owner):
    client.force_login(owner)
    url, _ = create(client, team, role="operator")
    newcomer = make_user("newcomer")
    client.force_login(newcomer)

    html = open_link(client, url).content.decode()

    assert "Join team Alpha as operator?" in html
    assert "Accept" in html and "Decline" in html
    assert not Membership.objects.filter(user=newcomer).exists()


def test_accepting_joins_with_the_role_and_uses_the_invitation_up(client, team, owner):
    client.force_login(owner)
    url, _ = create(client, team, role="operator")
    newcomer = make_user("newcomer")
    client.force_login(newcomer)

    open_link(client, url)
    response = accept(client, token_of(url), REMOTE_ADDR="198.51.100.7")

    assert response.status_code == 302
    assert response.url == reverse("team_detail", args=[team.pk])
    assert Membership.objects.get(user=newcomer, team=team).role == Role.OPERATOR
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == newcomer and invitation.accepted_at is not None
    event = AuditEvent.objects.get(action="invitation.accept")
    assert event.actor == newcomer and event.team == team and event.ip_address == "198.51.100.7"
    assert event.details["role"] == "operator"
    again = accept(client, token_of(url))
    assert again.status_code == 404
    assert open_link(client, url).status_code == 404
    assert Membership.objects.filter(user=newcomer, team=team).count() == 1


def test_accepting_needs_csrf(team, owner):
    _invitation, token = do_create_invitation(team, role=Role.VIEWER, user=owner)
    newcomer = make_user("newcomer")
    client = Client(enforce_csrf_checks=True)
    client.force_login(newcomer)

    response = accept(client, token)

    assert response.status_code == 403
    assert not Membership.objects.filter(user=newcomer).exists()


@pytest.mark.parametrize(
    ("had", "invited", "keeps"),
    [
        (Role.VIEWER, Role.OWNER, Role.OWNER),
        (Role.OWNER, Role.VIEWER, Role.OWNER),
        (Role.OPERATOR, Role.OPERATOR, Role.OPERATOR),
    ],
)
def test_a_member_already_in_the_team_keeps_the_higher_role(team, owner, had, invited, keeps):
    member = add_member(team, role=had)
    _invitation, token = do_create_invitation(team, role=invited, user=owner)

    do_accept_invitation(token, user=member)

    assert Membership.objects.get(user=member, team=team).role == keeps
    assert Invitation.objects.get().accepted_by == member


def test_two_accepts_of_one_token_make_one_membership(team, owner):
    _invitation, token = do_create_invitation(team, role=Role.VIEWER, user=owner)
    first, second = make_user("first"), make_user("second")

    do_accept_invitation(token, user=first)
    with pytest.raises(InvitationUnusable):
        do_accept_invitation(token, user=second)

    assert team.memberships.filter(user__in=[first, second]).count() == 1
    assert AuditEvent.objects.filter(action="invitation.accept").count() == 1


@pytest.mark.django_db(transaction=True)
def test_accepts_racing_in_two_threads_make_one_membership(team, owner):
    _invitation, token = do_create_invitation(team, role=Role.VIEWER, user=owner)
    racers = [make_user(f"racer{n}") for n in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def accept(user):
        barrier.wait()
        try:
            do_accept_invitation(token, user=user)
            outcomes.append("joined")
        except InvitationUnusable:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=accept, args=(user,)) for user in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["joined", "refused"]
    assert team.memberships.filter(user__in=racers).count() == 1


def invitation_in_state(team, owner, state: str) -> str:
    invitation, token = do_create_invitation(team, role=Role.VIEWER, user=owner)
    if state == "expired":
        Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now())
    elif state == "revoked":
        Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now())
    elif state == "used":
        do_accept_invitation(token, user=make_user())
    elif state == "unknown":
        token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    return token


@pytest.mark.parametrize("state", ["unknown", "expired", "revoked", "used"])
@pytest.mark.parametrize("logged_in", [False, True])
def test_an_unusable_link_gets_one_and_the_same_sentence_and_404(
    client, team, owner, state, logged_in
):
    token = invitation_in_state(team, owner, state)
    if logged_in:
        client.force_login(make_user("visitor"))
    for response in (open_link(client, token), accept(client, token)):
        assert response.status_code == 404
        html = response.content.decode()
        assert unusable_message() in html
        assert "Alpha" not in html
    assert not Membership.objects.filter(user__username="visitor").exists()


def test_a_visitor_can_log_in_and_come_back_to_the_invitation(client, team, owner):
    _invitation, token = do_create_invitation(team, role=Role.VIEWER, user=owner)
    url = str(ACCEPT)

    html = open_link(client, token).content.decode()

    assert f"{reverse('login')}?next={url}" in html
    member = make_user("member")
    response = client.post(
        reverse("login"),
        {"login": member.username, "username": member.username, "password": member.raw_password}
        | {"next": url},
    )
    assert response.status_code == 302 and response.url == url
    back = client.get(url).content.decode()
    assert "Join team Alpha as viewer?" in back and "You join as member." in back
    assert accept(client, token).status_code == 302
    assert Membership.objects.get(user=member, team=team).role == Role.VIEWER


def test_a_visitor_creates_an_account_and_joins(client, team, owner):
    _invitation, token = do_create_invitation(
        team, role=Role.OPERATOR, email="new@example.com", user=owner
    )
    assert 'value="new@example.com"' in open_link(client, token).content.decode()
    password = "a long pass phrase 4 u"

    response = client.post(
        ACCEPT,
        {
            "token": token,
            "username": "newcomer",
            "email": "new@example.com",
            "password1": password,
            "password2": password,
        },
    )

    assert response.status_code == 302
    user = get_user_model().objects.get(username="newcomer")
    assert user.check_password(password) and not user.is_staff and not user.is_superuser
    assert Membership.objects.get(user=user, team=team).role == Role.OPERATOR
    assert client.get(reverse("team_detail", args=[team.pk])).status_code == 200
    assert AuditEvent.objects.filter(action="user.signup", actor=user).exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"password1": "password", "password2": "password"}, "password2"),
        ({"password1": "a long pass phrase 4 u", "password2": "another one 4 u"}, "password2"),
        ({"username": "taken"}, "username"),
        ({"username": ""}, "username"),
    ],
)
def test_a_bad_account_is_refused_beside_its_field_and_nothing_is_created(
    client, team, owner, data, field
):
    make_user("taken")
    _invitation, token = do_create_invitation(team, role=Role.VIEWER, user=owner)
    users = get_user_model().objects.count()
    fields = {"token": token, "username": "newcomer", "password1": "a long pass phrase 4 u"}
    fields["password2"] = fields["password1"]

    response = client.post(ACCEPT, fields | data)

    assert response.status_code == 200
    assert field in response.context["signup_form"].errors
    assert get_user_model().objects.count() == users
    assert Invitation.objects.get().accepted_at is None


def test_no_account_is_created_through_a_used_invitation(client, team, owner):
    token = invitation_in_state(team, owner, "used")
    users = get_user_model().objects.count()
    password = "a long pass phrase 4 u"

    response = client.post(
        ACCEPT,
        {"token": token, "username": "sneaky", "password1": password, "password2": password},
    )

    assert response.status_code == 404
    assert get_user_model().objects.count() == users


def test_an_owner_revokes_a_pending_invitation(client, team, owner):
    client.force_login(owner)
    url, _ = create(client, team)
    invitation = Invitation.objects.get()

    response = client.post(reverse("team_invitation_revoke", args=[team.pk, invitation.pk]))

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert AuditEvent.objects.filter(action="invitation.revoke", actor=owner).count() == 1
    client.force_login(make_user("late"))
    assert accept(client, token_of(url)).status_code == 404
    again = client.get(reverse("team_detail", args=[team.pk]))
    assert again.status_code == 404  # "late" is in no team: the page is not theirs


def test_an_invitation_of_another_team_cannot_be_revoked_through_this_one(
    client, team, other_team, owner
):
    stranger = add_member(other_team, role=Role.OWNER)
    invitation, _token = do_create_invitation(other_team, role=Role.VIEWER, user=stranger)
    client.force_login(owner)

    response = client.post(reverse("team_invitation_revoke", args=[team.pk, invitation.pk]))

    assert response.status_code == 404
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_the_token_reaches_neither_the_audit_trail_nor_a_log(client, team, owner, caplog):
    caplog.set_level(logging.DEBUG)
    client.force_login(owner)
    url, _ = create(client, team, email="new@example.com")
    token = token_of(url)
    open_link(client, url)
    open_link(client, token[:-1])  # a 404, which Django logs
    client.force_login(make_user("newcomer"))
    open_link(client, url)
    accept(client, token)
    accept(client, token)  # used: another 404
    client.force_login(owner)
    client.post(reverse("team_invitation_revoke", args=[team.pk, Invitation.objects.get().pk]))

    events = list(AuditEvent.objects.values())
    assert {e["action"] for e in events} >= {"invitation.create", "invitation.accept"}
    assert token not in str(events)
    assert token[:-1] not in caplog.text


def test_the_page_a_link_opens_has_no_token_and_reads_it_with_its_script(client, team, owner):
    client.force_login(owner)
    url, _ = create(client, team)
    client.logout()

    # A browser requests the link without what follows "#": that is all a server sees.
    response = client.get(url.partition("#")[0])

    html = response.content.decode()
    assert response.status_code == 200
    assert "js/invitation.js" in html and 'id="invitation-token"' in html
    assert "JavaScript is needed to read the invitation from its link" in html
    assert "Alpha" not in html and token_of(url) not in html


def test_opening_keeps_the_token_out_of_every_address_it_leads_to(client, team, owner):
    client.force_login(owner)
    url, _ = create(client, team)
    client.logout()

    page = open_link(client, url)

    assert "Join team Alpha as operator?" in page.content.decode()
    addresses = [address for address, _status in page.redirect_chain]
    assert addresses == [str(ACCEPT)]
    assert all(token_of(url) not in address for address in addresses)
    # Reloading the page shows the same question, from the session.
    assert "Join team Alpha as operator?" in client.get(ACCEPT).content.decode()


def test_without_javascript_a_pasted_link_opens_the_invitation(client, team, owner):
    client.force_login(owner)
    url, _ = create(client, team, role="viewer")
    client.logout()

    page = client.post(ACCEPT, {"open": "1", "token": "", "link": f" {url} "}, follow=True)

    assert "Join team Alpha as viewer?" in page.content.decode()


def test_sending_no_token_asks_for_the_link(client):
    response = client.post(ACCEPT, {"open": "1", "token": "", "link": ""})

    assert response.status_code == 200
    assert "Paste the invitation link you were given." in response.content.decode()


def test_accepting_takes_the_invitation_of_the_page_not_the_last_one_opened(client, team, owner):
    first, first_token = do_create_invitation(team, role=Role.VIEWER, user=owner)
    _second, second_token = do_create_invitation(team, role=Role.OWNER, user=owner)
    newcomer = make_user("newcomer")
    client.force_login(newcomer)
    open_link(client, first_token)
    open_link(client, second_token)  # in another tab

    accept(client, first_token)

    assert Membership.objects.get(user=newcomer, team=team).role == Role.VIEWER
    assert Invitation.objects.get(accepted_by=newcomer) == first
