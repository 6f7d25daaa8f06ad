"""A bounded history of each server's GPUs: what every check read, kept for a while.

Each check that reaches a server records one raw row per GPU (memory used and total,
utilisation). Raw rows are kept RAW_KEEP; older ones are folded, per server, GPU and hour,
into one hourly row (the hour's averages, its peaks and how many readings it holds), kept
HOURLY_KEEP; older hourly rows are deleted. `compact` does both; a periodic task runs it.

With a check every minute a GPU holds at most RAW_KEEP in minutes plus HOURLY_KEEP in hours
of rows (2,880 + 720), however long it runs.

`chart` reads a span back for the server page: a few hundred points per GPU, each the average
of the readings (raw and hourly rows alike) in a bucket of POINT_SECONDS, grouped by the
database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import BigIntegerField, Count, F, Func, Max, Sum
from django.utils import timezone

from ..choices import LaunchStatus
from ..models import GpuSample, ModelLaunch, Server

RAW_KEEP = timedelta(hours=48)
HOUR = 3600
HOURLY_KEEP = timedelta(days=30)
BATCH_SIZE = 1000

# The spans the server page offers, by the key its address carries, and the seconds of each
# point of its chart (the average of the readings in them): a few hundred points at most.
SPANS = {
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
POINT_SECONDS = {"6h": 60, "24h": 5 * 60, "7d": HOUR, "30d": 2 * HOUR}
DEFAULT_SPAN = "24h"
# Launches that ran (or run) a model; pending and failed ones put nothing on the GPU.
MARKED_LAUNCHES = (LaunchStatus.LAUNCHING, LaunchStatus.READY, LaunchStatus.TERMINATED)


READINGS = ("index", "memory_used_mib", "memory_total_mib", "utilization_percent")


class EpochSeconds(Func):
    """A datetime column as whole seconds since 1970 (UTC), computed by the database: cheaper
    to group by than a truncated date, and nothing to parse on the way back."""

    output_field = BigIntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        # Stored as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC; strftime rounds to the millisecond,
        # so the fraction goes first. "%%%%s": the template, then the cursor's placeholders,
        # each take one "%" off.
        template = "CAST(strftime('%%%%s', substr(%(expressions)s, 1, 19)) AS INTEGER)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        template = "CAST(FLOOR(EXTRACT(EPOCH FROM %(expressions)s)) AS BIGINT)"
        return self.as_sql(compiler, connection, template=template, **extra)


def _bucket(seconds: int):
    """The start of each reading's bucket of `seconds`, in seconds since 1970."""
    return EpochSeconds("at") / seconds * seconds


def _usable(gpu: dict) -> bool:
    return all(isinstance(gpu.get(key), int) and gpu[key] >= 0 for key in READINGS)


def record(server: Server, gpus: list[dict], at: datetime) -> int:
    """One raw row per GPU of `gpus` (facts' "gpus"); how many.

    A GPU whose memory or utilisation nvidia-smi does not report ("[N/A]", as under MIG) is
    skipped: a guess would read as an idle GPU.
    """
    rows = []
    for gpu in gpus or []:
        if not _usable(gpu):
            continue
        utilization = min(gpu["utilization_percent"], 100)
        rows.append(
            GpuSample(
                server=server,
                gpu_index=gpu["index"],
                at=at,
                memory_used_mib=gpu["memory_used_mib"],
                memory_total_mib=gpu["memory_total_mib"],
                utilization_percent=utilization,
                memory_used_peak_mib=gpu["memory_used_mib"],
                utilization_peak_percent=utilization,
            )
        )
    GpuSample.objects.bulk_create(rows)
    return len(rows)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _weighted(total, count) -> int:
    return round(total / count) if count else 0


@dataclass
class Compacted:
    folded: int = 0  # raw rows folded into hourly ones
    hourly: int = 0  # hourly rows written
    pruned: int = 0  # hourly rows past HOURLY_KEEP deleted


