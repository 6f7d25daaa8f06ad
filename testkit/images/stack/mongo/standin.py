#!/usr/bin/python3
"""A stand-in for MongoDB 5.0's `mongod` and legacy `mongo` shell; installed under both names.

`mongod` checks its key file as mongod does, records its arguments, creates the root user on the
first start (MONGO_INITDB_ROOT_USERNAME / _PASSWORD, as the official entrypoint does), then
accepts TCP connections on its port and discards what they send: it speaks no wire protocol.

`mongo` connects to that port (so it fails until "mongod" listens), checks -u/-p against the root
user, and evaluates only the --eval expressions the stack uses: ping, hello().isWritablePrimary,
rs.status() and rs.initiate(). The replica set's state lives in the data directory, so a restart
keeps it; every rs.initiate() call is recorded there too. Anything else fails loudly.
"""

import asyncio
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import sys
from pathlib import Path

DBPATH = Path(os.environ.get("MONGO_STANDIN_DBPATH", "/data/db"))
STATE = DBPATH / "standin"
MONGOD_FILE = STATE / "mongod.json"
USERS_FILE = STATE / "users.json"
REPLSET_FILE = STATE / "replset.json"
DEFAULT_PORT = 27017
BASE64 = re.compile(r"^[A-Za-z0-9+/=]+$")
PING = re.compile(r"db\.adminCommand\(\s*(?:'ping'|\"ping\"|\{\s*ping\s*:\s*1\s*\})\s*\)")
WRITABLE_PRIMARY_EXIT = re.compile(
    r"quit\(\s*db\.hello\(\)\.isWritablePrimary\s*\?\s*0\s*:\s*1\s*\)"
)
GUARDED_INITIATE = re.compile(
    r"if\s*\(\s*rs\.status\(\)\.ok\s*!==?\s*1\s*\)\s*\{\s*rs\.initiate\((.*)\)\s*;?\s*\}"
)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _log(message: str) -> None:
    print(json.dumps({"t": _now(), "s": "I", "c": "STANDIN", "msg": message}), flush=True)


def _digest(user: str, password: str) -> str:
    return hashlib.sha256(f"{user}:mongo:{password}".encode()).hexdigest()


def _read(path: Path, default: dict) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def _write(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)


@contextlib.contextmanager
def _locked():
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# mongod ------------------------------------------------------------------------------------------


