"""Live logs, measured end to end: container -> docker logs over SSH -> the web process ->
websocket.

The panel runs as it does in production: one web process (controlpanel.serve) serving
controlpanel.asgi:application, a
SQLite database, Redis for channels, and a Server row pointing at an SSH target (testkit/target.py)
whose docker command reaches this machine's engine. Each figure is compared with the same
container read directly through the Docker SDK in the same run: the limit of what Docker gives.

    (a) lines/s delivered to one websocket viewer of a container writing as fast as it can
        (with, for scale, the panel's remote command read raw over SSH by this script);
    (b) the delay from a line's write (the writer puts the time in it) to its arrival, at a
        steady 1,000 lines/s: median and p99;
    (c) the resident memory of the web process with 1, 10 and 50 viewers of one container,
        and with 50 more that never read.

Run from the repository root: python -m bench.logs   (see bench/README.md)
"""

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from controlpanel import serve

ROOT = Path(__file__).resolve().parent.parent

# Runs inside the writer container (the SSH target image has python3). argv: count, rate
# (lines/s, 0 = as fast as it can). It says "ready", waits for /tmp/go, then writes
# "<n> <unix time> <padding>" lines.
WRITER = r"""
import os, sys, time
count, rate = int(sys.argv[1]), float(sys.argv[2])
out = sys.stdout.buffer
out.write(b"ready\n"); out.flush()
while not os.path.exists("/tmp/go"):
    time.sleep(0.005)
pad = "x" * 60
if rate <= 0:
    batch = []
    for i in range(count):
        batch.append(f"{i} {time.time():.6f} {pad}\n")
        if len(batch) == 2000:
            out.write("".join(batch).encode()); out.flush(); batch = []
    out.write("".join(batch).encode()); out.flush()
else:
    start = time.time()
    for i in range(count):
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        out.write(f"{i} {time.time():.6f} {pad}\n".encode()); out.flush()
time.sleep(10**9)
"""

# Lines of a "lines" message a viewer keeps to measure delays; the rest it only counts.
FLOOD_LINES = 300_000
STEADY_RATE = 1000
STEADY_SECONDS = 10
VIEWER_STEPS = (1, 10, 50)
IDLE_VIEWERS = 50
SETTLE_SECONDS = 4


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"No VmRSS for process {pid}.")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Panel:
    """The database, the SSH target, the web process, and what a logged-in viewer needs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.env = {
            **os.environ,
            "CONTROLPANEL_VAR_DIR": str(workdir),
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
            "CHANNELS_PREFIX": f"bench-{secrets.token_hex(4)}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.web: subprocess.Popen | None = None
        self.target = None
        self.writers: list = []

    def start(self) -> None:
        from testkit.target import SSHTarget, prepare_image

        self.image = prepare_image()
        self.target = SSHTarget(self.image).start()
        # The target's own address on Docker's bridge, not the published port: a real server
        # has no docker-proxy copying every byte in between (it would take a CPU share here).
        from testkit.docker_engine import docker

        self.ssh_host = (
            docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", self.target.name)
            .stdout.decode()
            .strip()
        ) or self.target.host
        self.ssh_port = 22 if self.ssh_host != self.target.host else self.target.port
        from deployments.choices import Role
        from testkit.factories import add_member, make_server, make_stack, make_team

        team = make_team("bench")
        self.user = add_member(team, role=Role.VIEWER)
        server = make_server(
            team,
            host=self.ssh_host,
            ssh_port=self.ssh_port,
            ssh_user="root",
            ssh_private_key=self.target.key.private_openssh,
        )
        self.stack = make_stack(server)
        from django.test import Client

        client = Client()
        client.force_login(self.user)
        self.cookie = f"sessionid={client.cookies['sessionid'].value}"
        log = open(self.workdir / "web.log", "wb")  # noqa: SIM115 (kept open for the web process)
        self.web = subprocess.Popen(
            serve.command(self.port),
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
                    raise RuntimeError("the web process did not start; see web.log") from None
                time.sleep(0.1)

    def writer(self, name: str, count: int, rate: float):
        """A started writer container and its Service row."""
        from deployments.models import Service
        from testkit.logwriter import LogWriter

        writer = LogWriter(
            self.image, ["python3", "-u", "-c", WRITER, str(count), str(rate)]
        ).start()
        self.writers.append(writer)
        service = Service.objects.create(stack=self.stack, name=name, container_name=writer.name)
        return writer, service

    def url(self, service, tail: int = 1) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/services/{service.pk}/logs/?tail={tail}"

    def close(self) -> None:
        if self.web is not None:
            self.web.terminate()
            try:
                self.web.wait(10)
            except subprocess.TimeoutExpired:
                self.web.kill()
        for writer in self.writers:
            writer.remove()
        if self.target is not None:
            self.target.remove()


def go(writer) -> float:
    """Tell the writer to start; the time it was told."""
    from testkit.docker_engine import docker

    started = time.time()
    docker("exec", writer.name, "touch", "/tmp/go")  # noqa: S108 (inside the container)
    return started


# The limit: the Docker SDK reading the same kind of container on this machine


@dataclass
class Run:
    started: float  # when the writer was told to go
    ended: float  # when the last line came
    delays: list[float]  # write to arrival, seconds, of each line that came
    cpu: float  # CPU seconds of the reading side: the SDK's thread, or the web process
    skipped: int = 0

    @property
    def rate(self) -> float:
        return len(self.delays) / (self.ended - self.started)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def direct(writer, count: int) -> Run:
    """The writer's lines read with the Docker SDK."""
    import docker

    engine = docker.from_env()
    container = engine.containers.get(writer.name)
    arrivals: list[tuple[float, bytes]] = []
    ready = threading.Event()
    cpu: list[float] = []

    def read() -> None:
        # Only what the SDK needs plus a count while it runs, so that its CPU time is the
        # reader's own; the lines are looked at afterwards.
        seen = 0
        frames = container.logs(stream=True, follow=True, timestamps=True, tail=1)
        for frame in frames:
            if not ready.is_set():
                ready.set()
                cpu.append(time.thread_time())
                continue
            arrivals.append((time.time(), frame))
            seen += frame.count(b"\n")
            if seen >= count:
                cpu.append(time.thread_time())
                return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("The SDK reader never saw the writer's ready line.")
    started = go(writer)
    thread.join(600)
    engine.close()
    if len(cpu) < 2:
        raise RuntimeError(f"The SDK reader did not get the {count} lines in time.")
    delays = []
    for now, frame in arrivals:
        for line in frame.decode("utf-8", "replace").splitlines():
            fields = line.split(" ", 3)
            if len(fields) == 4 and fields[1].isdigit():
                delays.append(now - float(fields[2]))
    return Run(started, arrivals[-1][0], delays, cpu[-1] - cpu[0])