def compact(now: datetime | None = None) -> Compacted:
    """Fold raw rows of whole hours older than RAW_KEEP into hourly rows; delete hourly rows
    older than HOURLY_KEEP. One grouped read, bulk writes, two deletes, in one transaction:
    the grouped read and the raw rows' delete scan the table once each, the rest goes by the
    (server, at) index.

    Rows of an hour that already has an hourly row (readings that arrived late) are folded
    into it, weighted by how many readings each holds, so running this twice changes nothing.
    """
    now = now or timezone.now()
    cutoff = _hour((now - RAW_KEEP).astimezone(UTC))
    done = Compacted()
    with transaction.atomic():
        raw = GpuSample.objects.filter(hourly=False, at__lt=cutoff)
        groups = list(
            raw.annotate(hour=_bucket(HOUR))
            # GPU first: grouped by server first, SQLite walks the (server, at) index and
            # reads the whole table in its order, three times slower than a plain scan.
            .values("gpu_index", "server_id", "hour")
            .annotate(
                count=Count("id"),
                utilization=Sum("utilization_percent"),
                memory=Sum("memory_used_mib"),
                total=Max("memory_total_mib"),
                utilization_peak=Max("utilization_peak_percent"),
                memory_peak=Max("memory_used_peak_mib"),
            )
            .order_by()
        )
        for group in groups:
            group["hour"] = datetime.fromtimestamp(group["hour"], UTC)
        if groups:
            earlier = {
                (row.server_id, row.gpu_index, row.at): row
                # By the (server, at) index: the servers and hours being folded only.
                for row in GpuSample.objects.filter(
                    server_id__in={group["server_id"] for group in groups},
                    at__in={group["hour"] for group in groups},
                    hourly=True,
                )
            }
            new, changed = [], []
            for group in groups:
                key = (group["server_id"], group["gpu_index"], group["hour"])
                count, utilization, memory = (
                    group["count"],
                    group["utilization"],
                    group["memory"],
                )
                row = earlier.get(key)
                if row is not None:
                    utilization += row.utilization_percent * row.sample_count
                    memory += row.memory_used_mib * row.sample_count
                    count += row.sample_count
                    row.utilization_percent = _weighted(utilization, count)
                    row.memory_used_mib = _weighted(memory, count)
                    row.memory_total_mib = max(row.memory_total_mib, group["total"])
                    row.utilization_peak_percent = max(
                        row.utilization_peak_percent, group["utilization_peak"]
                    )
                    row.memory_used_peak_mib = max(row.memory_used_peak_mib, group["memory_peak"])
                    row.sample_count = count
                    changed.append(row)
                    continue
                new.append(
                    GpuSample(
                        server_id=group["server_id"],
                        gpu_index=group["gpu_index"],
                        at=group["hour"],
                        hourly=True,
                        memory_used_mib=_weighted(memory, count),
                        memory_total_mib=group["total"],
                        utilization_percent=_weighted(utilization, count),
                        memory_used_peak_mib=group["memory_peak"],
                        utilization_peak_percent=group["utilization_peak"],
                        sample_count=count,
                    )
                )
            GpuSample.objects.bulk_create(new, batch_size=BATCH_SIZE)
            GpuSample.objects.bulk_update(
                changed,
                [
                    "utilization_percent",
                    "memory_used_mib",
                    "memory_total_mib",
                    "utilization_peak_percent",
                    "memory_used_peak_mib",
                    "sample_count",
                ],
                batch_size=BATCH_SIZE,
            )
            done.folded = raw.delete()[0]
            done.hourly = len(new)
        # Server by server, by the (server, at) index, rather than a scan of the whole table.
        done.pruned = GpuSample.objects.filter(
            server__in=Server.objects.values("pk"), hourly=True, at__lt=now - HOURLY_KEEP
        ).delete()[0]
    return done


# --- reading back, for the server page -------------------------------------------------------


@dataclass
class GpuSummary:
    index: int
    latest_at: datetime
    utilization: int  # at the latest reading
    memory_used_mib: int
    memory_total_mib: int
    utilization_peak: int  # in the span
    memory_peak_mib: int

    @property
    def memory_used_gib(self) -> str:
        return f"{self.memory_used_mib / 1024:.1f}"

    @property
    def memory_total_gib(self) -> str:
        return f"{self.memory_total_mib / 1024:.1f}"


