"""The running cost on the pages: a server's page shows when it started and what it has cost
(since then, this month, a month at this rate); the dashboard shows each server's cost and the
team's month against its budget; owners set the budget on the team's page."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments.choices import Role, ServerStatus
from deployments.models import AuditEvent, Team
from testkit.factories import add_member, make_server

NOW = datetime(2026, 12, 11, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch, settings):
    settings.TIME_ZONE = "UTC"
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def running(
    team, name="gpu-1", price="2", currency="CNY", booted=datetime(2026, 11, 30, tzinfo=UTC)
):
    return make_server(
        team,
        name=name,
        hourly_price=Decimal(price) if price is not None else None,
        price_currency=currency,
        booted_at=booted,
        status=ServerStatus.REACHABLE,
    )


def page(client, user, name, *args) -> str:
    client.force_login(user)
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return response.content.decode()


def test_the_server_page_shows_its_uptime_and_its_three_costs(client, team, viewer):
    server = running(team)
    html = page(client, viewer, "server_detail", server.pk)
    assert "2.0000 CNY" in html  # the hourly price, with its currency
    assert "2026-11-30 00:00" in html  # running since
    assert "up 1\xa0week, 4\xa0days" in html  # 11 days, 12 hours
    assert "552.00 CNY" in html  # since it started: 276 hours
    assert "504.00 CNY" in html  # this month: 252 hours
    assert "since 2026-12-01 00:00" in html
    assert "1488.00 CNY" in html  # a month at this rate: 31 days


def test_a_server_without_a_price_says_so_and_links_to_setting_it(client, team, operator):
    server = running(team, price=None)
    html = page(client, operator, "server_detail", server.pk)
    assert "No price set." in html
    assert reverse("server_edit", args=[server.pk]) in html
    assert "Cost since it started" not in html


def test_a_viewer_is_not_offered_the_link_to_set_the_price(client, team, viewer):
    server = running(team, price=None)
    html = page(client, viewer, "server_detail", server.pk)
    assert "No price set." in html
    assert "Set the hourly price" not in html


def test_a_server_never_checked_says_its_start_is_not_known_yet(client, team, viewer):
    server = running(team, booted=None)
    html = page(client, viewer, "server_detail", server.pk)
    assert "Not known yet" in html
    assert "1488.00 CNY" in html  # the rate is known without the uptime


def test_the_dashboard_shows_each_servers_running_cost(client, team, viewer):
    running(team, name="gpu-a", price="1", currency="USD")
    running(team, name="gpu-b", price=None)
    html = page(client, viewer, "dashboard")
    assert "276.00 USD" in html and "252.00 USD" in html and "744.00 USD" in html
    assert "No price set." in html
    assert "Budget of" not in html  # the team set no budget


def test_the_dashboard_warns_when_the_month_passes_the_budgets_threshold(client, team, viewer):
    running(team, price="1", currency="USD")  # 252 USD this month
    Team.objects.filter(pk=team.pk).update(monthly_budget=Decimal("300"))
    html = page(client, viewer, "dashboard")
    assert "252.00 USD of 300.00 USD (84%)" in html
    assert "passed 80% of the budget" in html

    Team.objects.filter(pk=team.pk).update(budget_warning_percent=90)
    html = page(client, viewer, "dashboard")
    assert "252.00 USD of 300.00 USD (84%)" in html
    assert "passed" not in html


def test_an_owner_sets_the_teams_budget(client, team, owner):
    client.force_login(owner)
    response = client.post(
        reverse("team_budget", args=[team.pk]),
        {"monthly_budget": "500", "budget_currency": "eur", "budget_warning_percent": "75"},
    )
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.monthly_budget == Decimal("500")
    assert team.budget_currency == "EUR"
    assert team.budget_warning_percent == 75
    assert AuditEvent.objects.filter(action="team.budget", team=team).exists()
    html = page(client, owner, "team_detail", team.pk)
    assert "0.00 EUR of 500.00 EUR (0%)" in html


def test_a_budget_with_a_bad_currency_or_threshold_is_refused_beside_the_field(client, team, owner):
    client.force_login(owner)
    response = client.post(
        reverse("team_budget", args=[team.pk]),
        {"monthly_budget": "500", "budget_currency": "E1", "budget_warning_percent": "150"},
    )
    html = response.content.decode()
    assert "three-letter code" in html
    assert "less than or equal to 100" in html
    team.refresh_from_db()
    assert team.monthly_budget is None


def test_members_see_the_budget_but_only_owners_get_the_form(client, team):
    viewer = add_member(team, role=Role.VIEWER)
    Team.objects.filter(pk=team.pk).update(monthly_budget=Decimal("10"))
    html = page(client, viewer, "team_detail", team.pk)
    assert "0.00 USD of 10.00 USD" in html
    assert reverse("team_budget", args=[team.pk]) not in html


def test_the_server_form_takes_the_prices_currency(client, team, owner):
    server = running(team, price="1", currency="USD")
    client.force_login(owner)
    data = {
        "name": server.name,
        "host": server.host,
        "ssh_port": server.ssh_port,
        "ssh_user": server.ssh_user,
        "hourly_price": "3.5",
        "price_currency": "jpy",
    }
    response = client.post(reverse("server_edit", args=[server.pk]), data)
    assert response.status_code == 302, response.context["form"].errors
    server.refresh_from_db()
    assert server.hourly_price == Decimal("3.5") and server.price_currency == "JPY"