def _option(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _fatal(message: str) -> None:
    print(json.dumps({"t": _now(), "s": "F", "c": "CONTROL", "msg": message}), flush=True)
    sys.exit(1)


def _check_key_file(path: str) -> None:
    """What mongod checks of a --keyFile before it starts."""
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text()
    except OSError as error:
        _fatal(f"Error reading file {path}: {error.strerror}")
    if mode & 0o077:
        _fatal(f"permissions on {path} are too open")
    key = "".join(text.split())
    if not 6 <= len(key) <= 1024 or not BASE64.match(key):
        _fatal(f"{path}: the key must be 6 to 1024 base64 characters")


async def _discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass
    writer.close()


async def _serve(port: int) -> None:
    server = await asyncio.start_server(_discard, "0.0.0.0", port)  # noqa: S104 (all interfaces)
    _log(f"Waiting for connections on port {port}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
    _log("Shutting down")


def mongod(args: list[str]) -> int:
    key_file = _option(args, "--keyFile")
    if key_file:
        _check_key_file(key_file)
    port = int(_option(args, "--port") or DEFAULT_PORT)
    with _locked():
        starts = _read(MONGOD_FILE, {}).get("starts", 0)
        _write(
            MONGOD_FILE,
            {
                "argv": args,
                "replSet": _option(args, "--replSet"),
                "keyFile": key_file,
                "port": port,
                "starts": starts + 1,
                "startedAt": _now(),
            },
        )
        user = os.environ.get("MONGO_INITDB_ROOT_USERNAME", "")
        password = os.environ.get("MONGO_INITDB_ROOT_PASSWORD", "")
        if bool(user) != bool(password):
            _fatal("Both MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD must be set.")
        # Like the official image: the root user is created on the first start only.
        if user and not USERS_FILE.exists():
            _write(USERS_FILE, {user: _digest(user, password)})
            _log(f"Created root user {user!r}")
    _log(f"mongod stand-in started with {args}")
    asyncio.run(_serve(port))
    return 0


# mongo shell -------------------------------------------------------------------------------------

NOT_YET_INITIALIZED = {
    "ok": 0,
    "errmsg": "no replset config has been received",
    "code": 94,
    "codeName": "NotYetInitialized",
}
UNAUTHORIZED = {"ok": 0, "errmsg": "command requires authentication", "code": 13}


class ShellError(Exception):
    """Printed as the shell prints an uncaught error; the shell then exits 1."""


def _show(value) -> str:
    """A value printed the way the legacy shell prints documents."""
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(key)} : {_show(item)}" for key, item in value.items())
        return "{ " + inner + " }" if inner else "{ }"
    if isinstance(value, list):
        return "[ " + ", ".join(_show(item) for item in value) + " ]"
    return json.dumps(value)


def _js_object(text: str) -> dict:
    """A JavaScript object literal of plain data as a dict."""
    quoted = re.sub(r"'([^'\\]*)'", lambda m: json.dumps(m.group(1)), text)
    keyed = re.sub(r"([{,]\s*)([A-Za-z_$][\w$]*)\s*:", r'\1"\2":', quoted)
    try:
        value = json.loads(keyed)
    except json.JSONDecodeError as error:
        raise ShellError(f"SyntaxError: cannot read {text!r} ({error})") from None
    if not isinstance(value, dict):
        raise ShellError(f"TypeError: the replica set configuration must be an object: {text}")
    return value


class Shell:
    def __init__(self, authenticated: bool) -> None:
        self.authenticated = authenticated
        self.mongod = _read(MONGOD_FILE, {})

    def _replset(self) -> dict:
        return _read(REPLSET_FILE, {"config": None, "initiateCalls": []})

    def status(self) -> dict:
        if not self.authenticated:
            return UNAUTHORIZED
        if not self.mongod.get("replSet"):
            return {"ok": 0, "errmsg": "not running with --replSet", "code": 76}
        config = self._replset()["config"]
        if config is None:
            return NOT_YET_INITIALIZED
        members = [
            {"_id": m.get("_id"), "name": m.get("host"), "health": 1, "stateStr": "PRIMARY"}
            for m in config.get("members", [])
        ]
        return {"set": config["_id"], "myState": 1, "members": members, "ok": 1}

    def hello(self) -> dict:
        replset = self.mongod.get("replSet")
        primary = not replset or self._replset()["config"] is not None
        return {"isWritablePrimary": primary, "setName": replset, "ok": 1}

    def initiate(self, argument: str) -> dict:
        if not self.authenticated:
            return UNAUTHORIZED
        name = self.mongod.get("replSet")
        if argument.strip():
            config = _js_object(argument)
        else:
            config = {"_id": name, "members": [{"_id": 0, "host": f"{socket.gethostname()}:27017"}]}
        with _locked():
            replset = self._replset()
            if not name:
                result = {"ok": 0, "errmsg": "This node was not started with replication enabled."}
                result |= {"code": 76, "codeName": "NoReplicationEnabled"}
            elif replset["config"] is not None:
                result = {"ok": 0, "errmsg": "already initialized", "code": 23}
                result["codeName"] = "AlreadyInitialized"
            elif config.get("_id") != name or not config.get("members"):
                result = {
                    "ok": 0,
                    "errmsg": f"Rejecting initiate with a set name that differs from the "
                    f"command line set name ({name}) or without members",
                    "code": 93,
                    "codeName": "InvalidReplicaSetConfig",
                }
            else:
                replset["config"] = {"version": 1, **config}
                result = {"ok": 1}
            replset["initiateCalls"].append({"at": _now(), "config": config, "ok": result["ok"]})
            _write(REPLSET_FILE, replset)
        return result

    def evaluate(self, code: str) -> tuple[str | None, int]:
        """(what the shell prints, its exit status) for one --eval text."""
        text = " ".join(code.split()).rstrip(";").strip()
        if PING.fullmatch(text):
            return _show({"ok": 1}), 0
        if WRITABLE_PRIMARY_EXIT.fullmatch(text):
            return None, 0 if self.hello()["isWritablePrimary"] else 1
        if text in ("db.hello()", "db.isMaster()"):
            return _show(self.hello()), 0
        if text == "db.hello().isWritablePrimary":
            return _show(self.hello()["isWritablePrimary"]), 0
        if text == "rs.status()":
            return _show(self.status()), 0
        if text == "rs.status().ok":
            return _show(self.status()["ok"]), 0
        initiate = re.fullmatch(r"rs\.initiate\((.*)\)", text)
        if initiate:
            return _show(self.initiate(initiate.group(1))), 0
        guarded = GUARDED_INITIATE.fullmatch(text)
        if guarded:
            if self.status()["ok"] == 1:
                return None, 0
            return _show(self.initiate(guarded.group(1))), 0
        print(f"The mongo shell stand-in cannot evaluate: {code!r}", file=sys.stderr)
        return None, 2


def _shell_options(args: list[str]) -> dict:
    options = {"host": "127.0.0.1", "port": DEFAULT_PORT}
    with_value = {
        "-u": "user",
        "--username": "user",
        "-p": "password",
        "--password": "password",
        "--authenticationDatabase": "authdb",
        "--eval": "eval",
        "--host": "host",
        "--port": "port",
    }
    iterator = iter(args)
    for arg in iterator:
        name, _, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in with_value:
            value = inline or next(iterator, None)
            if value is None:
                raise ShellError(f"Error parsing command line: {name} needs a value")
            options[with_value[name]] = value
        elif arg in ("--quiet", "--norc", "--nodb"):
            options[arg.lstrip("-")] = True
        elif arg.startswith("-"):
            raise ShellError(f"Error parsing command line: unrecognised option '{arg}'")
        else:
            options.setdefault("address", arg)
    return options


def mongo(args: list[str]) -> int:
    try:
        options = _shell_options(args)
        host, port = options["host"], int(options["port"])
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as error:
            raise ShellError(
                f"Error: couldn't connect to server {host}:{port}, connection attempt failed: "
                f"SocketException: Error connecting to {host}:{port} :: caused by :: {error}\n"
                "exception: connect failed"
            ) from None
        authenticated = False
        if "user" in options:
            users = _read(USERS_FILE, {})
            digest = _digest(options["user"], options.get("password", ""))
            if users.get(options["user"]) != digest or options.get("authdb", "test") != "admin":
                raise ShellError("Error: Authentication failed.\nexception: login failed")
            authenticated = True
        if "eval" not in options:
            raise ShellError("The mongo shell stand-in needs --eval; it has no interactive mode.")
        printed, status = Shell(authenticated).evaluate(options["eval"])
    except ShellError as error:
        print(error)
        return 1
    if printed is not None:
        print(printed)
    return status


def main() -> int:
    command = Path(sys.argv[0]).name
    if command == "mongod":
        return mongod(sys.argv[1:])
    if command == "mongo":
        return mongo(sys.argv[1:])
    print(f"Run this as mongod or mongo, not {command}.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
