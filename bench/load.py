"""The panel under load: many users browsing, live log viewers and pipelines at once.

On a fresh SQLite database holding one team's busy history (10,000 deployments, each with its
run, plus servers, stacks, members and audit events, bulk-created), controlpanel.serve serves
controlpanel.asgi:application as scripts/start runs it, and a real Celery worker (testkit's,
with the test pipelines) runs pipelines. Then:

    (b) the baseline: each page asked by one signed-in user, nothing else going on;
    (a) for --seconds: --users signed-in users browsing the main pages in turn (each user its
        own session, its own connection), --viewers websocket clients on a stack's live log
        route, and --pipelines test pipelines kept running at once.

It prints errors, each page's latency p50/p95/p99 under load with its ratio to the baseline,
requests/s, and the resident memory of the web processes and the worker.

Run from the repository root: python -m bench.load   (see bench/README.md)
"""

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.deploy import say, table
from bench.gpu_history import percentile
from bench.logs import free_port, rss_mib
from controlpanel import serve

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENTS = 10_000
SERVERS = 20
STACKS_PER_SERVER = 2
AIM_P95_MS = 300.0
BASELINE_ROUNDS = 10
PAGES = (
    "dashboard",
    "servers",
    "server",
    "stacks",
    "stack",
    "history",
    "deployment",
    "run",
    "audit",
    "search",
)


