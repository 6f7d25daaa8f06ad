"""Under the Content-Security-Policy the pages work in a real browser: chromium reports no
violation and no error in the console on the panel's pages, a run page whose websocket sends
lines, and the admin."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import expect

from deployments.choices import Role
from testkit.asgi_server import AsgiServer
from testkit.browser import in_thread, log_in
from testkit.factories import add_member, make_server, make_stack
from tests.test_browser_run_events import (
    _running_run,
    output,
    output_text,
    wait_for_output,
)

pytestmark = [pytest.mark.slow, pytest.mark.engine_agnostic]


@pytest.fixture
def asgi_server(transactional_db, tmp_path):
    # The ASGI server, as the panel is served: live_server has no websockets.
    server = AsgiServer(tmp_path / "web.log").start()
    yield server
    server.stop()


@pytest.fixture
def console_errors(page) -> list[str]:
    """Console errors, uncaught exceptions and failed loads; chromium reports each CSP
    violation as a console error."""
    errors: list[str] = []

    def on_console(message):
        # The admin's pages link no icon: chromium's own try at /favicon.ico answers 404.
        where = message.location.get("url", "")
        if message.type == "error" and not where.endswith("/favicon.ico"):
            errors.append(f"{message.text} ({where})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))
    return errors


def _objects():
    run = _running_run()
    user = get_user_model().objects.create_superuser("csp-root", "", "Right-pw-1")
    add_member(run.team, user, role=Role.OWNER)
    stack = make_stack(make_server(run.team, name="gpu-csp"))
    return run, user, stack


def test_pages_run_under_the_policy_without_violations(asgi_server, page, console_errors):
    run, user, stack = in_thread(_objects)
    base = asgi_server.url

    log_in(page, base, user.username, "Right-pw-1")
    for url in [
        reverse("dashboard"),
        reverse("server_list"),
        reverse("server_detail", args=[stack.server_id]),
        reverse("stack_list"),
        reverse("stack_detail", args=[stack.pk]),
        reverse("stack_logs", args=[stack.pk]),
        reverse("model_list"),
        reverse("deployment_list"),
        reverse("team_list"),
        reverse("audit_list"),
        reverse("account_index"),
        reverse("account_change_password"),
        reverse("account_email"),
        reverse("mfa_index"),
        reverse("mfa_activate_totp"),
        reverse("usersessions_list"),
        reverse("account_reset_password"),
        reverse("admin:index"),
        reverse("admin:auth_user_change", args=[user.pk]),
    ]:
        response = page.goto(f"{base}{url}")
        assert response.status == 200, url
        assert "default-src 'self'" in response.headers["content-security-policy"], url
        page.wait_for_load_state("load")

    # The run page: htmx and its websocket extension swap the lines the consumer sends, and
    # run_steps.js keeps the output at its end.
    page.goto(f"{base}{reverse('run_detail', args=[run.pk])}")
    expect(page.locator("#run-steps")).to_have_attribute(
        "hx-trigger", "htmx:wsClose from:#run-progress"
    )
    in_thread(output, run, *(f"line {n}" for n in range(60)))
    wait_for_output(page, "\n".join(["before the page opened", *(f"line {n}" for n in range(60))]))
    pre = page.locator('tr[data-step-index="0"] + tr.step-output pre')
    assert pre.evaluate("(pre) => pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4")
    assert output_text(page).endswith("line 59")

    assert console_errors == []


def test_an_inline_script_is_refused_and_reported_in_the_console(asgi_server, page, console_errors):
    # The check above would see a violation: chromium reports one as a console error.
    page.goto(f"{asgi_server.url}/login/")
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.ranInline = true";
            document.body.append(script);
        }"""
    )
    assert page.evaluate("() => window.ranInline === undefined")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert any("Content Security Policy" in error for error in console_errors), console_errors
