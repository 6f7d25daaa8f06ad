"""Sending notifications for real: e-mail to an SMTP server on loopback, and each chat and
webhook format to an HTTP receiver on loopback, signature checked; the backoff on a failing
receiver; and the refusal of addresses the panel must not be sent to."""

import base64
import hashlib
import hmac
import ipaddress
import json
from dataclasses import asdict
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest

from deployments.actions.notifications import do_add_channel
from deployments.choices import Role
from deployments.models import ChannelKind, NotificationChannel, NotificationEvent
from deployments.notifications import sending
from deployments.notifications.formats import Message
from deployments.tasks import send_notification
from testkit.factories import add_member
from testkit.receivers import http_receiver, smtp_receiver

MESSAGE = Message(
    event=NotificationEvent.RUN_FAILED,
    event_label="A run failed",
    team="Alpha",
    subject="Run #7 failed: Deploy",
    text="Step 'pull images' failed: the registry did not answer.",
    url="https://panel.example.com/runs/7/",
)


@pytest.fixture
def owner(team):
    return add_member(team, role=Role.OWNER)


def channel(team, owner, kind, target, **fields) -> tuple[NotificationChannel, str]:
    data = {
        "name": fields.pop("name", kind),
        "target": target,
        "secret": fields.pop("secret", ""),
        "events": fields.pop("events", [NotificationEvent.RUN_FAILED]),
        # The receivers here listen on loopback: an owner allows it on the channel.
        "allow_private": fields.pop("allow_private", True),
        "enabled": True,
    }
    return do_add_channel(team, kind=kind, data=data, user=owner)


def test_a_webhook_carries_the_event_as_json_signed_with_the_shown_secret(team, owner):
    with http_receiver() as receiver:
        hook, secret = channel(team, owner, ChannelKind.WEBHOOK, f"{receiver.url}/hooks/panel")
        outcome = sending.deliver(hook, MESSAGE)

    assert outcome.ok, outcome.detail
    [request] = receiver.requests
    assert request.path == "/hooks/panel"
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Panel-Signature"], expected)
    assert request.headers["X-Panel-Event"] == "run_failed"
    body = json.loads(request.body)
    assert body["event"] == "run_failed"
    assert body["subject"] == MESSAGE.subject
    assert body["text"] == MESSAGE.text
    assert body["url"] == MESSAGE.url
    assert body["team"] == "Alpha"
    assert body["test"] is False


def test_a_webhook_signature_made_with_another_secret_does_not_match(team, owner):
    with http_receiver() as receiver:
        hook, secret = channel(team, owner, ChannelKind.WEBHOOK, receiver.url)
        sending.deliver(hook, MESSAGE)
    [request] = receiver.requests
    forged = "sha256=" + hmac.new(b"whsec_other", request.body, hashlib.sha256).hexdigest()
    assert secret.startswith("whsec_")
    assert request.headers["X-Panel-Signature"] != forged


def test_slack_gets_its_text_payload(team, owner):
    with http_receiver() as receiver:
        slack, _ = channel(team, owner, ChannelKind.SLACK, f"{receiver.url}/services/T1/B2/x")
        outcome = sending.deliver(slack, MESSAGE)
    assert outcome.ok, outcome.detail
    [request] = receiver.requests
    body = json.loads(request.body)
    assert list(body) == ["text"]
    assert body["text"].startswith("[Alpha] Run #7 failed: Deploy\n")
    assert MESSAGE.text in body["text"] and MESSAGE.url in body["text"]


def test_feishu_gets_its_text_message_signed_with_timestamp_and_secret(team, owner):
    with http_receiver() as receiver:
        receiver.answer = b'{"code":0,"msg":"success","data":{}}'
        feishu, _ = channel(
            team,
            owner,
            ChannelKind.FEISHU,
            f"{receiver.url}/open-apis/bot/v2/hook/abc",
            secret="feishu-secret",
        )
        outcome = sending.deliver(feishu, MESSAGE)
    assert outcome.ok, outcome.detail
    body = json.loads(receiver.requests[0].body)
    assert body["msg_type"] == "text"
    assert body["content"]["text"].startswith("[Alpha] Run #7 failed")
    # Feishu's check: HMAC-SHA256 keyed with "<timestamp>\n<secret>" over nothing, Base64.
    key = f"{body['timestamp']}\nfeishu-secret".encode()
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert body["sign"] == expected


def test_feishu_without_a_secret_sends_no_signature(team, owner):
    with http_receiver() as receiver:
        receiver.answer = b'{"code":0}'
        feishu, _ = channel(team, owner, ChannelKind.FEISHU, receiver.url)
        sending.deliver(feishu, MESSAGE)
    body = json.loads(receiver.requests[0].body)
    assert "sign" not in body and "timestamp" not in body