# The transport alone: `docker logs --follow` over SSH, read as bytes in this process


def over_ssh(panel: "Panel", writer, count: int) -> Run:
    """The remote command the panel runs, read without splitting lines or any websocket."""
    from deployments.clients.ssh import SSHClient
    from deployments.logs.source import follow_command

    key = panel.target.key.private_openssh
    with (
        SSHClient(panel.ssh_host, panel.ssh_port, "root", private_key=key, allow_local=True) as ssh,
        ssh.stream(follow_command(writer.name, 1)) as stream,
    ):
        while not stream.read(30)[0]:
            pass  # the ready line
        started = go(writer)
        cpu = time.thread_time()
        seen, arrivals = 0, []
        while seen < count:
            data = stream.read(30)[0]
            if not data:
                raise RuntimeError(f"docker logs over SSH gave {seen} of {count} lines.")
            arrivals.append(time.time())
            seen += data.count(b"\n")
        cpu = time.thread_time() - cpu
    return Run(started, arrivals[-1], [0.0] * seen, cpu)


# The panel: a websocket viewer through the web process


class Viewer:
    """A websocket client that acknowledges every message, as the page does."""

    def __init__(self, panel: Panel, service, *, reading: bool = True) -> None:
        self.panel = panel
        self.service = service
        self.reading = reading
        self.lines = 0
        self.skipped = 0
        self.delays: list[float] = []
        self.ready = asyncio.Event()
        self.last_arrival = 0.0
        self.socket = None
        self.task: asyncio.Task | None = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        self.socket = await connect(
            self.panel.url(self.service),
            origin=f"http://127.0.0.1:{self.panel.port}",
            additional_headers={"Cookie": self.panel.cookie},
            max_size=None,
            compression=None,
        )
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.socket:
            now = time.time()
            message = json.loads(raw)
            if message["type"] != "lines":
                if message["state"] == "error":
                    raise RuntimeError(message["message"])
                continue
            if self.reading:
                await self.socket.send(json.dumps({"type": "ack", "seq": message["seq"]}))
            self.skipped += message["skipped"]
            for line in message["lines"]:
                text = line["text"]
                if text == "ready":
                    self.ready.set()
                    continue
                fields = text.split(" ", 2)
                if len(fields) == 3 and fields[0].isdigit():
                    self.delays.append(now - float(fields[1]))
                    self.lines += 1
            self.last_arrival = now

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def through_panel(panel: Panel, writer, service, count: int) -> Run:
    viewer = Viewer(panel, service)
    await viewer.open()
    await asyncio.wait_for(viewer.ready.wait(), 60)
    cpu = cpu_seconds(panel.web.pid)
    started = await asyncio.to_thread(go, writer)
    deadline = time.monotonic() + 600
    while viewer.lines + viewer.skipped < count:
        if viewer.task.done():
            viewer.task.result()
        if time.monotonic() > deadline:
            raise RuntimeError(f"The viewer got {viewer.lines} of {count} lines.")
        await asyncio.sleep(0.005)
    cpu = cpu_seconds(panel.web.pid) - cpu
    await viewer.close()
    return Run(started, viewer.last_arrival, viewer.delays, cpu, viewer.skipped)


