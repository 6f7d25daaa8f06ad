"""Real receivers on loopback for the notification tests: an HTTP server that keeps every
request it gets and answers what the test sets, and an SMTP server (aiosmtpd) that keeps every
message."""

import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HTTPReceiver:
    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    answer: bytes = b"ok"
    # Statuses to answer first, in order, before `status`.
    first: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        receiver: HTTPReceiver = self.server.receiver  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
        self.send_response(receiver.first.pop(0) if receiver.first else receiver.status)
        self.send_header("Content-Length", str(len(receiver.answer)))
        self.end_headers()
        self.wfile.write(receiver.answer)

    def log_message(self, *args):
        pass


class http_receiver:
    """`with http_receiver() as receiver:` an HTTP server on 127.0.0.1 in a thread."""

    def __enter__(self) -> HTTPReceiver:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.receiver = HTTPReceiver(server)
        server.receiver = self.receiver  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()
        return self.receiver

    def __exit__(self, *exc):
        self.receiver.server.shutdown()
        self.receiver.server.server_close()
        self.thread.join()


class _Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "message": message_from_bytes(envelope.content),
            }
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class smtp_receiver:
    """`with smtp_receiver() as (port, mailbox):` an SMTP server on 127.0.0.1."""

    def __enter__(self):
        self.mailbox = _Mailbox()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=free_port())
        self.controller.start()
        return self.controller.port, self.mailbox

    def __exit__(self, *exc):
        self.controller.stop()