def test_a_feishu_refusal_in_a_200_answer_is_a_failure(team, owner):
    with http_receiver() as receiver:
        receiver.answer = (
            b'{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}'
        )
        feishu, _ = channel(team, owner, ChannelKind.FEISHU, receiver.url, secret="wrong")
        outcome = sending.deliver(feishu, MESSAGE)
    assert not outcome.ok
    assert "19021" in outcome.detail and "sign match fail" in outcome.detail
    feishu.refresh_from_db()
    assert feishu.failing


def test_dingtalk_gets_its_text_message_and_a_signed_query(team, owner):
    with http_receiver() as receiver:
        receiver.answer = b'{"errcode":0,"errmsg":"ok"}'
        url = f"{receiver.url}/robot/send?access_token=tok123"
        dingtalk, _ = channel(team, owner, ChannelKind.DINGTALK, url, secret="SECabc")
        outcome = sending.deliver(dingtalk, MESSAGE)
    assert outcome.ok, outcome.detail
    request = receiver.requests[0]
    body = json.loads(request.body)
    assert body["msgtype"] == "text"
    assert body["text"]["content"].startswith("[Alpha] Run #7 failed")
    query = urlsplit(request.path).query
    params = parse_qs(query)
    assert params["access_token"] == ["tok123"]
    timestamp = params["timestamp"][0]
    # DingTalk's check: HMAC-SHA256 keyed with the secret over "<ms>\n<secret>", Base64,
    # URL-encoded.
    digest = hmac.new(b"SECabc", f"{timestamp}\nSECabc".encode(), hashlib.sha256).digest()
    raw_sign = query.split("sign=", 1)[1].split("&", 1)[0]
    assert unquote_plus(raw_sign) == base64.b64encode(digest).decode()


def test_wecom_gets_its_text_message(team, owner):
    with http_receiver() as receiver:
        receiver.answer = b'{"errcode":0,"errmsg":"ok"}'
        url = f"{receiver.url}/cgi-bin/webhook/send?key=k-1"
        wecom, _ = channel(team, owner, ChannelKind.WECOM, url)
        outcome = sending.deliver(wecom, MESSAGE)
    assert outcome.ok, outcome.detail
    request = receiver.requests[0]
    assert request.path == "/cgi-bin/webhook/send?key=k-1"
    body = json.loads(request.body)
    assert body == {"msgtype": "text", "text": {"content": MESSAGE.plain()}}


def test_e_mail_reaches_a_real_smtp_server(team, owner, settings):
    with smtp_receiver() as (port, mailbox):
        settings.EMAIL_BACKEND = sending.SMTP_BACKEND
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS = False
        settings.DEFAULT_FROM_EMAIL = "panel@example.com"
        mail, _ = channel(team, owner, ChannelKind.EMAIL, "ops@example.com,\noncall@example.com")
        outcome = sending.deliver(mail, MESSAGE)
    assert outcome.ok, outcome.detail
    [received] = mailbox.messages
    assert received["from"] == "panel@example.com"
    assert received["to"] == ["ops@example.com", "oncall@example.com"]
    assert received["message"]["Subject"] == "[Alpha] Run #7 failed: Deploy"
    body = received["message"].get_payload(decode=True).decode()
    assert MESSAGE.text in body and MESSAGE.url in body
    mail.refresh_from_db()
    assert mail.last_success_at is not None and not mail.failing


def test_e_mail_without_a_mail_server_set_up_says_so(team, owner, settings):
    settings.EMAIL_BACKEND = sending.SMTP_BACKEND
    settings.EMAIL_HOST = ""
    mail, _ = channel(team, owner, ChannelKind.EMAIL, "ops@example.com")
    outcome = sending.deliver(mail, MESSAGE)
    assert not outcome.ok and not outcome.retry
    assert "EMAIL_HOST" in outcome.detail


@pytest.fixture
def waits(monkeypatch):
    """The countdown of every retry the task asks Celery for (it still retries)."""
    seen: list[int] = []
    retry = send_notification.retry

    def spy(*args, **kwargs):
        seen.append(kwargs["countdown"])
        return retry(*args, **kwargs)

    monkeypatch.setattr(send_notification, "retry", spy)
    return seen


