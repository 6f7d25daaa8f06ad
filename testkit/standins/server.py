"""The HTTP plumbing both stand-ins share: a threading server, a request log, introspection.

An app answers `handle(Request) -> Response`. The server records every request it gets (method,
path with query, all headers, body) before the app sees it, and serves two paths that are not in
any real API:

    GET  /__standin__/requests   {"requests": [{"time", "method", "path", "headers", "body"}...]}
    POST /__standin__/reset      the app starts over as a fresh process would; the log is emptied

An app raises `Fatal` where the real service would exit: run as a program, the process exits 1;
run in a thread (tests), the server stops and the request that caused it gets no answer. An app
raises `Unanswered` to close a connection without an answer and carry on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

INTROSPECTION_PREFIX = "/__standin__/"
JSON_TYPE = "application/json; charset=utf-8"


class Fatal(Exception):
    """The real service exits here; the message is its last log line."""


class Unanswered(Exception):
    """The request gets no answer: the connection closes (the server is stopping)."""


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    client_ip: str

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""

    def cookies(self) -> dict[str, str]:
        jar = SimpleCookie()
        try:
            jar.load(self.header("Cookie"))
        except CookieError:
            return {}
        return {name: morsel.value for name, morsel in jar.items()}

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    # A streamed body: sent as it comes, and the connection closes after it.
    chunks: Iterable[bytes] | None = None


def dump_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(
    value: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    return Response(status, dump_json(value), [("Content-Type", JSON_TYPE), *headers])


class App(Protocol):
    def handle(self, request: Request) -> Response: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


def log_line(prefix: str, message: str) -> None:
    print(f"{prefix} {message}", file=sys.stderr, flush=True)


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: App, on_fatal: Callable[[str], None]) -> None:
        self.app = app
        self.on_fatal = on_fatal
        self._records: list[dict[str, Any]] = []
        self._records_lock = threading.Lock()
        super().__init__(address, _Handler)

    def record(self, request: Request) -> None:
        entry = {
            "time": time.time(),
            "method": request.method,
            "path": request.target,
            "headers": dict(request.headers.items()),
            "body": request.body.decode("utf-8", errors="replace"),
        }
        with self._records_lock:
            self._records.append(entry)

    def records(self) -> list[dict[str, Any]]:
        with self._records_lock:
            return list(self._records)

    def reset(self) -> None:
        self.app.reset()
        with self._records_lock:
            self._records.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandinServer

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log_line("[http]", format % args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        split = urlsplit(self.path)
        query = {
            key: values[0] for key, values in parse_qs(split.query, keep_blank_values=True).items()
        }
        request = Request(
            method=self.command,
            target=self.path,
            path=split.path,
            query=query,
            headers=self.headers,
            body=body,
            client_ip=self.client_address[0],
        )
        if split.path.startswith(INTROSPECTION_PREFIX):
            self._send(self._introspect(request))
            return
        self.server.record(request)
        try:
            response = self.server.app.handle(request)
        except Unanswered:
            self.close_connection = True
            return
        except Fatal as error:
            # Like a process that exits: no answer, the connection just closes.
            log_line("", str(error))
            self.close_connection = True
            self.server.on_fatal(str(error))
            return
        self._send(response)

    def _introspect(self, request: Request) -> Response:
        name = request.path[len(INTROSPECTION_PREFIX) :]
        if name == "requests" and request.method == "GET":
            return json_response({"requests": self.server.records()})
        if name == "reset" and request.method == "POST":
            self.server.reset()
            return json_response({"reset": True})
        return json_response({"error": f"no stand-in endpoint {request.method} {name}"}, 404)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.chunks is None:
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            return
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        try:
            for chunk in response.chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


class RunningStandin:
    """An app served from a thread on `host`, a free port unless one is given (for tests)."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.fatal: str | None = None
        self.server = StandinServer((host, port), app, on_fatal=self._on_fatal)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.port}"

    def _on_fatal(self, message: str) -> None:
        self.fatal = message
        threading.Thread(target=self.server.shutdown, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.app.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningStandin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_main(
    prog: str,
    make_app: Callable[[Mapping[str, str]], App],
    *,
    default_host: str,
    default_port: int,
    argv: list[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Parse --host/--port, build the app from the environment and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--host", default=default_host)
    parser.add_argument("--port", type=int, default=default_port)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        app = make_app(os.environ)
    except Fatal as error:
        log_line("", str(error))
        return 1

    def exit_now(message: str) -> None:
        os._exit(1)

    server = StandinServer((args.host, args.port), app, on_fatal=exit_now)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log_line("[standin]", f"{prog} listening on {args.host}:{server.server_address[1]}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.close()
    return 0