async def measure(panel: Panel, args) -> dict:
    results: dict = {}

    if "a" not in args.parts:
        return results
    say(f"(a) {args.flood:,} lines as fast as the writer can, {args.rounds} rounds ...")
    directs, panels, transports = [], [], []
    for round_ in range(args.rounds):
        writer, _ = await asyncio.to_thread(panel.writer, f"flood-direct-{round_}", args.flood, 0)
        directs.append(await asyncio.to_thread(direct, writer, args.flood))
        writer, _ = await asyncio.to_thread(panel.writer, f"flood-ssh-{round_}", args.flood, 0)
        transports.append(await asyncio.to_thread(over_ssh, panel, writer, args.flood))
        writer, service = await asyncio.to_thread(
            panel.writer, f"flood-panel-{round_}", args.flood, 0
        )
        panels.append(await through_panel(panel, writer, service, args.flood))
        say(
            f"    direct {directs[-1].rate:,.0f} lines/s, over SSH {transports[-1].rate:,.0f}, "
            f"panel {panels[-1].rate:,.0f} ({panels[-1].skipped:,} skipped, "
            f"the web process {len(panels[-1].delays) / panels[-1].cpu:,.0f} lines per CPU-second)"
        )
    results["flood"] = (directs, panels)
    results["transport"] = transports
    if "b" not in args.parts:
        return results

    steady = STEADY_RATE * args.seconds
    say(f"(b) {steady:,} lines at {STEADY_RATE:,}/s: Docker SDK ...")
    writer, _ = await asyncio.to_thread(panel.writer, "steady-direct", steady, STEADY_RATE)
    results["direct_delays"] = (await asyncio.to_thread(direct, writer, steady)).delays
    say("(b) ... and the panel's websocket")
    writer, service = await asyncio.to_thread(panel.writer, "steady-panel", steady, STEADY_RATE)
    run = await through_panel(panel, writer, service, steady)
    results["panel_delays"] = run.delays
    results["panel_delays_skipped"] = run.skipped
    for side in ("direct", "panel"):
        delays = [d * 1000 for d in results[f"{side}_delays"]]
        say(
            f"    {side}: median {statistics.median(delays):.1f} ms, "
            f"p99 {percentile(delays, 0.99):.1f} ms, max {max(delays):.1f} ms"
        )

    if "c" not in args.parts:
        return results
    say(f"(c) the web process's memory with {', '.join(map(str, VIEWER_STEPS))} viewers ...")
    many = STEADY_RATE * 3600
    writer, service = await asyncio.to_thread(panel.writer, "memory", many, STEADY_RATE)
    pid = panel.web.pid
    await asyncio.sleep(1)
    results["rss_idle"] = rss_mib(pid)
    viewers: list[Viewer] = []
    first = Viewer(panel, service)
    await first.open()
    await asyncio.wait_for(first.ready.wait(), 60)
    await asyncio.to_thread(go, writer)
    viewers.append(first)
    results["rss"] = {}
    for step in VIEWER_STEPS:
        while len(viewers) < step:
            viewer = Viewer(panel, service)
            await viewer.open()
            viewers.append(viewer)
        await asyncio.sleep(SETTLE_SECONDS)
        results["rss"][step] = rss_mib(pid)
        say(f"    {step} viewers: {results['rss'][step]:.1f} MiB")
    idle = []
    for _ in range(IDLE_VIEWERS):
        viewer = Viewer(panel, service, reading=False)
        await viewer.open()
        idle.append(viewer)
    await asyncio.sleep(SETTLE_SECONDS * 2)
    results["rss_idle_viewers"] = rss_mib(pid)
    results["memory_skipped"] = sum(v.skipped for v in viewers)
    results["memory_lines"] = [v.lines for v in viewers]
    for viewer in viewers + idle:
        await viewer.close()
    return results


