"""Deploying a stack, measured end to end: the panel's pipeline against compose run by hand.

Each round starts from nothing: the previous round's containers, network and data are removed
(`compose down --volumes`, and the data directories the compose file bind-mounts), so every
database initialises again. The images are present on the engine for both sides.

    (a) the panel: a new Deployment of the stack run in this process by the pipeline runner,
        as a worker runs it (a fresh SQLite database, the SSH target of testkit/target.py whose
        docker drives this machine's engine, images from the local registry): the wall time
        until the run SUCCEEDED, and each step's time from its StepRun row;
    (b) the baseline: the files the panel wrote (docker-compose.yml, .env, config.json; the
        operator's override file stays) written again to the same directory, the same
        `docker-compose ... up -d` run directly on this machine, then the wait a person would
        write: `docker inspect` of the project's containers once a second until every service
        is healthy.

For both sides it also reads, from Docker's health log, when the last service turned healthy,
so each wall time splits into: before compose up, compose up, containers becoming healthy
(the same work on both sides), and the delay until the waiter noticed.

Run from the repository root: python -m bench.deploy   (see bench/README.md)
"""

import argparse
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

AIM = 1.15
ROUNDS = 3
BASELINE_POLL_SECONDS = 1.0
HEALTH_TIMEOUT_SECONDS = 600
COMMAND_TIMEOUT_SECONDS = 600
WORKER = f"bench-deploy:{os.getpid()}"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# The pipeline's steps that bound the phases below (by name, as its StepRun rows record them).
START_STEP = "start services"
WAIT_STEP = "wait until healthy"

NOTES = """
{rounds} rounds, alternating (a) and (b). Before each: compose down --volumes and the stack's
bind-mounted data removed, so every database initialises again. Every image was on the engine
for both sides: the panel's 'pull images' step only checks them against the local registry,
(b) pulls nothing. Health polling: (a) every {poll:g} s (STACK_HEALTH_POLL_SECONDS), over SSH;
(b) every {baseline_poll:g} s, docker inspect on this machine. The services' own health checks
run every 10 s, so both sides notice in steps of about that size. 'last service healthy': the
end of its first passing probe in Docker's health log. 'CPU': CPU seconds of the deploying side
until it noticed, (a) this process and the SSH target's container (sshd, and the docker and
compose commands run there), (b) this process and its docker and compose commands; the engine's
own work is in neither. Everything shares this machine's CPUs with whatever else runs on it:
figures move between runs.
"""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_bench_args(parser: argparse.ArgumentParser) -> argparse.Namespace | None:
    """The arguments of a benchmark with --rounds; None (say why) where it cannot run."""
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        say("Set REDIS_URL (e.g. redis://127.0.0.1:6391/0) to a Redis the bench may use.")
        return None
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sys.path.insert(0, str(ROOT))
    # A stop by signal unwinds like Ctrl-C: containers, target and files are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return args