def rss_tree_mib(pid: int) -> float:
    """RSS of a process and its children (the worker's pool), MiB."""
    total = rss_mib(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(rss_tree_mib(int(child)) for child in children)


class Panel:
    def __init__(self, workdir: Path, users: int, processes: int) -> None:
        self.workdir = workdir
        self.processes = processes
        self.port = free_port()
        self.env = {
            **os.environ,
            "CONTROLPANEL_VAR_DIR": str(workdir),
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
            "CHANNELS_PREFIX": f"bench-{secrets.token_hex(4)}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self.fill(users)
        self.web: subprocess.Popen | None = None
        self.worker = None

    def fill(self, users: int) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.hashers import make_password
        from django.db import transaction
        from django.test import Client

        from deployments.choices import DeploymentAction, Role, RunStatus
        from deployments.models import (
            AuditEvent,
            Deployment,
            Membership,
            PipelineRun,
            Server,
            Stack,
        )
        from testkit.factories import make_team

        say(f"Filling the database: {DEPLOYMENTS:,} deployments ...")
        User = get_user_model()
        with transaction.atomic():
            self.team = make_team("bench")
            people = User.objects.bulk_create(
                [User(username=f"user{n}", password=make_password(None)) for n in range(users)]
            )
            Membership.objects.bulk_create(
                [
                    Membership(team=self.team, user=user, role=Role.OPERATOR if n else Role.OWNER)
                    for n, user in enumerate(people)
                ]
            )
            servers = Server.objects.bulk_create(
                [
                    Server(team=self.team, name=f"gpu-{n}", host=f"203.0.113.{n + 1}")
                    for n in range(SERVERS)
                ]
            )
            stacks = Stack.objects.bulk_create(
                [
                    Stack(
                        team=self.team,
                        server=server,
                        name=f"stack-{n}-{k}",
                        data_dir=f"/opt/fastgpt-{n}-{k}",
                    )
                    for n, server in enumerate(servers)
                    for k in range(STACKS_PER_SERVER)
                ]
            )
            runs = PipelineRun.objects.bulk_create(
                [
                    PipelineRun(
                        team=self.team,
                        kind="deploy",
                        status=RunStatus.FAILED if n % 17 == 0 else RunStatus.SUCCEEDED,
                        created_by=people[n % users],
                    )
                    for n in range(DEPLOYMENTS)
                ],
                batch_size=1000,
            )
            Deployment.objects.bulk_create(
                [
                    Deployment(
                        team=self.team,
                        stack=stacks[n % len(stacks)],
                        user=people[n % users],
                        run=run,
                        action=DeploymentAction.DEPLOY,
                        version_line="fastgpt-4.8.8",
                    )
                    for n, run in enumerate(runs)
                ],
                batch_size=1000,
            )
            AuditEvent.objects.bulk_create(
                [
                    AuditEvent(
                        team=self.team,
                        actor=people[n % users],
                        actor_name=people[n % users].username,
                        action="stack.deploy",
                        target_type="stack",
                        target_id=str(stacks[n % len(stacks)].pk),
                        target_repr=stacks[n % len(stacks)].name,
                    )
                    for n in range(DEPLOYMENTS)
                ],
                batch_size=1000,
            )
        deployment = Deployment.objects.order_by("-pk").first()
        # A deployment's run redirects to the deployment: the run page is a run of its own.
        run = PipelineRun.objects.create(
            team=self.team, kind="server_check", status=RunStatus.SUCCEEDED
        )
        server, stack = servers[0], stacks[0]
        self.paths = {
            "dashboard": "/",
            "servers": "/servers/",
            "server": f"/servers/{server.pk}/",
            "stacks": "/stacks/",
            "stack": f"/stacks/{stack.pk}/",
            "history": "/deployments/",
            "deployment": f"/deployments/{deployment.pk}/",
            "run": f"/runs/{run.pk}/",
            "audit": "/audit/",
            "search": "/search/?q=stack-1",
        }
        self.stack_id = stack.pk
        self.cookies = []
        for user in people:
            client = Client()
            client.force_login(user)
            self.cookies.append(client.cookies["sessionid"].value)
        self.owner = people[0]

    def start(self) -> None:
        from testkit.workers import Worker

        self.worker = Worker(self.workdir / "worker.log", concurrency=2).start()
        log = open(self.workdir / "web.log", "wb")  # noqa: SIM115 (kept open for the server)
        self.web = subprocess.Popen(
            serve.command(self.port, self.processes),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.web.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the web server did not start; see web.log") from None
                time.sleep(0.1)

    def close(self) -> None:
        if self.web is not None:
            self.web.terminate()
            try:
                self.web.wait(10)
            except subprocess.TimeoutExpired:
                self.web.kill()
        if self.worker is not None:
            self.worker.stop()


class Load:
    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.times: dict[str, list[float]] = {name: [] for name in PAGES}
        self.errors: dict[str, int] = {}
        self.stop = False
        self.think = 0.0

    def client(self, cookie: str):
        import httpx

        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.panel.port}",
            cookies={"sessionid": cookie},
            timeout=30,
            follow_redirects=False,
        )

    async def ask(self, client, name: str) -> None:
        began = time.perf_counter()
        try:
            response = await client.get(self.panel.paths[name])
            ok = response.status_code == 200
            why = str(response.status_code)
        except Exception as exc:  # noqa: BLE001 (every failure counts as an error)
            ok, why = False, type(exc).__name__
        if ok:
            self.times[name].append((time.perf_counter() - began) * 1000)
        else:
            key = f"{name}: {why}"
            self.errors[key] = self.errors.get(key, 0) + 1

    async def user(self, number: int) -> None:
        async with self.client(self.panel.cookies[number]) as client:
            step = number  # each user starts on a different page
            if self.think:
                # People arrive over time, not all in the same millisecond: without this the
                # first round is one burst of every user at once, a queue no browsing makes.
                await asyncio.sleep(random.uniform(0, 2 * self.think))
            while not self.stop:
                await self.ask(client, PAGES[step % len(PAGES)])
                step += 1
                if self.think:
                    await asyncio.sleep(random.uniform(0, 2 * self.think))

    async def viewer(self, opened: list, failed: list) -> None:
        from websockets.asyncio.client import connect

        try:
            async with connect(
                f"ws://127.0.0.1:{self.panel.port}/ws/stacks/{self.panel.stack_id}/logs/",
                origin=f"http://127.0.0.1:{self.panel.port}",
                additional_headers={"Cookie": f"sessionid={self.panel.cookies[0]}"},
                ping_interval=None,
            ) as ws:
                opened.append(1)
                while not self.stop:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ws.recv(), 1)
        except Exception as exc:  # noqa: BLE001
            failed.append(type(exc).__name__)

    def pipelines(self, count: int, journal: Path) -> list:
        from deployments.actions.pipelines import do_start_run

        return [
            do_start_run(
                team=self.panel.team,
                kind="testkit.steps",
                params={"journal": str(journal), "sleep": 1},
                user=self.panel.owner,
            )
            for _ in range(count)
        ]

    async def baseline(self, rounds: int) -> dict[str, list[float]]:
        async with self.client(self.panel.cookies[0]) as client:
            for name in PAGES:  # warm-up
                await self.ask(client, name)
            self.times = {name: [] for name in PAGES}
            for _ in range(rounds):
                for name in PAGES:
                    await self.ask(client, name)
        times, self.times = self.times, {name: [] for name in PAGES}
        return times

    async def under_load(self, args) -> dict:
        from deployments.choices import RunStatus
        from deployments.models import PipelineRun

        opened: list = []
        failed: list = []
        viewers = [asyncio.create_task(self.viewer(opened, failed)) for _ in range(args.viewers)]
        journal = self.panel.workdir / "journal.txt"
        running = await asyncio.to_thread(self.pipelines, args.pipelines, journal)
        finished = 0
        users = [asyncio.create_task(self.user(n)) for n in range(args.users)]
        began = time.monotonic()
        rss_web: list[float] = []
        rss_worker: list[float] = []
        while time.monotonic() - began < args.seconds:
            await asyncio.sleep(1)
            rss_web.append(rss_tree_mib(self.panel.web.pid))
            rss_worker.append(rss_tree_mib(self.panel.worker.process.pid))

            def refill(running=running):
                ids = [run.pk for run in running]
                done = PipelineRun.objects.filter(pk__in=ids).exclude(
                    status__in=(RunStatus.QUEUED, RunStatus.RUNNING)
                )
                done_ids = set(done.values_list("pk", flat=True))
                still = [run for run in running if run.pk not in done_ids]
                return still + self.pipelines(len(done_ids), journal), len(done_ids)

            running, count = await asyncio.to_thread(refill)
            finished += count
        elapsed = time.monotonic() - began
        self.stop = True
        await asyncio.gather(*users, *viewers, return_exceptions=True)
        return {
            "elapsed": elapsed,
            "viewers_open": len(opened),
            "viewers_failed": failed,
            "pipelines_done": finished,
            "rss_web": max(rss_web),
            "rss_worker": max(rss_worker),
        }


