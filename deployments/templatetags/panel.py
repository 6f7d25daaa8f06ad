"""Small display filters for the panel's pages."""

from datetime import timedelta

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import pgettext

from ..access import two_factor_needed_message
from ..audit import action_label
from ..step_titles import step_title as translated_step_title

register = template.Library()


def duration_units() -> dict[str, str]:
    """The words durations are written with, in the page's language (static/js/run_steps.js
    counts up with the same words: base.html hands them to it with
    {% duration_unit_attributes %})."""
    return {
        "h": pgettext("hours, in a duration such as 2 h 3 min", "h"),
        "min": pgettext("minutes, in a duration such as 1 min 5 s", "min"),
        "s": pgettext("seconds, in a duration such as 8 s", "s"),
    }


@register.filter
def duration(value: timedelta | None) -> str:
    """A timedelta as people read it: "8 s", "1 min 5 s", "2 h 3 min" (a part that is 0 left
    out after the first), in the page's language; empty when there is none. Whole seconds,
    rounded down, as the page's counter shows them."""
    if value is None:
        return ""
    seconds = max(0, int(value.total_seconds()))
    units = duration_units()
    minutes, secs = divmod(seconds, 60)
    if not minutes:
        parts = [(secs, "s")]
    elif minutes < 60:
        parts = [(minutes, "min"), (secs, "s")]
    else:
        hours, minutes = divmod(minutes, 60)
        parts = [(hours, "h"), (minutes, "min")]
    return " ".join(
        f"{number} {units[unit]}" for i, (number, unit) in enumerate(parts) if number or not i
    )


@register.simple_tag
def duration_unit_attributes() -> str:
    """data-unit-* attributes with duration_units' words, for the script tag that counts up."""
    units = duration_units()
    return format_html(
        'data-unit-h="{}" data-unit-min="{}" data-unit-s="{}"', units["h"], units["min"], units["s"]
    )


@register.filter
def step_title(name: str) -> str:
    """A pipeline step's name in the language of the page: {{ step.name|step_title }}."""
    return translated_step_title(name)


@register.filter
def audit_action(action: str) -> str:
    """An audit action's name on the Audit page: {{ event.action|audit_action }}."""
    return action_label(action)


@register.filter
def port_list(ports) -> str:
    """A service's published ports as "3000:3000, 9997"; they come as strings or mappings."""
    if not ports:
        return ""
    if isinstance(ports, str | int):
        ports = [ports]
    shown = []
    for port in ports:
        if isinstance(port, dict):
            published = port.get("published") or port.get("host") or port.get("PublicPort")
            target = port.get("target") or port.get("container") or port.get("PrivatePort")
            text = f"{published}:{target}" if published else str(target)
        else:
            text = str(port)
        # Docker lists a port published on every address once for IPv4 (0.0.0.0) and once
        # for IPv6 (::), with the same numbers: one port, shown once.
        if text not in shown:
            shown.append(text)
    return ", ".join(shown)


@register.filter
def detail_items(details) -> list[tuple[str, str]]:
    """An audit event's details as (key, text) pairs; lists joined, other values as text."""
    if not isinstance(details, dict):
        return []
    items = []
    for key, value in details.items():
        if isinstance(value, list | tuple):
            value = ", ".join(str(item) for item in value)
        items.append((str(key), str(value)))
    return items


@register.filter
def bytes_human(value) -> str:
    """1536 -> "1.5 KiB"; "" for a missing value."""
    if value in (None, ""):
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


@register.filter
def diff_lines(diff: str) -> str:
    """A unified diff with its added, removed and hunk lines in spans, escaped."""
    classes = {"+": "add", "-": "del", "@": "hunk"}
    lines = []
    for line in (diff or "").splitlines():
        kind = "" if line.startswith(("+++", "---")) else classes.get(line[:1], "")
        text = escape(line)
        lines.append(format_html('<span class="{}">{}</span>', kind, text) if kind else text)
    return mark_safe("\n".join(lines))  # noqa: S308 (every part is escaped above)


# Where a user turns on two-factor authentication: the account pages' first route that exists.
_ACCOUNT_ROUTES = ("account_index", "mfa_index", "account_change_password")


@register.simple_tag
def account_url() -> str:
    """The address of the user's account page, or "" while the panel has none."""
    for name in _ACCOUNT_ROUTES:
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return ""


@register.filter
def is_two_factor_refusal(message) -> bool:
    """Whether a 403's message is the one a team's owner without two-factor gets."""
    return str(message) == two_factor_needed_message()
