"""The body each kind of channel takes, and how each one is signed.

Formats, as their makers document them:
- Slack incoming webhooks: POST a JSON payload {"text": "..."} to the webhook URL; the answer is
  a plain-text "ok" (docs.slack.dev/tools/java-slack-sdk/guides/incoming-webhooks,
  api.slack.com/messaging/webhooks).
- Feishu (Lark) custom bot: {"msg_type": "text", "content": {"text": "..."}}. With "signature
  verification" on, the body also carries "timestamp" (seconds, a string) and "sign": the
  HMAC-SHA256 keyed with timestamp + "\\n" + secret, of an empty message, in Base64; the answer
  is JSON whose "code" is 0 on success (open.feishu.cn/document/client-docs/bot-v3/add-custom-bot).
- DingTalk custom robot: {"msgtype": "text", "text": {"content": "..."}}. With "signing" on,
  the URL gets &timestamp=<milliseconds>&sign=<...>: the HMAC-SHA256 keyed with the secret, of
  timestamp + "\\n" + secret, in Base64, URL-encoded; the answer is JSON whose "errcode" is 0
  (open.dingtalk.com, custom robot security settings).
- WeCom group robot: {"msgtype": "text", "text": {"content": "..."}} to
  qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...; the key in the URL is the only credential;
  the answer is JSON whose "errcode" is 0 (developer.work.weixin.qq.com/document/path/91770).
- The panel's own webhook: a JSON body, and X-Panel-Signature: sha256=<hex HMAC-SHA256 of the
  body's bytes, keyed with the channel's signing secret>, the way GitHub signs its webhooks, so
  a receiver recomputes it over the bytes it got and compares in constant time.
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from urllib.parse import quote_plus

from ..models import ChannelKind

SIGNATURE_HEADER = "X-Panel-Signature"
EVENT_HEADER = "X-Panel-Event"
# WeCom takes at most 2048 bytes of text; the others more. Long errors are cut to fit.
MAX_TEXT_BYTES = 2000


@dataclass(frozen=True)
class Message:
    """What one notification says, whatever the channel."""

    event: str
    event_label: str
    team: str
    subject: str
    text: str = ""
    url: str = ""
    test: bool = False

    def plain(self) -> str:
        """One text for the chat bots and the e-mail body: subject, details, link."""
        lines = [f"[{self.team}] {self.subject}"]
        if self.text:
            lines.append(self.text)
        if self.url:
            lines.append(self.url)
        return clip("\n".join(lines), MAX_TEXT_BYTES)


@dataclass(frozen=True)
class Request:
    """One HTTP POST: the query to add to the channel's URL, the headers and the body."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "…"


def dump(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def feishu_sign(secret: str, timestamp: int) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return quote_plus(base64.b64encode(digest.digest()).decode())


def build(kind: str, message: Message, secret: str, now: float, sent_at: str = "") -> Request:
    """The request that carries `message` to a channel of `kind`; `now` is the Unix time."""
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    text = message.plain()
    if kind == ChannelKind.SLACK:
        return Request(dump({"text": text}), json_type)
    if kind == ChannelKind.FEISHU:
        payload: dict = {"msg_type": "text", "content": {"text": text}}
        if secret:
            timestamp = int(now)
            payload = {"timestamp": str(timestamp), "sign": feishu_sign(secret, timestamp)} | (
                payload
            )
        return Request(dump(payload), json_type)
    if kind == ChannelKind.DINGTALK:
        query = ""
        if secret:
            timestamp_ms = int(now * 1000)
            query = f"timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"
        return Request(dump({"msgtype": "text", "text": {"content": text}}), json_type, query)
    if kind == ChannelKind.WECOM:
        return Request(dump({"msgtype": "text", "text": {"content": text}}), json_type)
    if kind == ChannelKind.WEBHOOK:
        body = dump(
            {
                "event": message.event,
                "event_label": message.event_label,
                "team": message.team,
                "subject": message.subject,
                "text": message.text,
                "url": message.url,
                "test": message.test,
                "sent_at": sent_at,
            }
        )
        headers = {
            **json_type,
            EVENT_HEADER: message.event,
            SIGNATURE_HEADER: webhook_signature(secret, body),
        }
        return Request(body, headers)
    raise ValueError(f"No HTTP body for a channel of kind {kind!r}.")
