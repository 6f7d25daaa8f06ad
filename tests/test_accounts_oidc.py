"""Logging in with an OpenID Connect provider: a real one, django-oauth-toolkit with OIDC on,
run as a Django project of its own on loopback (testkit/oidc_provider), which signs its ID tokens
with an RSA key, requires PKCE and says per person whether it has verified their address.

An account is joined only by an address that both the provider and the account have verified;
a name, or an address either side has not verified, links nothing; nobody new gets an account
unless OIDC_ALLOW_SIGNUP says so."""

from urllib.parse import parse_qs, urlparse

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.urls import reverse

from controlpanel.accounts import has_two_factor
from testkit.factories import make_user
from testkit.oidc_provider import OIDCProvider, Person

pytestmark = pytest.mark.django_db

ADDRESS = "alice@example.com"
CALLBACK = "http://testserver" + reverse("openid_connect_callback", args=["oidc"])

# The provider's people. The panel's user is "alice", with ADDRESS verified.
PEOPLE = [
    Person("alice.verified", email=ADDRESS, email_verified=True),
    Person("alice.unverified", email=ADDRESS, email_verified=False),
    # The panel user's name, with another address.
    Person("alice", email="someone.else@example.com", email_verified=True),
    Person("carol", email="carol@example.com", email_verified=True),
]


@pytest.fixture(scope="module")
def provider():
    provider = OIDCProvider(PEOPLE, redirect_uri=CALLBACK)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture
def user(db):
    user = make_user("alice")
    user.email = ADDRESS
    user.save(update_fields=["email"])
    EmailAddress.objects.create(user=user, email=ADDRESS, verified=True, primary=True)
    return user


@pytest.fixture
def oidc(provider, settings):
    """The panel configured for the provider, as OIDC_* in the environment would."""
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "oidc",
                    "name": "Company SSO",
                    "client_id": provider.client_id,
                    "secret": provider.client_secret,
                    "settings": {"server_url": provider.url, "oauth_pkce_enabled": True},
                }
            ]
        }
    }
    return provider


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def sign_in_at_provider(client, provider, username: str):
    """The browser's way through: the panel's button, the provider's login as `username`, back
    to the panel's callback with the code (which the panel trades at the provider's token
    endpoint for the signed ID token, then reads userinfo)."""
    response = client.post(reverse("openid_connect_login", args=["oidc"]))
    back = urlparse(provider.log_in(response.url, username))
    assert f"http://{back.netloc}{back.path}" == CALLBACK
    return client.get(back.path, parse_qs(back.query), follow=True)


def test_without_oidc_settings_the_login_has_no_provider_button(client):
    html = client.get(reverse("login")).content.decode()
    assert "/accounts/oidc/" not in html


def test_with_oidc_the_button_starts_a_login_at_the_providers_authorization_endpoint(client, oidc):
    html = client.get(reverse("login")).content.decode()
    assert "Log in with Company SSO" in html
    start = reverse("openid_connect_login", args=["oidc"])
    assert start in html

    response = client.post(start)

    assert response.status_code == 302
    target = urlparse(response.url)
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{oidc.url}/authorize/"
    query = parse_qs(target.query)
    assert query["client_id"] == [oidc.client_id]
    assert query["response_type"] == ["code"]
    assert "openid" in query["scope"][0].split()
    assert query["redirect_uri"] == [CALLBACK]
    assert query["code_challenge_method"] == ["S256"]


def test_an_oidc_login_with_a_verified_address_of_an_account_logs_into_it(client, user, oidc):
    page = sign_in_at_provider(client, oidc, "alice.verified")
    assert page.redirect_chain[-1][0] == reverse("dashboard")
    assert int(client.session["_auth_user_id"]) == user.pk


def test_an_oidc_login_never_links_by_name_and_says_to_ask_for_an_invitation(client, user, oidc):
    page = sign_in_at_provider(client, oidc, "alice")
    assert "Ask a team owner for an invitation" in page.content.decode()
    assert not logged_in(client)
    assert get_user_model().objects.count() == 1


def test_an_oidc_login_is_not_linked_by_an_address_the_provider_has_not_verified(
    client, user, oidc
):
    page = sign_in_at_provider(client, oidc, "alice.unverified")
    assert "Ask a team owner for an invitation" in page.content.decode()
    assert not logged_in(client)


def test_an_oidc_login_is_not_linked_to_an_address_the_account_has_not_verified(client, user, oidc):
    EmailAddress.objects.filter(user=user).update(verified=False)
    page = sign_in_at_provider(client, oidc, "alice.verified")
    assert "Ask a team owner for an invitation" in page.content.decode()
    assert not logged_in(client)


def test_with_oidc_signup_allowed_a_new_person_gets_an_account(client, oidc, settings):
    settings.OIDC_ALLOW_SIGNUP = True
    page = sign_in_at_provider(client, oidc, "carol")
    assert page.redirect_chain[-1][0] == reverse("dashboard")
    carol = get_user_model().objects.get(pk=client.session["_auth_user_id"])
    assert carol.username == "carol"
    assert not has_two_factor(carol)


def test_without_signup_allowed_a_new_person_gets_no_account(client, oidc):
    page = sign_in_at_provider(client, oidc, "carol")
    assert "Ask a team owner for an invitation" in page.content.decode()
    assert not logged_in(client)
    assert not get_user_model().objects.filter(username="carol").exists()