def run_command(argv: list[str], timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(argv[:3])} ...` exited with {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return result.stdout


def docker_time(text: str) -> float:
    """Unix time of a timestamp in Docker's JSON (RFC 3339, nanoseconds)."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def project_container_ids(project: str) -> list[str]:
    return run_command(
        ["docker", "ps", "--all", "--quiet", "--filter", f"label={PROJECT_LABEL}={project}"]
    ).split()


def healthy_times(project: str) -> dict[str, float]:
    """service -> when it turned healthy: the end of the first passing probe its container's
    health log keeps (one pass makes a container healthy; the log keeps the last five)."""
    ids = project_container_ids(project)
    if not ids:
        return {}
    times = {}
    for container in json.loads(run_command(["docker", "inspect", *ids])):
        service = (container["Config"].get("Labels") or {}).get(SERVICE_LABEL)
        log = (container["State"].get("Health") or {}).get("Log") or []
        passed = [docker_time(probe["End"]) for probe in log if probe.get("ExitCode") == 0]
        if service and passed:
            times[service] = min(passed)
    return times


def container_cpu(container_id: str) -> float | None:
    """CPU seconds a container has used, from its cgroup; None where it is not found."""
    v1 = ("docker/{}", "system.slice/docker-{}.scope")
    for pattern in v1:
        path = Path("/sys/fs/cgroup/cpuacct", pattern.format(container_id), "cpuacct.usage")
        if path.exists():
            return int(path.read_text()) / 1e9
    for pattern in v1:
        path = Path("/sys/fs/cgroup", pattern.format(container_id), "cpu.stat")
        if path.exists():
            fields = dict(line.split() for line in path.read_text().splitlines())
            return int(fields["usage_usec"]) / 1e6
    return None


def process_cpu() -> float:
    """CPU seconds of this process (every thread) and of its finished children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class Round:
    """One deployment, in Unix times; `steps` are the panel's (name -> start, end)."""

    started: float
    up_started: float
    up_ended: float
    healthy_times: dict[str, float]  # service -> its first passing probe
    noticed: float  # when the waiter saw every service healthy
    ended: float
    cpu: float | None  # CPU seconds of the deploying side until it noticed
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def wall(self) -> float:
        return self.ended - self.started

    @property
    def healthy(self) -> float | None:
        """When the last service turned healthy."""
        return max(self.healthy_times.values()) if self.healthy_times else None

    @property
    def containers(self) -> float | None:
        """From compose up's return until the last service turned healthy."""
        return None if self.healthy is None else self.healthy - self.up_ended

    @property
    def own(self) -> float | None:
        """The wall time less the containers' start: the deploying side's own time."""
        return None if self.containers is None else self.wall - self.containers

    def phases(self) -> dict[str, float | None]:
        return {
            "before compose up": self.up_started - self.started,
            "compose up -d": self.up_ended - self.up_started,
            "up done -> last service healthy": self.containers,
            "last healthy -> noticed": None
            if self.healthy is None
            else self.noticed - self.healthy,
            "after noticed": self.ended - self.noticed,
        }


class Bench:
    """The database, the SSH target, the stack, and how to deploy it both ways."""

    def __init__(self, workdir: Path, exits: contextlib.ExitStack, poll: float | None) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "stack"
        os.environ.update(
            {
                "CONTROLPANEL_VAR_DIR": str(workdir),
                "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
                "CHANNELS_PREFIX": f"bench-{secrets.token_hex(4)}",
                "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
                "LOG_LEVEL": "WARNING",
                # Compose projects of their own: tests on the same engine never see them.
                "STACK_PROJECT_PREFIX": f"bench{os.getpid()}d",
                "STACK_HEALTH_TIMEOUT": str(HEALTH_TIMEOUT_SECONDS),
            }
        )
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        if poll is not None:
            settings.STACK_HEALTH_POLL_SECONDS = poll
        self.poll = settings.STACK_HEALTH_POLL_SECONDS

        from deployments.choices import Role
        from testkit.factories import add_member, make_team
        from testkit.stacks import make_deployable_stack, stack_target
        from testkit.target import prepare_image

        self.image = prepare_image()
        self.target = exits.enter_context(stack_target(self.image, self.data_dir))
        team = make_team("bench")
        self.operator = add_member(team, role=Role.OPERATOR)
        self.stack = make_deployable_stack(team, self.target, self.data_dir)
        exits.callback(self.reset)

        from deployments.stacks.files import stack_files
        from deployments.stacks.render import project_name

        self.project = project_name(self.stack)
        # What the stack renders now; replaced by the files the panel wrote once it has.
        self.files = stack_files(self.stack).files

    def services(self) -> dict[str, dict]:
        import yaml

        from deployments.stacks.render import COMPOSE_FILE

        return yaml.safe_load(self.files[COMPOSE_FILE])["services"]

    @property
    def expected(self) -> set[str]:
        return set(self.services())

    def images(self) -> list[str]:
        return sorted({service["image"] for service in self.services().values()})

    def keep_files(self) -> None:
        """The files the panel wrote to the data directory (the operator's override aside):
        (b) writes the very same."""
        from deployments.stacks.compose import OVERRIDE_FILE

        self.files = {
            path.name: path.read_text()
            for path in sorted(self.data_dir.iterdir())
            if path.is_file() and path.name != OVERRIDE_FILE
        }

    def ensure_images(self) -> None:
        """Every image of the compose file on the engine (pulled from the local registry when
        something removed one), so that neither side downloads anything while timed."""
        for image in self.images():
            present = subprocess.run(
                ["docker", "image", "inspect", image], capture_output=True, check=False
            )
            if present.returncode == 0:
                continue
            say(f"    {image} is missing: pulling it (not timed)")
            try:
                run_command(["docker", "pull", image])
            except RuntimeError as error:
                raise RuntimeError(
                    f"{error}\nPush the stack's images first: python -m testkit.images.stack "
                    "and python -m testkit.xinference_env"
                ) from None

    def reset(self) -> None:
        """No container, network or data of the stack left; the operator's override stays."""
        from deployments.stacks.compose import OVERRIDE_FILE
        from testkit.stacks import compose_down

        compose_down(self.stack, volumes=True)
        networks = run_command(
            [
                "docker",
                "network",
                "ls",
                "--quiet",
                "--filter",
                f"label={PROJECT_LABEL}={self.project}",
            ]
        ).split()
        if networks:
            subprocess.run(["docker", "network", "rm", *networks], capture_output=True, check=False)
        if self.data_dir.exists():
            for path in self.data_dir.iterdir():
                if path.name != OVERRIDE_FILE:
                    remove_path(path, self.image)

    # (a) the panel

    def panel(self) -> Round:
        from deployments.actions.stacks import do_deploy_stack
        from deployments.choices import RunStatus
        from deployments.models import PipelineRun
        from deployments.pipelines import runner

        target_cpu = container_cpu(self.target.container_id)
        cpu = process_cpu()
        started = time.time()
        deployment = do_deploy_stack(self.stack, user=self.operator)
        runner.run(deployment.run_id, WORKER)
        ended = time.time()
        cpu = process_cpu() - cpu
        # The target's sshd and the docker and compose commands it runs count too.
        cpu = (
            None
            if target_cpu is None
            else cpu + container_cpu(self.target.container_id) - target_cpu
        )
        run = PipelineRun.objects.get(pk=deployment.run_id)
        if run.status != RunStatus.SUCCEEDED:
            raise RuntimeError(f"The deployment ended {run.status}: {run.error}")
        self.keep_files()
        steps = {
            step.name: (step.started_at.timestamp(), step.finished_at.timestamp())
            for step in run.steps.order_by("index")
        }
        return Round(
            started=started,
            up_started=steps[START_STEP][0],
            up_ended=steps[START_STEP][1],
            healthy_times=healthy_times(self.project),
            noticed=steps[WAIT_STEP][1],
            ended=ended,
            cpu=cpu,
            steps=steps,
        )

    # (b) the baseline

    def compose(self) -> list[str]:
        from deployments.stacks.compose import OVERRIDE_FILE
        from deployments.stacks.render import COMPOSE_FILE, ENV_FILE

        directory = str(self.data_dir)
        return [
            *("docker-compose", "--project-name", self.project, "--project-directory", directory),
            *("--file", f"{directory}/{COMPOSE_FILE}", "--file", f"{directory}/{OVERRIDE_FILE}"),
            *("--env-file", f"{directory}/{ENV_FILE}"),
        ]

    def health(self) -> dict[str, str]:
        """service -> health status, as `docker inspect` says now."""
        ids = project_container_ids(self.project)
        if not ids:
            return {}
        template = (
            f'{{{{index .Config.Labels "{SERVICE_LABEL}"}}}} '
            "{{if .State.Health}}{{.State.Health.Status}}{{end}}"
        )
        lines = run_command(["docker", "inspect", "--format", template, *ids]).splitlines()
        return dict((line.split(" ", 1) + [""])[:2] for line in lines if line.strip())

    def baseline(self) -> Round:
        from deployments.stacks.render import SECRET_FILES

        cpu = process_cpu()
        started = time.time()
        for name, text in self.files.items():
            path = self.data_dir / name
            path.write_text(text)
            path.chmod(0o600 if name in SECRET_FILES else 0o644)
        up_started = time.time()
        run_command([*self.compose(), "up", "-d", "--remove-orphans"])
        up_ended = time.time()
        while True:
            health = self.health()
            if all(health.get(name) == "healthy" for name in self.expected):
                break
            if time.time() - started > HEALTH_TIMEOUT_SECONDS:
                raise RuntimeError(f"Not healthy after {HEALTH_TIMEOUT_SECONDS} s: {health}")
            time.sleep(BASELINE_POLL_SECONDS)
        noticed = time.time()
        cpu = process_cpu() - cpu
        return Round(
            started=started,
            up_started=up_started,
            up_ended=up_ended,
            healthy_times=healthy_times(self.project),
            noticed=noticed,
            ended=noticed,
            cpu=cpu,
        )


def remove_path(path: Path, image: str) -> None:
    """Remove what a container wrote (its owner may be a user of the container's), falling
    back to a container of IMAGE when this process may not."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except PermissionError:
        subprocess.run(
            ["docker", "run", "--rm", "--volume", f"{path.parent}:/wipe", image]
            + ["rm", "-rf", f"/wipe/{path.name}"],
            capture_output=True,
            check=False,
            timeout=120,
        )


def measure(bench: Bench, rounds: int) -> tuple[list[Round], list[Round]]:
    panels, baselines = [], []
    for number in range(1, rounds + 1):
        for side, deploy, results in (
            ("(a) panel", bench.panel, panels),
            ("(b) compose by hand", bench.baseline, baselines),
        ):
            bench.reset()
            bench.ensure_images()
            say(f"round {number}/{rounds}: {side} ...")
            result = deploy()
            results.append(result)
            lag = result.phases()["last healthy -> noticed"]
            say(
                f"    {result.wall:.1f} s"
                + ("" if lag is None else f" (last service healthy {lag:.1f} s before noticed)")
            )
    bench.reset()
    return panels, baselines


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None and not math.isnan(value)]
    return statistics.median(present) if present else None


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print()


def report(bench: Bench, panels: list[Round], baselines: list[Round]) -> None:
    ratios = [a.wall / b.wall for a, b in zip(panels, baselines, strict=True)]
    rows = [
        (str(number), f"{a.wall:.1f}", f"{b.wall:.1f}", f"{ratio:.2f}")
        + (seconds(a.containers), seconds(b.containers), seconds(a.cpu), seconds(b.cpu))
        for number, (a, b, ratio) in enumerate(zip(panels, baselines, ratios, strict=True), 1)
    ]
    panel_median = statistics.median(a.wall for a in panels)
    baseline_median = statistics.median(b.wall for b in baselines)
    ratio_median = statistics.median(ratios)
    rows.append(
        ("median", f"{panel_median:.1f}", f"{baseline_median:.1f}", f"{ratio_median:.2f}")
        + (seconds(median([a.containers for a in panels])),)
        + (seconds(median([b.containers for b in baselines])),)
        + (seconds(median([a.cpu for a in panels])), seconds(median([b.cpu for b in baselines])))
    )
    verdict = "met" if ratio_median <= AIM else "NOT met"
    print()
    print(f"Deploying the stack ({len(bench.expected)} services) from empty data, images present:")
    print()
    header = ("round", "(a) panel s", "(b) by hand s", "a/b", "start (a)", "start (b)")
    header += ("CPU (a) s", "CPU (b) s")
    table(header, rows)
    print(f"Aim: a/b at most {AIM:.2f} (median of the rounds' ratios): {verdict}.")
    own_a = median([a.own for a in panels])
    own_b = median([b.own for b in baselines])
    if own_a is not None and own_b is not None:
        print(
            textwrap.fill(
                "'start': from compose up's return to the last service's first passing health "
                "probe, the containers' own work, the same on both sides but the most variable "
                f"part here. The rest, median: (a) {own_a:.1f} s, (b) {own_b:.1f} s; with the "
                f"same start on both sides (b's median wall), a/b would be "
                f"{(baseline_median + own_a - own_b) / baseline_median:.2f}.",
                width=96,
            )
        )
    print()

    phase_rows = []
    for name in panels[0].phases():
        a = median([result.phases()[name] for result in panels])
        b = median([result.phases()[name] for result in baselines])
        difference = None if a is None or b is None else a - b
        phase_rows.append((name, seconds(a), seconds(b), seconds(difference)))
    table(("phase, median s", "(a) panel", "(b) by hand", "a - b"), phase_rows)

    service_rows = []
    for service in sorted(bench.expected):
        a = median([r.healthy_times.get(service, math.nan) - r.up_ended for r in panels])
        b = median([r.healthy_times.get(service, math.nan) - r.up_ended for r in baselines])
        service_rows.append((service, seconds(a), seconds(b)))
    table(("healthy after compose up, median s", "(a) panel", "(b) by hand"), service_rows)

    names = list(panels[0].steps)
    step_rows = []
    for name in names:
        times = [a.steps[name][1] - a.steps[name][0] for a in panels if name in a.steps]
        step_rows.append(
            (name, f"{statistics.median(times):.2f}", f"{min(times):.2f}-{max(times):.2f}")
        )
    between = [a.wall - sum(end - start for start, end in a.steps.values()) for a in panels]
    step_rows.append(
        (
            "outside the steps",
            f"{statistics.median(between):.2f}",
            f"{min(between):.2f}-{max(between):.2f}",
        )
    )
    table(("(a) panel step", "median s", "range"), step_rows)

    notes = NOTES.format(rounds=len(panels), poll=bench.poll, baseline_poll=BASELINE_POLL_SECONDS)
    print(textwrap.fill(" ".join(notes.split()), width=96))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="deployments of each side")
    parser.add_argument(
        "--poll",
        type=float,
        default=None,
        help="the panel's health polling interval in seconds for (a) "
        "(default: STACK_HEALTH_POLL_SECONDS)",
    )
    args = parse_bench_args(parser)
    if args is None:
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="bench-deploy-", ignore_cleanup_errors=True) as workdir,
        contextlib.ExitStack() as exits,
    ):
        say("Preparing the SSH target and the stack ...")
        bench = Bench(Path(workdir), exits, args.poll)
        say(f"    compose project {bench.project}, images: {', '.join(bench.images())}")
        panels, baselines = measure(bench, args.rounds)
    report(bench, panels, baselines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