def test_a_failing_receiver_is_retried_with_growing_waits_then_given_up(team, owner, waits):
    with http_receiver() as receiver:
        receiver.status, receiver.answer = 503, b"down for maintenance"
        hook, _ = channel(team, owner, ChannelKind.WEBHOOK, receiver.url)
        # Run here, as Celery runs a task eagerly: each retry follows at once.
        result = send_notification.apply(args=(hook.pk, asdict(MESSAGE)))
        tries = len(receiver.requests)

    assert waits == [30, 60, 120, 240, 480]
    assert tries == sending.MAX_RETRIES + 1
    # After the last try the task ends instead of failing in the worker's log.
    assert result.state == "SUCCESS"
    hook.refresh_from_db()
    assert hook.failing
    assert "503" in hook.last_error and "down for maintenance" in hook.last_error
    assert hook.last_success_at is None


def test_a_receiver_that_recovers_clears_the_failing_state(team, owner, waits):
    with http_receiver() as receiver:
        receiver.first = [500, 502]
        receiver.status = 204
        hook, _ = channel(team, owner, ChannelKind.WEBHOOK, receiver.url)
        result = send_notification.apply(args=(hook.pk, asdict(MESSAGE)))
        tries = len(receiver.requests)
    assert waits == [30, 60]
    assert tries == 3 and result.state == "SUCCESS"
    hook.refresh_from_db()
    assert not hook.failing and hook.last_success_at is not None
    assert "502" in hook.last_error  # kept, for the record


def test_a_receiver_that_refuses_the_request_is_not_retried(team, owner, waits):
    with http_receiver() as receiver:
        receiver.status, receiver.answer = 404, b"no_team"
        slack, _ = channel(team, owner, ChannelKind.SLACK, receiver.url)
        result = send_notification.apply(args=(slack.pk, asdict(MESSAGE)))
    assert result.state == "SUCCESS"
    assert len(receiver.requests) == 1 and waits == []
    slack.refresh_from_db()
    assert slack.failing and "404" in slack.last_error


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("localhost", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
    ],
)
def test_a_webhook_to_a_local_or_private_address_is_refused_before_sending(
    team, owner, host, words
):
    with http_receiver() as receiver:
        port = urlsplit(receiver.url).port
        hook, _ = channel(
            team, owner, ChannelKind.WEBHOOK, f"http://{host}:{port}/", allow_private=False
        )
        outcome = sending.deliver(hook, MESSAGE)
    assert not outcome.ok and not outcome.retry
    assert words in outcome.detail
    assert "allows private addresses" in outcome.detail
    assert receiver.requests == []
    hook.refresh_from_db()
    assert hook.failing


def test_the_panels_own_address_is_refused():
    own = ipaddress.ip_address("127.0.0.1")
    assert sending.private_reason(own)
    with pytest.raises(sending.Refused):
        sending.pinned_address("127.0.0.1", 80, allow_private=False)
    assert sending.pinned_address("127.0.0.1", 80, allow_private=True) == own


def test_the_connection_goes_to_the_address_that_was_checked(team, owner, monkeypatch):
    """The name is resolved once: the request is sent to that address, with the name as
    Host, so a second lookup cannot lead it elsewhere."""
    seen = []

    def handler(request):
        seen.append((request.url.host, request.headers["host"]))
        return sending.httpx.Response(200, text="ok")

    hook, _ = channel(
        team, owner, ChannelKind.SLACK, "http://hooks.example.test/services/x", allow_private=False
    )
    answers = iter(["93.184.215.14", "127.0.0.1"])
    monkeypatch.setattr(
        sending.addresses,
        "resolve",
        lambda host, port: sending.addresses.Resolved(host, [ipaddress.ip_address(next(answers))]),
    )
    outcome = sending.deliver(hook, MESSAGE, transport=sending.httpx.MockTransport(handler))
    assert outcome.ok, outcome.detail
    assert seen == [("93.184.215.14", "hooks.example.test")]


def test_an_error_never_quotes_the_webhook_token(team, owner):
    # Nothing listens on this port: the connection is refused.
    with http_receiver() as receiver:
        url = f"{receiver.url}/services/T1/B2/sekrit-token-123"
    slack, _ = channel(team, owner, ChannelKind.SLACK, url)
    outcome = sending.deliver(slack, MESSAGE)
    assert not outcome.ok and outcome.retry
    slack.refresh_from_db()
    assert "sekrit-token-123" not in slack.last_error
    assert "sekrit-token-123" not in slack.target_hint


def test_the_log_never_holds_the_webhook_token(team, owner, caplog):
    with http_receiver() as receiver:
        receiver.answer = b'{"errcode":0,"errmsg":"ok"}'
        url = f"{receiver.url}/cgi-bin/webhook/send?key=sekrit-key-456"
        wecom, _ = channel(team, owner, ChannelKind.WECOM, url)
        with caplog.at_level("DEBUG"):
            outcome = sending.deliver(wecom, MESSAGE)
    assert outcome.ok
    assert "answered 200" in caplog.text
    assert "sekrit-key-456" not in caplog.text