@dataclass
class Chart:
    span: str
    start: datetime
    end: datetime
    # Per GPU: {"index", "memory_total_mib", "points": [[ms, utilisation %, memory MiB], ...]}
    gpus: list[dict] = field(default_factory=list)
    # [{"at": when, "name": model}, ...], oldest first.
    launches: list[dict] = field(default_factory=list)
    summaries: list[GpuSummary] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.gpus

    def data(self) -> dict:
        """What the page's script draws (through json_script)."""
        return {
            "span": self.span,
            "start": _ms(self.start),
            "end": _ms(self.end),
            "gpus": self.gpus,
            "launches": [
                {"at": _ms(launch["at"]), "name": launch["name"]} for launch in self.launches
            ],
        }


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def span_key(value: str | None) -> str:
    return value if value in SPANS else DEFAULT_SPAN


def _series(samples, seconds: int) -> dict[int, dict]:
    """Per GPU, in one grouped read: "points", [[ms, utilisation %, memory MiB], ...], the
    averages of the rows (raw and hourly alike, weighted by the readings each holds) in each
    bucket of `seconds`; and over the span its peaks and its memory's "total"."""
    rows = (
        samples.annotate(bucket=_bucket(seconds))
        .values("gpu_index", "bucket")
        .annotate(
            count=Sum("sample_count"),
            utilization=Sum(F("utilization_percent") * F("sample_count")),
            memory=Sum(F("memory_used_mib") * F("sample_count")),
            utilization_peak=Max("utilization_peak_percent"),
            memory_peak=Max("memory_used_peak_mib"),
            total=Max("memory_total_mib"),
        )
        .order_by("gpu_index", "bucket")
        .values_list(
            "gpu_index",
            "bucket",
            "count",
            "utilization",
            "memory",
            "utilization_peak",
            "memory_peak",
            "total",
        )
    )
    series: dict[int, dict] = {}
    for index, bucket, count, utilization, memory, peak, memory_peak, total in rows:
        gpu = series.setdefault(
            index, {"points": [], "utilization_peak": 0, "memory_peak": 0, "total": 0}
        )
        gpu["points"].append(
            [bucket * 1000, _weighted(utilization, count), _weighted(memory, count)]
        )
        gpu["utilization_peak"] = max(gpu["utilization_peak"], peak)
        gpu["memory_peak"] = max(gpu["memory_peak"], memory_peak)
        gpu["total"] = max(gpu["total"], total)
    return series


def chart(server: Server, span: str, now: datetime | None = None) -> Chart:
    """The GPUs of `server` over the span named `span` ("24h" where it names none), the
    launches of its stacks' models in it, and per GPU the latest reading and the span's peak."""
    span = span_key(span)
    end = now or timezone.now()
    start = end - SPANS[span]
    result = Chart(span=span, start=start, end=end)
    samples = GpuSample.objects.filter(server=server, at__gte=start, at__lte=end)
    for index, gpu in sorted(_series(samples, POINT_SECONDS[span]).items()):
        result.gpus.append(
            {"index": index, "memory_total_mib": gpu["total"], "points": gpu["points"]}
        )
        # Read backwards along the (server, at) index: the first row of this GPU ends it.
        row = samples.filter(gpu_index=index).order_by("-at").first()
        result.summaries.append(
            GpuSummary(
                index=index,
                latest_at=row.at,
                utilization=row.utilization_percent,
                memory_used_mib=row.memory_used_mib,
                memory_total_mib=row.memory_total_mib,
                utilization_peak=gpu["utilization_peak"],
                memory_peak_mib=gpu["memory_peak"],
            )
        )
    launches = (
        ModelLaunch.objects.filter(
            stack__server=server,
            status__in=MARKED_LAUNCHES,
            created_at__gte=start,
            created_at__lte=end,
        )
        .order_by("created_at", "id")
        .values_list("created_at", "model_uid")
    )
    result.launches = [{"at": at, "name": name} for at, name in launches]
    return result
