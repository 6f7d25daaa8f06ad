"""GPU history at scale: 200 servers with one GPU each, a reading every minute for 30 days.

On a fresh SQLite database (static files collected, as scripts/start does) it simulates the
month minute by minute: each minute one raw row per server (as a check records it), and at
every whole hour the hourly task's compaction (deployments.servers.gpu_history.compact), so
the table ends holding what it holds in steady state: about 48 hours of raw readings and 30
days of hourly ones per GPU. Each server's stack has a model launched every few days. Then:

    (a) the server page of a server with that history, with its chart, for each period
        (6 hours, 24 hours, 7 days, 30 days), through Django's test client as a signed-in
        viewer: p50 and p95 over the rounds;
    (b) the baseline: the same page of a server with no history (no chart: the sentence that
        says so), alternating with (a).

It prints the table's rows (raw and hourly) and its size on disk (SQLite's dbstat: the pages
of the table and of its indexes), and the compaction's time per hourly run.

Run from the repository root: python -m bench.gpu_history   (see bench/README.md)
"""

import argparse
import contextlib
import math
import os
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.deploy import parse_bench_args, say, table

SERVERS = 200
DAYS = 30
ROUNDS = 200
WARM_UP = 20
AIM_P95_MS = 100.0
SPANS = ("6h", "24h", "7d", "30d")
LAUNCH_EVERY = timedelta(days=3)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def setup(workdir: Path) -> None:
    os.environ.update(
        {
            "CONTROLPANEL_VAR_DIR": str(workdir),
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
            "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)


def reading(server_number: int, minute: int) -> tuple[int, int]:
    """(utilisation %, memory used MiB) of a GPU that works in the day and idles at night."""
    hour_of_day = (minute // 60) % 24
    busy = 8 <= hour_of_day < 20 and (server_number + minute // 240) % 3 != 0
    jitter = random.random()
    if busy:
        return 50 + int(jitter * 50), 61_000 + int(jitter * 1024)
    return int(jitter * 4), 18_000 + int(jitter * 1024)


INSERT = (
    "INSERT INTO deployments_gpusample (server_id, gpu_index, at, hourly, memory_used_mib, "
    "memory_total_mib, utilization_percent, memory_used_peak_mib, utilization_peak_percent, "
    "sample_count) VALUES (%s, 0, %s, %s, %s, 81559, %s, %s, %s, 1)"
)


def insert_readings(server_ids: list[int], start, minutes: int, first_minute: int) -> None:
    """One raw row per server for each of `minutes` minutes from `start`, as checks record
    them (plain INSERTs: the ORM's objects would take most of the bench's time)."""
    from django.db import connection

    rows = []
    for minute in range(minutes):
        at = connection.ops.adapt_datetimefield_value(start + timedelta(minutes=minute))
        for number, server_id in enumerate(server_ids):
            utilization, memory = reading(number, first_minute + minute)
            rows.append((server_id, at, False, memory, utilization, memory, utilization))
    with connection.cursor() as cursor:
        cursor.executemany(INSERT, rows)


def simulate(server_ids: list[int], end, days: int) -> None:
    """Readings every minute for `days` up to `end`, compacted as the hourly task does. The
    task runs each hour; here it runs once a simulated day, which leaves the same rows (it
    folds every whole hour past 48 hours, whenever it runs)."""
    from django.db import transaction

    from deployments.servers import gpu_history

    start = (end - timedelta(days=days)).replace(second=0, microsecond=0)
    minutes = int((end - start).total_seconds() // 60)
    day = 24 * 60
    for first in range(0, minutes, day):
        count = min(day, minutes - first)
        with transaction.atomic():
            insert_readings(server_ids, start + timedelta(minutes=first), count, first)
        gpu_history.compact(start + timedelta(minutes=first + count))
        say(f"  simulated day {first // day + 1} of {days}")


def one_hourly_run(server_ids: list[int], end) -> float:
    """The last hour's readings up to `end`, then the hourly compaction at `end`: its seconds."""
    from django.db import transaction

    from deployments.servers import gpu_history

    with transaction.atomic():
        insert_readings(server_ids, end - timedelta(minutes=59), 60, 0)
    began = time.perf_counter()
    gpu_history.compact(end)
    return time.perf_counter() - began


def table_size() -> tuple[str, int]:
    """How the size was measured, and the bytes of the GPU history's table and indexes."""
    from django.db import connection

    with connection.cursor() as cursor:
        try:
            cursor.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name IN "
                "(SELECT name FROM sqlite_master WHERE tbl_name = 'deployments_gpusample')"
            )
            return "SQLite dbstat: table and its indexes", int(cursor.fetchone()[0])
        except Exception:
            path = Path(connection.settings_dict["NAME"])
            return "SQLite file size (no dbstat here): the whole database", path.stat().st_size


def time_pages(client, urls: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Each page asked `rounds` times, in turn, after a warm-up; milliseconds per answer."""
    times: dict[str, list[float]] = {name: [] for name in urls}
    for round_number in range(WARM_UP + rounds):
        for name, url in urls.items():
            began = time.perf_counter()
            response = client.get(url)
            took = (time.perf_counter() - began) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
            if round_number >= WARM_UP:
                times[name].append(took)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=SERVERS)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parse_bench_args(parser)
    if args is None:
        return 2
    random.seed(16)
    with contextlib.ExitStack() as exits:
        workdir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="bench-gpu-")))
        setup(workdir)
        from django.test import Client
        from django.urls import reverse
        from django.utils import timezone

        from deployments.choices import LaunchStatus, Role
        from deployments.llm.presets import PRESETS
        from deployments.models import GpuSample, ModelLaunch
        from testkit.factories import add_member, make_server, make_stack, make_team

        now = timezone.now()
        team = make_team("bench")
        viewer = add_member(team, role=Role.VIEWER)
        servers = [make_server(team, name=f"gpu-{number:03d}") for number in range(args.servers)]
        idle = make_server(team, name="no-history")
        config = PRESETS["qwen2-instruct-7b"].build(team)
        config.save()
        for server in servers:
            stack = make_stack(server)
            at = now - timedelta(days=args.days)
            while at < now:
                launch = ModelLaunch.objects.create(
                    team=team,
                    stack=stack,
                    llm=config,
                    model_uid=config.model,
                    status=LaunchStatus.TERMINATED,
                )
                ModelLaunch.objects.filter(pk=launch.pk).update(created_at=at)
                at += LAUNCH_EVERY
        say(f"Simulating {args.servers} servers x 1 GPU, a reading a minute for {args.days} days")
        began = time.perf_counter()
        server_ids = [server.pk for server in servers]
        simulate(server_ids, now - timedelta(hours=1), args.days)
        simulated = time.perf_counter() - began
        compaction = one_hourly_run(server_ids, now)

        raw = GpuSample.objects.filter(hourly=False).count()
        hourly = GpuSample.objects.filter(hourly=True).count()
        how, size = table_size()
        print(f"GPU history after {args.days} days of {args.servers} servers x 1 GPU, a reading")
        print(f"a minute, compacted every hour (simulated in {simulated:.0f} s):")
        print()
        table(
            ("rows", "raw", "hourly", "size MB", "bytes/row", "hourly compaction ms"),
            [
                (
                    f"{raw + hourly:,}",
                    f"{raw:,}",
                    f"{hourly:,}",
                    f"{size / 1e6:.1f}",
                    f"{size / max(1, raw + hourly):.0f}",
                    f"{compaction * 1000:.0f}",
                )
            ],
        )
        print(f"Size: {how}.")
        print()

        client = Client()
        client.force_login(viewer)
        target = servers[0]
        urls = {"baseline": reverse("server_detail", args=[idle.pk])}
        for span in SPANS:
            urls[span] = reverse("server_detail", args=[target.pk]) + f"?gpu_span={span}"
        times = time_pages(client, urls, args.rounds)
        base50 = statistics.median(times["baseline"])
        base95 = percentile(times["baseline"], 0.95)
        rows = [("no history (b)", f"{base50:.1f}", f"{base95:.1f}", "1.00", "1.00", "")]
        worst = 0.0
        for span in SPANS:
            p50, p95 = statistics.median(times[span]), percentile(times[span], 0.95)
            worst = max(worst, p95)
            rows.append(
                (
                    f"chart, {span} (a)",
                    f"{p50:.1f}",
                    f"{p95:.1f}",
                    f"{p50 / base50:.2f}",
                    f"{p95 / base95:.2f}",
                    "yes" if p95 < AIM_P95_MS else "NO",
                )
            )
        print(f"The server page, {args.rounds} rounds each after {WARM_UP} untimed (Django's")
        print("test client, in-process, a signed-in viewer):")
        print()
        table(
            ("page", "p50 ms", "p95 ms", "p50 a/b", "p95 a/b", f"p95 < {AIM_P95_MS:.0f} ms"),
            rows,
        )
        print(f"Aim: p95 under {AIM_P95_MS:.0f} ms for every period; worst {worst:.1f} ms.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
