"""Sending one message to one channel, and recording how it went on the channel.

A webhook's host is resolved once; unless an owner allows private addresses on the channel,
an address on loopback, link-local (cloud metadata services), a private or reserved range or
one of the panel's own is refused before anything is sent; then that very address is connected
to (the name goes in Host and in TLS's SNI, and the certificate is checked against it), so a
name cannot resolve to somewhere else between the check and the request. Redirects are not
followed: one could lead anywhere.
"""

import contextvars
import ipaddress
import logging
import smtplib
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import addresses
from ..models import ChannelKind, NotificationChannel
from . import formats

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
# Tries of one notification on one channel: the first and up to five retries, waiting
# 30 s, 1, 2, 4 and 8 minutes between them.
MAX_RETRIES = 5
FIRST_RETRY_SECONDS = 30
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
USER_AGENT = "controlpanel-notifications/1"
# Set while a channel's request is under way: httpx logs each request's whole URL, and a chat
# service's URL holds its token.
_sending = contextvars.ContextVar("notification_sending", default=False)


class _WithoutChannelURLs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _sending.get()


logging.getLogger("httpx").addFilter(_WithoutChannelURLs())


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str
    # Whether trying again later may help (a timeout, a 5xx), or not (a refused address).
    retry: bool = False


class Refused(Exception):
    """The channel's address is one the panel does not send to."""


def retry_countdown(retries_done: int) -> int | None:
    """Seconds to wait before the next try after `retries_done` retries; None: give up."""
    if retries_done >= MAX_RETRIES:
        return None
    return FIRST_RETRY_SECONDS * 2**retries_done


def split_addresses(text: str) -> list[str]:
    parts = text.replace(",", "\n").replace(";", "\n").splitlines()
    return list(dict.fromkeys(part.strip() for part in parts if part.strip()))


def private_reason(address: addresses.Address) -> str | None:
    """Why `address` is off limits without the channel's "allow private addresses"."""
    reason = addresses.local_reason(address)
    if reason:
        return reason
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    shared = ipaddress.ip_network("100.64.0.0/10")
    if address.is_private or (address.version == 4 and address in shared):
        return _("a private address")
    if address.is_reserved:
        return _("a reserved address")
    return None


def pinned_address(host: str, port: int, allow_private: bool) -> addresses.Address:
    """The address to connect to for `host`, checked unless private ones are allowed."""
    try:
        resolved = addresses.resolve(host, port)
    except (socket.gaierror, UnicodeError) as error:
        raise Refused(
            _("%(host)s could not be resolved: %(error)s") % {"host": host, "error": error}
        ) from error
    if not resolved.addresses:
        raise Refused(_("%(host)s has no address.") % {"host": host})
    if not allow_private:
        for address in resolved.addresses:
            reason = private_reason(address)
            if reason:
                shown = host if str(address) == host else f"{host} ({address})"
                raise Refused(
                    _(
                        "%(host)s is %(reason)s: the panel does not send there unless an owner "
                        "allows private addresses on this channel."
                    )
                    % {"host": shown, "reason": reason}
                )
    return resolved.addresses[0]


def url_hint(url: str) -> str:
    """What pages show of a webhook URL: its scheme and host, never its path or query (where
    the chat services put the token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    if parts.port:
        shown = f"{shown}:{parts.port}"
    return f"{parts.scheme}://{shown}/…"


def _scrubbed(text: str, channel: NotificationChannel) -> str:
    """`text` without the channel's URL (its token) or secret, which an error may quote."""
    for secret in (channel.target, channel.secret, urlsplit(channel.target).query):
        if secret and len(secret) > 3:
            text = text.replace(secret, "…")
    return text