def ms(value: float) -> str:
    return f"{value:.0f}"


def report(base: dict, load: dict, errors: dict, base_errors: dict, extra: dict, args) -> None:
    rows = []
    total = 0
    for name in PAGES:
        b, a = base[name], load[name]
        total += len(a)
        if not a or not b:
            alone = ms(percentile(b, 0.5)) if b else "-"
            rows.append((name, alone, "-", "-", "-", str(len(a)), "-"))
            continue
        p95 = percentile(a, 0.95)
        rows.append(
            (
                name,
                ms(percentile(b, 0.5)),
                ms(percentile(a, 0.5)),
                ms(p95),
                ms(percentile(a, 0.99)),
                str(len(a)),
                f"{p95 / percentile(b, 0.5):.1f}" + ("" if p95 <= AIM_P95_MS else "  over aim"),
            )
        )
    print(
        f"\n{args.processes} web processes; {args.users} users (reading {args.think:g} s a page), "
        f"{args.viewers} log viewers, "
        f"{args.pipelines} pipelines, "
        f"{extra['elapsed']:.0f} s, {DEPLOYMENTS:,} deployments in the history\n"
    )
    table(
        ("page", "alone p50 ms", "p50 ms", "p95 ms", "p99 ms", "answers", "p95/alone"),
        rows,
    )
    count = sum(errors.values())
    if base_errors:
        print(f"errors of the baseline: {base_errors}")
    print(f"errors: {count}" + "".join(f"\n  {key}: {n}" for key, n in sorted(errors.items())))
    print(f"requests/s: {total / extra['elapsed']:.1f}")
    print(
        f"log viewers: {extra['viewers_open']} opened, "
        f"{len(extra['viewers_failed'])} closed or failed before the end"
        + (
            f" ({', '.join(sorted(set(extra['viewers_failed'])))})"
            if extra["viewers_failed"]
            else ""
        )
    )
    print(f"pipelines finished: {extra['pipelines_done']}")
    print(
        f"RSS (peak): web ({args.processes} processes) {extra['rss_web']:.0f} MiB, "
        f"worker with its pool {extra['rss_worker']:.0f} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--pipelines", type=int, default=5)
    parser.add_argument(
        "--processes",
        type=int,
        default=serve.default_processes(),
        help="web processes (default: as scripts/start, one per CPU)",
    )
    parser.add_argument(
        "--think", type=float, default=0, help="mean seconds a user reads a page (default 0)"
    )
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        say("Set REDIS_URL (e.g. redis://127.0.0.1:6391/0) to a Redis the bench may use.")
        return 2
    sys.path.insert(0, str(ROOT))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench-load-") as workdir:
        panel = Panel(Path(workdir), max(args.users, 1), args.processes)
        import testkit.pipelines  # noqa: F401 (registers the test pipelines here too)

        try:
            say(f"Starting the worker and the web server ({args.processes} processes) ...")
            panel.start()
            load = Load(panel)
            say("Baseline: one user, nothing else ...")
            base = asyncio.run(load.baseline(BASELINE_ROUNDS))
            base_errors, load.errors = load.errors, {}
            say(f"Under load for {args.seconds:.0f} s ...")
            load.think = args.think
            extra = asyncio.run(load.under_load(args))
            report(base, load.times, load.errors, base_errors, extra, args)
        except BaseException:
            log = Path(workdir) / "web.log"
            if log.exists():
                say("The end of the web server's log:\n" + log.read_text(errors="replace")[-4000:])
            raise
        finally:
            panel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
