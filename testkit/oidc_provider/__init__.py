"""A real OpenID Connect provider for the account tests: django-oauth-toolkit in a Django
project of its own (this package's settings), served on loopback by a process of its own, with
an SQLite file in a temporary folder, people who log in with a password, and one confidential
client, the panel, that must use PKCE (django-oauth-toolkit's default).

    provider = OIDCProvider(people, redirect_uri=...)
    provider.start()          # returns once its discovery document answers
    back = provider.log_in(authorize_url, "alice")   # the redirect to the panel's callback
    provider.stop()
"""

import html
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urljoin, urlparse

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60
PASSWORD = "provider password 4 tests"


@dataclass(frozen=True)
class Person:
    """Someone with an account at the provider; `email_verified` is what the provider says it
    has checked of the address."""

    username: str
    email: str
    email_verified: bool
    password: str = PASSWORD


class ProviderError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OIDCProvider:
    def __init__(
        self,
        people: list[Person],
        *,
        redirect_uri: str,
        client_id: str = "panel",
    ):
        self.people = {person.username: person for person in people}
        self.redirect_uri = redirect_uri
        self.client_id = client_id
        self.client_secret = secrets.token_urlsafe(32)
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.directory: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="oidc-provider-"))
        (self.directory / "directory.json").write_text(
            json.dumps(
                {
                    "people": [asdict(person) for person in self.people.values()],
                    "client": {
                        "id": self.client_id,
                        "secret": self.client_secret,
                        "redirect_uri": self.redirect_uri,
                    },
                }
            )
        )
        self.port = _free_port()
        env = {
            **_environment(),
            "DJANGO_SETTINGS_MODULE": "testkit.oidc_provider.settings",
            "OIDC_PROVIDER_DIR": str(self.directory),
            "OIDC_PROVIDER_PORT": str(self.port),
            "PYTHONPATH": str(ROOT),
        }
        log = (self.directory / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "serve_provider"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_until_it_answers()

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ProviderError(f"The OIDC provider exited:\n{self.log()}")
            try:
                response = httpx.get(f"{self.url}/.well-known/openid-configuration", timeout=2)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise ProviderError(f"The OIDC provider did not answer in {START_TIMEOUT}s")

    def log(self) -> str:
        path = self.directory / "server.log" if self.directory else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def log_in(self, authorize_url: str, username: str) -> str:
        """What a browser does at the provider: open the authorization request the client sent
        it to, log in there with the person's password, and be sent back. Returns the address
        it sends the browser back to (the client's redirect URI with a code and the state)."""
        person = self.people[username]
        with httpx.Client(timeout=10) as browser:
            response = self._follow(browser, browser.get(authorize_url))
            if "csrfmiddlewaretoken" in response.text:
                csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)
                form = {
                    "csrfmiddlewaretoken": csrf.group(1),
                    "username": person.username,
                    "password": person.password,
                    "next": html.unescape(
                        re.search(r'name="next" value="([^"]*)"', response.text).group(1)
                    ),
                }
                posted = browser.post(str(response.url), data=form)
                response = self._follow(browser, posted)
        if not response.is_redirect:
            raise ProviderError(f"The provider did not send the browser back: {response.text}")
        return urljoin(str(response.url), response.headers["location"])

    def _follow(self, browser: httpx.Client, response: httpx.Response) -> httpx.Response:
        """Follow redirects while they stay at the provider."""
        while response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if urlparse(target).netloc != urlparse(self.url).netloc:
                return response
            response = browser.get(target)
        return response


def _environment() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    return {name: os.environ[name] for name in keep if name in os.environ}
