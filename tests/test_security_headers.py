"""A strict Content-Security-Policy on every page, and no caching of a logged-in user's pages.
tests/test_browser_csp.py checks in chromium that the pages work under the policy."""

import json
import re
from pathlib import Path

import pytest
from django.urls import reverse

from testkit.factories import make_user

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    parts = (part.split() for part in policy.split(";") if part.strip())
    return {name: sources for name, *sources in parts}


def test_the_login_page_sends_a_strict_content_security_policy(client):
    policy = directives(client.get(reverse("login")))
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]


def test_no_page_allows_inline_code_or_eval(client, operator):
    client.force_login(operator)
    for url in [reverse("dashboard"), reverse("audit_list"), reverse("admin:login")]:
        header = client.get(url).headers["Content-Security-Policy"]
        assert "unsafe-inline" not in header, url
        assert "unsafe-eval" not in header, url
        assert "*" not in header, url


def test_pages_of_a_logged_in_user_may_not_be_stored(client, operator):
    client.force_login(operator)
    for response in [
        client.get(reverse("dashboard")),
        client.get(reverse("audit_list"), headers={"HX-Request": "true"}),
        client.get(reverse("server_create"), follow=False),
    ]:
        cache_control = response.headers["Cache-Control"]
        assert "no-store" in cache_control
        assert "private" in cache_control


def test_a_403_or_a_404_for_a_logged_in_user_is_not_stored_either(client):
    client.force_login(make_user())
    forbidden = client.get(reverse("server_create"))
    assert forbidden.status_code == 403
    assert "no-store" in forbidden.headers["Cache-Control"]
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    assert "no-store" in missing.headers["Cache-Control"]


def test_the_redirect_after_logging_in_is_not_stored(client):
    user = make_user()
    response = client.post(
        reverse("login"), {"login": user.username, "password": user.raw_password}
    )
    assert response.status_code == 302
    assert "no-store" in response.headers["Cache-Control"]


def test_htmx_is_told_not_to_inject_styles_or_evaluate_attributes(client):
    html = client.get(reverse("login")).content.decode()
    meta = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html)
    assert json.loads(meta.group(1)) == {"includeIndicatorStyles": False, "allowEval": False}


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on… handler attribute"),
    (re.compile(r"\s(?:data-)?hx-on", re.I), "an hx-on attribute (evaluated code)"),
    (re.compile(r"\s(?:data-)?hx-vals\s*=\s*['\"]\s*js:", re.I), "hx-vals with js:"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


@pytest.mark.parametrize(
    "template", sorted((ROOT / "templates").rglob("*.html")), ids=lambda p: p.name
)
def test_no_template_has_inline_code_the_policy_would_block(template):
    text = template.read_text()
    found = [what for pattern, what in INLINE if pattern.search(text)]
    assert found == []