def post(channel: NotificationChannel, request: formats.Request, transport=None) -> Outcome:
    """POST `request` to the channel's URL, at the address checked for it."""
    parts = urlsplit(channel.target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Outcome(False, _("The channel's URL is not an http(s) address."))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = pinned_address(parts.hostname, port, channel.allow_private)
    except Refused as error:
        return Outcome(False, str(error))
    host = f"[{address}]" if address.version == 6 else str(address)
    query = "&".join(part for part in (parts.query, request.query) if part)
    url = urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", query, ""))
    headers = {
        "Host": parts.netloc.rpartition("@")[2],
        "User-Agent": USER_AGENT,
        **request.headers,
    }
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    token = _sending.set(True)
    try:
        with httpx.Client(
            timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False, transport=transport
        ) as client:
            response = client.post(
                url, content=request.body, headers=headers, extensions=extensions
            )
    except httpx.TimeoutException:
        return Outcome(
            False,
            _("%(host)s did not answer within %(seconds)s seconds.")
            % {"host": parts.hostname, "seconds": TIMEOUT_SECONDS},
            retry=True,
        )
    except httpx.HTTPError as error:
        return Outcome(
            False,
            _("Could not reach %(host)s: %(error)s")
            % {
                "host": parts.hostname,
                "error": _scrubbed(str(error) or type(error).__name__, channel),
            },
            retry=True,
        )
    finally:
        _sending.reset(token)
    logger.info(
        "Notification channel %s: POST %s answered %s",
        channel.pk,
        url_hint(channel.target),
        response.status_code,
    )
    return judge(channel, response)


def judge(channel: NotificationChannel, response: httpx.Response) -> Outcome:
    """Whether the receiver took the message: its status, and for the chat services the error
    code in their JSON answer (they answer 200 to a bad signature)."""
    status = response.status_code
    excerpt = _scrubbed(response.text[:300].strip(), channel)
    if status >= 300:
        retry = status >= 500 or status in (408, 429)
        return Outcome(
            False,
            _("The receiver answered %(status)s: %(body)s") % {"status": status, "body": excerpt},
            retry=retry,
        )
    code_field = {
        ChannelKind.FEISHU: "code",
        ChannelKind.DINGTALK: "errcode",
        ChannelKind.WECOM: "errcode",
    }.get(channel.kind)
    if code_field:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        code = answer.get(code_field) if isinstance(answer, dict) else None
        if code not in (0, None) or not isinstance(answer, dict):
            message = answer.get("msg") or answer.get("errmsg") if isinstance(answer, dict) else ""
            return Outcome(
                False,
                _("The receiver refused the message (code %(code)s): %(message)s")
                % {"code": code, "message": _scrubbed(str(message or excerpt), channel)},
                retry=True,
            )
    return Outcome(True, _("The receiver answered %(status)s.") % {"status": status})


def send_email(channel: NotificationChannel, message: formats.Message) -> Outcome:
    if settings.EMAIL_BACKEND == SMTP_BACKEND and not settings.EMAIL_HOST:
        return Outcome(False, _("Mail is not set up: the panel's EMAIL_HOST setting is empty."))
    recipients = split_addresses(channel.target)
    if not recipients:
        return Outcome(False, _("The channel has no e-mail address."))
    subject = formats.clip(f"[{message.team}] {message.subject}".replace("\n", " "), 200)
    email = EmailMessage(
        subject,
        message.plain(),
        settings.DEFAULT_FROM_EMAIL,
        recipients,
        connection=get_connection(timeout=TIMEOUT_SECONDS),
    )
    try:
        email.send()
    except smtplib.SMTPRecipientsRefused as error:
        return Outcome(
            False,
            _("The mail server refused the addresses: %(addresses)s")
            % {"addresses": ", ".join(error.recipients)},
        )
    except (smtplib.SMTPException, OSError) as error:
        return Outcome(
            False,
            _("The mail server could not take the message: %(error)s") % {"error": error},
            retry=True,
        )
    return Outcome(
        True,
        _("The mail server took the message for %(addresses)s.")
        % {"addresses": ", ".join(recipients)},
    )


def deliver(channel: NotificationChannel, message: formats.Message, *, transport=None) -> Outcome:
    """Send `message` to `channel` once, and record how it went on the channel."""
    if channel.kind == ChannelKind.EMAIL:
        outcome = send_email(channel, message)
    else:
        request = formats.build(
            channel.kind, message, channel.secret, time.time(), timezone.now().isoformat()
        )
        outcome = post(channel, request, transport=transport)
    record(channel, outcome)
    return outcome


def record(channel: NotificationChannel, outcome: Outcome) -> None:
    now = timezone.now()
    rows = NotificationChannel.objects.filter(pk=channel.pk)
    if outcome.ok:
        rows.update(last_success_at=now)
        channel.last_success_at = now
    else:
        rows.update(last_error=outcome.detail, last_error_at=now)
        channel.last_error, channel.last_error_at = outcome.detail, now
        logger.info("Notification channel %s failed: %s", channel.pk, outcome.detail)


def attempt(channel_id: int, message: formats.Message, retries_done: int) -> int | None:
    """One try from the task: the seconds to wait before the next, or None when done (sent,
    gone, switched off, or failed for good)."""
    channel = NotificationChannel.objects.filter(pk=channel_id).select_related("team").first()
    if channel is None or not channel.enabled:
        return None
    outcome = deliver(channel, message)
    if outcome.ok or not outcome.retry:
        return None
    return retry_countdown(retries_done)