def report(results: dict, args) -> None:
    directs, panels = results["flood"]
    direct_rate = statistics.median(run.rate for run in directs)
    panel_rate = statistics.median(run.rate for run in panels)
    ratios = [p.rate / d.rate for p, d in zip(panels, directs, strict=True)]
    # Lines per CPU-second of the reading side alone.
    direct_cpu = statistics.median(len(run.delays) / run.cpu for run in directs)
    panel_cpu = statistics.median(len(run.delays) / run.cpu for run in panels)
    skipped_in_a = sum(run.skipped for run in panels)
    transport_rate = statistics.median(run.rate for run in results["transport"])
    direct_delays = [d * 1000 for d in results["direct_delays"]]
    panel_delays = [d * 1000 for d in results["panel_delays"]]
    rss = results["rss"]
    per_viewer = (rss[VIEWER_STEPS[-1]] - rss[VIEWER_STEPS[0]]) / (
        VIEWER_STEPS[-1] - VIEWER_STEPS[0]
    )
    idle_per_viewer = (results["rss_idle_viewers"] - rss[VIEWER_STEPS[-1]]) / IDLE_VIEWERS
    rows = [
        ("(a) lines/s, writer as fast as it can", f"{panel_rate:,.0f}", f"{direct_rate:,.0f}",
         f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
         "ratio >= 0.8"),
        ("    docker logs over SSH, read raw", f"{transport_rate:,.0f}", "",
         f"{transport_rate / direct_rate:.2f}", ""),
        ("    lines per CPU-second of the reader", f"{panel_cpu:,.0f}", f"{direct_cpu:,.0f}",
         f"{panel_cpu / direct_cpu:.2f}", ""),
        ("(b) delay at 1,000 lines/s, median", f"{statistics.median(panel_delays):.1f} ms",
         f"{statistics.median(direct_delays):.1f} ms",
         f"+{statistics.median(panel_delays) - statistics.median(direct_delays):.1f} ms", ""),
        ("    p99", f"{percentile(panel_delays, 0.99):.1f} ms",
         f"{percentile(direct_delays, 0.99):.1f} ms",
         f"+{percentile(panel_delays, 0.99) - percentile(direct_delays, 0.99):.1f} ms",
         "p99 < 100 ms"),
        ("    max", f"{max(panel_delays):.1f} ms", f"{max(direct_delays):.1f} ms", "", ""),
        ("(c) web process RSS, no viewer", f"{results['rss_idle']:.1f} MiB", "", "", ""),
    ]  # fmt: skip
    for step in VIEWER_STEPS:
        rows.append((f"    {step} viewers reading", f"{rss[step]:.1f} MiB", "", "", ""))
    rows.append(
        (f"    + {IDLE_VIEWERS} viewers never reading", f"{results['rss_idle_viewers']:.1f} MiB",
         "", "", "")
    )  # fmt: skip
    rows.append(("    per extra reading viewer", f"{per_viewer * 1024:.0f} KiB", "", "", "< 1 MB"))
    rows.append(("    per extra idle viewer", f"{idle_per_viewer * 1024:.0f} KiB", "", "", ""))
    header = ("measure", "panel (websocket)", "direct (Docker SDK)", "panel vs direct", "aim")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    print()
    notes = [
        f"(a) medians of {args.rounds} rounds of {args.flood:,} lines; the ratio is per round "
        "(median, range).",
        "    'read raw': the panel's remote command read as bytes by this script, no lines, no",
        "    websocket: what the SSH path gives on this machine. 'CPU-second': lines per CPU",
        "    second of the web process (panel) or of the SDK's reading thread (direct).",
        f"(b) {len(panel_delays):,} lines over {args.seconds} s.",
        f"Lines skipped for the reading viewers: {skipped_in_a} in (a), "
        f"{results['panel_delays_skipped']} in (b), {results['memory_skipped']} in (c).",
    ]
    print("\n".join(notes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=FLOOD_LINES, help="lines in (a)")
    parser.add_argument("--seconds", type=int, default=STEADY_SECONDS, help="length of (b)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of (a), alternating")
    parser.add_argument("--parts", default="abc", help="which measures to take (a, b, c)")
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        say("Set REDIS_URL (e.g. redis://127.0.0.1:6391/0) to a Redis the bench may use.")
        return 2
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as workdir:
        panel = Panel(Path(workdir))
        try:
            panel.start()
            results = asyncio.run(measure(panel, args))
        except BaseException:
            log = Path(workdir) / "web.log"
            if log.exists():
                say("The end of the web process's log:\n" + log.read_text(errors="replace")[-6000:])
            raise
        finally:
            panel.close()
    if args.parts == "abc":
        report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
