"""What a rented server costs: since it last started, this calendar month, and a month at its
hourly price; and a team's month so far against its monthly budget.

Plain arithmetic on Decimal, exact until a figure is shown (rounded to cents, half up). The
panel knows when a server last started (its uptime, read at each check), not every start and
stop before: "this month" counts from the later of that start and the month's first moment,
and the pages say from when.

A server that the last check did not reach is counted until it was last seen running (its
last successful check): the panel cannot tell whether it still runs, and does not guess.
"""

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from .choices import ServerStatus

CENT = Decimal("0.01")
SECONDS_PER_HOUR = Decimal(3600)


def hours(span: timedelta) -> Decimal:
    """A time span in hours, exactly (to the microsecond); never negative."""
    if span <= timedelta(0):
        return Decimal(0)
    seconds = Decimal(span.days * 86400 + span.seconds) + Decimal(span.microseconds) / 10**6
    return seconds / SECONDS_PER_HOUR


def cost(price: Decimal, start: datetime, end: datetime) -> Decimal:
    """What `price` an hour comes to from `start` to `end` (nothing where end is earlier)."""
    return price * hours(end - start)


def rounded(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def money(amount: Decimal, currency: str) -> str:
    """An amount as shown: to the cent, with its currency's code ("12.50 USD")."""
    return f"{rounded(amount)} {currency}"


def month_start(now: datetime) -> datetime:
    """The first moment of `now`'s calendar month, in the panel's time zone."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def days_in_month(now: datetime) -> int:
    local = timezone.localtime(now)
    return calendar.monthrange(local.year, local.month)[1]


def month_key(now: datetime) -> str:
    """ "2026-12": which month a budget warning was sent for."""
    return timezone.localtime(now).strftime("%Y-%m")


@dataclass(frozen=True)
class ServerCost:
    priced: bool
    price: Decimal | None
    currency: str
    booted_at: datetime | None
    # Until when the server is counted: now where the last check reached it, else when it was
    # last seen running.
    until: datetime | None
    uptime: timedelta | None
    since_boot: Decimal | None
    # This month is counted from here (the later of the start and the month's first moment).
    month_from: datetime | None
    this_month: Decimal | None
    month_at_rate: Decimal | None

    @property
    def known(self) -> bool:
        """Whether the uptime (and so the costs since it started) is known."""
        return self.uptime is not None

    @property
    def since_boot_text(self) -> str:
        return money(self.since_boot, self.currency) if self.since_boot is not None else ""

    @property
    def this_month_text(self) -> str:
        return money(self.this_month, self.currency) if self.this_month is not None else ""

    @property
    def month_at_rate_text(self) -> str:
        return money(self.month_at_rate, self.currency) if self.month_at_rate is not None else ""


def running_until(server, now: datetime) -> datetime | None:
    """Until when `server` counts as running: now if the last check reached it, else its last
    successful check; None where it was never seen running since it started."""
    if server.booted_at is None:
        return None
    if server.status == ServerStatus.REACHABLE:
        return now
    return server.facts_checked_at


def server_cost(server, now: datetime) -> ServerCost:
    price = server.hourly_price
    currency = server.price_currency
    until = running_until(server, now)
    booted = server.booted_at
    uptime = (until - booted) if until is not None and booted is not None else None
    if uptime is not None and uptime < timedelta(0):
        uptime = timedelta(0)
    month_from = max(booted, month_start(now)) if booted is not None else None
    if price is None:
        return ServerCost(
            priced=False,
            price=None,
            currency=currency,
            booted_at=booted,
            until=until,
            uptime=uptime,
            since_boot=None,
            month_from=month_from,
            this_month=None,
            month_at_rate=None,
        )
    known = uptime is not None
    return ServerCost(
        priced=True,
        price=price,
        currency=currency,
        booted_at=booted,
        until=until,
        uptime=uptime,
        since_boot=cost(price, booted, until) if known else None,
        month_from=month_from,
        this_month=cost(price, month_from, until) if known else None,
        month_at_rate=price * 24 * days_in_month(now),
    )


@dataclass(frozen=True)
class TeamBudget:
    budget: Decimal | None
    currency: str
    warning_percent: int
    # The month so far of the team's servers priced in the budget's currency.
    spent: Decimal
    # Servers the sum leaves out: priced in another currency, or with no price.
    other_currency: list = field(default_factory=list)
    unpriced: list = field(default_factory=list)

    @property
    def has_budget(self) -> bool:
        return self.budget is not None

    @property
    def used_percent(self) -> Decimal | None:
        if self.budget is None:
            return None
        if self.budget == 0:
            return Decimal(100) if self.spent > 0 else Decimal(0)
        return self.spent * 100 / self.budget

    @property
    def used_percent_text(self) -> str:
        used = self.used_percent
        return "" if used is None else str(used.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    @property
    def warning(self) -> bool:
        """Whether the month so far has reached the warning share of the budget."""
        used = self.used_percent
        return used is not None and used >= self.warning_percent

    @property
    def over(self) -> bool:
        return self.budget is not None and self.spent > self.budget

    @property
    def spent_text(self) -> str:
        return money(self.spent, self.currency)

    @property
    def budget_text(self) -> str:
        return money(self.budget, self.currency) if self.budget is not None else ""


def team_budget(team, servers, now: datetime) -> TeamBudget:
    """`team`'s month so far (its `servers`) against its monthly budget."""
    spent = Decimal(0)
    other, unpriced = [], []
    for server in servers:
        figures = server_cost(server, now)
        if not figures.priced:
            unpriced.append(server)
        elif figures.currency != team.budget_currency:
            other.append(server)
        elif figures.this_month is not None:
            spent += figures.this_month
    return TeamBudget(
        budget=team.monthly_budget,
        currency=team.budget_currency,
        warning_percent=team.budget_warning_percent,
        spent=spent,
        other_currency=other,
        unpriced=unpriced,
    )
