"""The panel's web server: uvicorn serving controlpanel.asgi (pages and websockets) in several
processes on one port.

One process runs Django's synchronous views one at a time, so a single process serves one CPU's
worth of pages however many CPUs the machine has; uvicorn's workers share the listening socket
and the kernel hands each new connection to one of them. Nothing a request needs lives in one
process only: sessions and roles are in the database, the cache and the Channels layer in Redis.
A live log websocket stays on the process that accepted it, with that process's feed of the
container.

    python -m controlpanel.serve [--host H] [--port P] [--processes N]

scripts/start, the panel's image and the tests start the panel this way.
"""

import argparse
import copy
import logging
import os
import sys

import uvicorn
import uvicorn.config

APPLICATION = "controlpanel.asgi:application"
# Longer than a browser or a reverse proxy keeps an idle connection between two clicks: a
# server that closes first races the next request sent on that connection.
KEEP_ALIVE_SECONDS = 75
# A stop (Ctrl-C, docker stop's 10 s) closes open websockets instead of waiting for them.
GRACEFUL_SHUTDOWN_SECONDS = 5
MAX_DEFAULT_PROCESSES = 8


class WithoutQuery(logging.Filter):
    """The access log's lines name the address without its query: a sign-in's return from the
    identity provider carries its one-time code there, and no secret goes to a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.split("?", 1)[0] if isinstance(arg, str) and arg.startswith("/") else arg
                for arg in record.args
            )
        return True


# uvicorn's own logging, with WithoutQuery on its access log (each web process sets it up).
LOG_CONFIG = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
LOG_CONFIG["filters"] = {"without_query": {"()": "controlpanel.serve.WithoutQuery"}}
LOG_CONFIG["handlers"]["access"]["filters"] = ["without_query"]


def default_processes() -> int:
    """One process per CPU this process may use, at most MAX_DEFAULT_PROCESSES."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_PROCESSES))


def command(
    port: int, processes: int = 1, host: str = "127.0.0.1", access_log: bool = False
) -> list[str]:
    """The command line that serves the panel on host:port (for tests and benchmarks)."""
    return [
        *(sys.executable, "-m", "controlpanel.serve", "--host", host, "--port", str(port)),
        *("--processes", str(processes)),
        *(() if access_log else ("--no-access-log",)),
    ]


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m controlpanel.serve", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument(
        "--processes",
        type=positive,
        help="web processes (default: WEB_PROCESSES, else one per CPU, at most 8)",
    )
    parser.add_argument(
        "--no-access-log", dest="access_log", action="store_false", help="no line per request"
    )
    args = parser.parse_args(argv)
    if args.processes is None:
        text = os.environ.get("WEB_PROCESSES") or ""
        try:
            args.processes = positive(text) if text else default_processes()
        except (ValueError, argparse.ArgumentTypeError):
            parser.error(f"WEB_PROCESSES must be a whole number of 1 or more, not {text!r}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    uvicorn.run(
        APPLICATION,
        host=args.host,
        port=args.port,
        workers=args.processes,
        # Django's ASGI handler has no startup or shutdown of its own to run.
        lifespan="off",
        # The panel reads X-Forwarded-For and -Proto itself, from TRUSTED_PROXY_COUNT proxies
        # only (settings.py): the server must hand it the peer's own address.
        proxy_headers=False,
        server_header=False,
        ws="websockets-sansio",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        access_log=args.access_log,
        log_config=LOG_CONFIG,
    )


if __name__ == "__main__":
    main()
