"""What a server costs and a team's month against its budget: exact Decimal arithmetic, the
calendar month in the panel's time zone, servers without a price and other currencies."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from deployments import costs
from deployments.choices import ServerStatus


def at(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def server(price="1.25", currency="USD", booted=None, status=ServerStatus.REACHABLE, seen=None):
    return SimpleNamespace(
        hourly_price=Decimal(price) if price is not None else None,
        price_currency=currency,
        booted_at=booted,
        status=status,
        facts_checked_at=seen,
    )


def team(budget="100", currency="USD", percent=80):
    return SimpleNamespace(
        monthly_budget=Decimal(budget) if budget is not None else None,
        budget_currency=currency,
        budget_warning_percent=percent,
    )


@pytest.fixture(autouse=True)
def _utc(settings):
    settings.TIME_ZONE = "UTC"


def test_hours_are_exact_to_the_microsecond():
    assert costs.hours(timedelta(hours=3, minutes=30)) == Decimal("3.5")
    assert costs.hours(timedelta(seconds=36)) == Decimal("0.01")
    assert costs.hours(timedelta(microseconds=3600)) == Decimal("0.000001")
    assert costs.hours(timedelta(seconds=-5)) == 0


def test_the_cost_since_the_start_is_the_hours_up_times_the_price():
    now = at(2026, 12, 6, 13, 30)
    figures = costs.server_cost(server("1.25", booted=at(2026, 12, 6, 10, 0)), now)
    assert figures.uptime == timedelta(hours=3, minutes=30)
    assert figures.since_boot == Decimal("4.375")
    assert figures.since_boot_text == "4.38 USD"  # rounded half up to the cent when shown


def test_this_month_counts_from_the_first_of_the_month_when_the_server_started_before():
    now = at(2026, 12, 2, 12, 0)
    figures = costs.server_cost(server("2", booted=at(2026, 11, 30, 12, 0)), now)
    assert figures.since_boot == Decimal("96")  # 48 hours
    assert figures.month_from == at(2026, 12, 1)
    assert figures.this_month == Decimal("72")  # 36 hours of December


def test_this_month_counts_from_the_start_when_it_started_this_month():
    now = at(2026, 12, 2, 12, 0)
    figures = costs.server_cost(server("2", booted=at(2026, 12, 2, 0, 0)), now)
    assert figures.month_from == at(2026, 12, 2)
    assert figures.this_month == figures.since_boot == Decimal("24")


def test_the_month_starts_in_the_panels_time_zone(settings):
    settings.TIME_ZONE = "Asia/Shanghai"  # UTC+8: December starts at 16:00 UTC on 30 November
    now = at(2026, 11, 30, 20, 0)
    figures = costs.server_cost(server("1", booted=at(2026, 11, 30, 12, 0)), now)
    assert figures.month_from == at(2026, 11, 30, 16, 0)
    assert figures.this_month == Decimal("4")
    assert costs.month_key(now) == "2026-12"


def test_a_month_at_this_rate_uses_the_days_of_the_month():
    price = "0.5"
    assert costs.server_cost(server(price), at(2026, 2, 10)).month_at_rate == Decimal("336")
    assert costs.server_cost(server(price), at(2028, 2, 10)).month_at_rate == Decimal("348")
    assert costs.server_cost(server(price), at(2026, 12, 31, 23)).month_at_rate == Decimal("372")


def test_a_server_without_a_price_has_no_cost_but_its_uptime():
    figures = costs.server_cost(server(None, booted=at(2026, 12, 1)), at(2026, 12, 2))
    assert not figures.priced
    assert figures.uptime == timedelta(days=1)
    assert figures.since_boot is None and figures.this_month is None
    assert figures.month_at_rate is None and figures.month_at_rate_text == ""


def test_a_server_whose_start_is_not_known_yet_has_only_its_rate():
    figures = costs.server_cost(server("1", booted=None), at(2026, 12, 2))
    assert figures.priced and not figures.known
    assert figures.since_boot is None and figures.this_month is None
    assert figures.month_at_rate == Decimal("744")


def test_an_unreachable_server_is_counted_until_it_was_last_seen_running():
    figures = costs.server_cost(
        server(
            "3",
            booted=at(2026, 12, 1),
            status=ServerStatus.UNREACHABLE,
            seen=at(2026, 12, 1, 10),
        ),
        at(2026, 12, 5),
    )
    assert figures.until == at(2026, 12, 1, 10)
    assert figures.since_boot == Decimal("30")


def test_amounts_are_shown_with_their_currency_code():
    figures = costs.server_cost(server("7.2", "CNY", booted=at(2026, 12, 1)), at(2026, 12, 1, 1))
    assert figures.since_boot_text == "7.20 CNY"
    assert figures.month_at_rate_text == "5356.80 CNY"


def test_a_team_warns_from_its_threshold_and_counts_only_its_currency():
    now = at(2026, 12, 11)  # ten days into December
    servers = [
        server("0.25", "USD", booted=at(2026, 11, 1)),  # 240 h this month: 60 USD
        server("0.10", "USD", booted=at(2026, 12, 10)),  # 24 h: 2.40 USD
        server("9", "EUR", booted=at(2026, 11, 1)),  # another currency: left out
        server(None, booted=at(2026, 11, 1)),  # no price: left out
    ]
    below = costs.team_budget(team("100", percent=80), servers, now)
    assert below.spent == Decimal("62.4")
    assert below.used_percent_text == "62"
    assert not below.warning and not below.over
    assert len(below.other_currency) == 1 and len(below.unpriced) == 1

    at_threshold = costs.team_budget(team("78", percent=80), servers, now)
    assert at_threshold.used_percent == 80 and at_threshold.warning and not at_threshold.over

    over = costs.team_budget(team("50"), servers, now)
    assert over.warning and over.over
    assert over.spent_text == "62.40 USD" and over.budget_text == "50.00 USD"


def test_a_team_without_a_budget_never_warns():
    figures = costs.team_budget(
        team(None), [server("100", booted=at(2026, 12, 1))], at(2026, 12, 9)
    )
    assert not figures.has_budget and not figures.warning
    assert figures.spent == Decimal("19200")
