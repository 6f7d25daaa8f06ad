"""GPU history: each check records every GPU's memory and utilisation (from nvidia-smi's
recorded outputs), old readings fold into hourly ones and the oldest go, and the server page
draws the span asked for, with the model launches, only for those who may see the server."""

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from controlpanel.celery import app as celery_app
from deployments import tasks
from deployments.choices import LaunchStatus
from deployments.llm.presets import PRESETS
from deployments.models import GpuSample, ModelLaunch
from deployments.servers import check, gpu_history
from deployments.servers.facts import NVIDIA_QUERY_FIELDS, parse_nvidia_smi_csv
from testkit.factories import add_member, make_server, make_stack
from testkit.recorded_outputs import H200, fixture

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 6, 12, 30, tzinfo=UTC)
SMI_QUERY = ("nvidia-smi", "--query-gpu=" + ",".join(NVIDIA_QUERY_FIELDS), "--format=csv")
# Not recorded: the real H100 header with a row of a GPU at work (utilisation and memory used).
H100_HEADER = fixture("nvidia_smi/query_gpu_h100_x1.csv").splitlines()[0]
BUSY_ROW = (
    "0, NVIDIA H100 80GB HBM3, GPU-00000000-0000-0000-0000-000000000000, 81559 MiB, "
    "61440 MiB, 19639 MiB, 580.159.04, 87 %, 61, 402.10 W, 9.0"
)


@dataclass
class FakeResult:
    argv: list
    exit_status: int
    stdout: str = ""
    stderr: str = ""


class FakeClient:
    """Answers nvidia-smi's query with `query`; every other command is not installed."""

    def __init__(self, query: str):
        self.query = query

    def run(self, argv, *, check=True, timeout=None, sudo=False):
        if tuple(argv) == SMI_QUERY:
            return FakeResult(argv, 0, self.query)
        return FakeResult(argv, 127, "", f"bash: line 1: {argv[0]}: command not found\n")


@pytest.fixture
def answers_with(monkeypatch):
    def use(query: str):
        client = FakeClient(query)
        monkeypatch.setattr(check, "open_session", lambda server: contextlib.nullcontext(client))

    return use


def sample(server, at, utilization=0, memory=0, *, gpu=0, hourly=False, count=1, peak=None):
    return GpuSample.objects.create(
        server=server,
        gpu_index=gpu,
        at=at,
        hourly=hourly,
        memory_used_mib=memory,
        memory_total_mib=81559,
        utilization_percent=utilization,
        memory_used_peak_mib=memory,
        utilization_peak_percent=utilization if peak is None else peak,
        sample_count=count,
    )


def launch(stack, status=LaunchStatus.READY, at=NOW):
    config = PRESETS["qwen2-instruct-7b"].build(stack.team)
    config.model = f"qwen2-{ModelLaunch.objects.count()}"
    config.save()
    made = ModelLaunch.objects.create(
        team=stack.team, stack=stack, model_uid=config.model, status=status, llm=config
    )
    ModelLaunch.objects.filter(pk=made.pk).update(created_at=at)
    return made.model_uid


# --- recording, from a check -----------------------------------------------------------------


def test_a_check_records_each_gpu_of_the_recorded_nvidia_smi_output(team, answers_with):
    server = make_server(team)
    answers_with(fixture("nvidia_smi/two_gpus_synthetic.csv"))  # SYNTHETIC: the H100 row twice
    check.check_server(server)
    rows = list(GpuSample.objects.filter(server=server).order_by("gpu_index"))
    assert [(row.gpu_index, row.hourly, row.sample_count) for row in rows] == [
        (0, False, 1),
        (1, False, 1),
    ]
    assert all(row.memory_total_mib == 81559 and row.utilization_percent == 0 for row in rows)
    assert rows[0].at == server.last_checked_at


def test_a_check_records_what_a_busy_gpu_reads(team, answers_with):
    server = make_server(team)
    answers_with(f"{H100_HEADER}\n{BUSY_ROW}\n")
    check.check_server(server)
    row = GpuSample.objects.get(server=server)
    assert (row.utilization_percent, row.memory_used_mib, row.memory_total_mib) == (
        87,
        61440,
        81559,
    )
    assert (row.utilization_peak_percent, row.memory_used_peak_mib) == (87, 61440)


def test_a_gpu_whose_utilisation_is_not_reported_is_not_recorded(team):
    # The H200 was recorded without the utilisation field: no reading, rather than a fake 0 %.
    server = make_server(team)
    gpus = parse_nvidia_smi_csv(fixture("nvidia_smi/query_gpu_h200_x1.csv"))
    assert gpus == [H200]
    assert gpu_history.record(server, gpus, NOW) == 0
    assert not GpuSample.objects.exists()


def test_a_server_without_a_gpu_records_nothing(team, answers_with):
    server = make_server(team)
    answers_with(fixture("nvidia_smi/query_gpu_h200_x1.csv").splitlines()[0])  # header only
    check.check_server(server)
    assert server.status == "reachable"
    assert not GpuSample.objects.exists()


# --- folding and pruning ---------------------------------------------------------------------


def test_raw_readings_of_whole_hours_past_48_hours_fold_into_hourly_averages_and_peaks(team):
    server = make_server(team)
    hour = datetime(2026, 12, 4, 11, 0, tzinfo=UTC)  # the last whole hour before NOW - 48 h
    for minutes, utilization, memory in ((0, 10, 1000), (20, 20, 2000), (40, 60, 3000)):
        sample(server, hour + timedelta(minutes=minutes), utilization, memory)
    in_cutoff_hour = sample(server, datetime(2026, 12, 4, 12, 10, tzinfo=UTC), 5, 500)
    recent = sample(server, NOW - timedelta(hours=1), 50, 4000)

    done = gpu_history.compact(NOW)

    assert (done.folded, done.hourly, done.pruned) == (3, 1, 0)
    hourly = GpuSample.objects.get(hourly=True)
    assert hourly.at == hour
    assert (hourly.utilization_percent, hourly.utilization_peak_percent) == (30, 60)
    assert (hourly.memory_used_mib, hourly.memory_used_peak_mib) == (2000, 3000)
    assert hourly.sample_count == 3
    # The hour NOW - 48 h falls in is not whole yet: it stays raw, as does what is recent.
    left = set(GpuSample.objects.filter(hourly=False).values_list("pk", flat=True))
    assert left == {in_cutoff_hour.pk, recent.pk}


def test_folding_keeps_servers_and_gpus_apart(team):
    first, second = make_server(team), make_server(team)
    old = datetime(2026, 12, 1, 8, 15, tzinfo=UTC)
    sample(first, old, 40, gpu=0)
    sample(first, old, 90, gpu=1)
    sample(second, old, 10, gpu=0)
    gpu_history.compact(NOW)
    folded = set(
        GpuSample.objects.filter(hourly=True).values_list(
            "server_id", "gpu_index", "utilization_percent"
        )
    )
    assert folded == {(first.pk, 0, 40), (first.pk, 1, 90), (second.pk, 0, 10)}


def test_compacting_twice_changes_nothing_and_late_readings_join_their_hour(team):
    server = make_server(team)
    hour = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    sample(server, hour + timedelta(minutes=5), 20, 2000)
    sample(server, hour + timedelta(minutes=35), 40, 4000)
    gpu_history.compact(NOW)
    gpu_history.compact(NOW)
    assert GpuSample.objects.count() == 1

    sample(server, hour + timedelta(minutes=50), 90, 1000)  # arrives after its hour was folded
    done = gpu_history.compact(NOW)
    assert (done.folded, done.hourly) == (1, 0)
    hourly = GpuSample.objects.get()
    assert hourly.sample_count == 3
    assert hourly.utilization_percent == 50  # (20 + 40 + 90) / 3
    assert hourly.memory_used_mib == 2333
    assert (hourly.utilization_peak_percent, hourly.memory_used_peak_mib) == (90, 4000)


def test_hourly_rows_older_than_30_days_are_pruned(team):
    server = make_server(team)
    gone = sample(server, NOW - timedelta(days=30, minutes=1), 10, hourly=True, count=60)
    kept = sample(server, NOW - timedelta(days=30) + timedelta(minutes=1), 10, hourly=True)
    done = gpu_history.compact(NOW)
    assert done.pruned == 1
    assert list(GpuSample.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not GpuSample.objects.filter(pk=gone.pk).exists()


def test_the_beat_compacts_the_history_every_hour(team, monkeypatch):
    entry = settings.CELERY_BEAT_SCHEDULE["compact-gpu-history"]
    assert entry["task"] in celery_app.tasks
    assert entry["schedule"].run_every == timedelta(hours=1)
    sample(make_server(team), datetime(2026, 11, 30, 8, 0, tzinfo=UTC), 10)
    assert tasks.compact_gpu_history() == 1
    assert GpuSample.objects.get().hourly


# --- reading back ----------------------------------------------------------------------------


def test_a_day_shows_five_minute_averages_and_a_week_hourly_ones(team):
    server = make_server(team)
    sample(server, datetime(2026, 12, 2, 9, 0, tzinfo=UTC), 30, 3072, hourly=True, count=60)
    sample(server, NOW - timedelta(hours=2, minutes=20), 10, 1024)  # 10:10
    sample(server, NOW - timedelta(hours=2, minutes=18), 20, 1024)  # 10:12, the same 5 minutes
    sample(server, NOW - timedelta(hours=2, minutes=10), 60, 2048)  # 10:20
    sample(server, NOW - timedelta(minutes=10), 35, 2048, peak=35)  # 12:20

    day = gpu_history.chart(server, "24h", NOW)
    points = day.gpus[0]["points"]
    assert [point[1:] for point in points] == [[15, 1024], [60, 2048], [35, 2048]]
    assert points[0][0] == int(datetime(2026, 12, 6, 10, 10, tzinfo=UTC).timestamp() * 1000)

    week = gpu_history.chart(server, "7d", NOW)
    points = week.gpus[0]["points"]
    # The hourly row counts for its 60 readings; the raw ones of 10:00 make one point.
    assert [point[1:] for point in points] == [[30, 3072], [30, 1365], [35, 2048]]
    assert points[1][0] == int(datetime(2026, 12, 6, 10, 0, tzinfo=UTC).timestamp() * 1000)
    assert len(gpu_history.chart(server, "30d", NOW).gpus[0]["points"]) == 3


def test_a_reading_just_before_the_hour_is_folded_into_its_own_hour(team):
    server = make_server(team)
    sample(server, datetime(2026, 12, 1, 7, 59, 59, 999999, tzinfo=UTC), 40)
    sample(server, datetime(2026, 12, 1, 8, 0, tzinfo=UTC), 80)
    gpu_history.compact(NOW)
    hours = GpuSample.objects.order_by("at").values_list("at", "utilization_percent")
    assert list(hours) == [
        (datetime(2026, 12, 1, 7, 0, tzinfo=UTC), 40),
        (datetime(2026, 12, 1, 8, 0, tzinfo=UTC), 80),
    ]


def test_the_summary_gives_the_latest_reading_and_the_spans_peak(team):
    server = make_server(team)
    sample(server, NOW - timedelta(hours=3), 80, 40960)
    sample(server, NOW - timedelta(minutes=1), 35, 20480)
    sample(server, NOW - timedelta(hours=30), 99, 81000)  # before the last 24 hours
    (summary,) = gpu_history.chart(server, "24h", NOW).summaries
    assert (summary.utilization, summary.utilization_peak) == (35, 80)
    assert (summary.memory_used_gib, summary.memory_total_gib) == ("20.0", "79.6")
    assert summary.latest_at == NOW - timedelta(minutes=1)


def test_the_launches_of_the_servers_stacks_in_the_span_are_marked(team):
    server, elsewhere = make_server(team), make_server(team)
    stack = make_stack(server)
    sample(server, NOW - timedelta(hours=1), 10)
    ran = launch(stack, LaunchStatus.READY, NOW - timedelta(hours=2))
    stopped = launch(stack, LaunchStatus.TERMINATED, NOW - timedelta(hours=5))
    launch(stack, LaunchStatus.FAILED, NOW - timedelta(hours=3))
    launch(stack, LaunchStatus.READY, NOW - timedelta(days=2))  # before the span
    launch(make_stack(elsewhere), LaunchStatus.READY, NOW - timedelta(hours=1))
    chart = gpu_history.chart(server, "24h", NOW)
    assert [item["name"] for item in chart.launches] == [stopped, ran]
    assert chart.data()["launches"][1] == {
        "at": int((NOW - timedelta(hours=2)).timestamp() * 1000),
        "name": ran,
    }


def test_an_unknown_span_reads_the_last_24_hours(team):
    chart = gpu_history.chart(make_server(team), "forever", NOW)
    assert chart.span == "24h" and chart.empty


# --- the server page -------------------------------------------------------------------------


def test_the_server_page_draws_the_chart_and_sums_it_up_in_words(client, team, viewer):
    server = make_server(team)
    stack = make_stack(server)
    now = timezone.now()
    sample(server, now - timedelta(hours=2), 80, 40960)
    sample(server, now - timedelta(minutes=1), 35, 20480)
    name = launch(stack, LaunchStatus.READY, now - timedelta(hours=1))
    client.force_login(viewer)
    page = client.get(reverse("server_detail", args=[server.pk])).content.decode()

    assert '<canvas id="gpu-chart" role="img" aria-label="Chart of GPU utilisation' in page
    assert 'aria-describedby="gpu-summary"' in page
    assert "GPU 0: 35 % at the last reading" in page
    assert "peak 80 % in the last 24 hours; memory 20.0 of 79.6 GiB used." in page
    assert f"Models launched: {name}" in page
    assert "vendor/chartjs/chart.umd.min.js" in page and "js/gpu_chart.js" in page
    data = json.loads(
        page.split('<script id="gpu-chart-data" type="application/json">')[1].split("</script>")[0]
    )
    assert [point[1] for point in data["gpus"][0]["points"]] == [80, 35]
    assert [item["name"] for item in data["launches"]] == [name]
    assert 'href="?gpu_span=24h#gpu-history" aria-current="true"' in page


def test_the_period_is_chosen_from_the_address(client, team, viewer):
    server = make_server(team)
    client.force_login(viewer)
    url = reverse("server_detail", args=[server.pk])
    page = client.get(url, {"gpu_span": "7d"}).content.decode()
    assert 'href="?gpu_span=7d#gpu-history" aria-current="true"' in page
    assert "No GPU readings in the last 7 days" in page


def test_without_readings_the_page_says_so_and_loads_no_chart(client, team, viewer):
    server = make_server(team)
    client.force_login(viewer)
    page = client.get(reverse("server_detail", args=[server.pk])).content.decode()
    assert "No GPU readings in the last 24 hours: each check of a server" in page
    assert "gpu-chart-data" not in page and "chart.umd.min.js" not in page


def test_another_teams_server_and_its_gpu_history_are_not_served(client, team, other_team):
    server = make_server(team)
    sample(server, timezone.now() - timedelta(minutes=5), 77, 12345)
    outsider = add_member(other_team)
    client.force_login(outsider)
    url = reverse("server_detail", args=[server.pk])
    for span in ("24h", "7d"):
        response = client.get(url, {"gpu_span": span})
        assert response.status_code == 404
        assert b"12345" not in response.content and b"gpu-chart" not in response.content


def test_the_checking_blocks_polls_do_not_read_the_history(client, team, viewer):
    server = make_server(team)
    client.force_login(viewer)
    partial = client.get(
        reverse("server_detail", args=[server.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert partial.lstrip().startswith('<div id="server-state"')
    assert "gpu-history" not in partial


def test_the_gpu_history_reads_in_chinese(client, team, viewer):
    server = make_server(team)
    sample(server, timezone.now() - timedelta(minutes=1), 35, 20480)
    client.force_login(viewer)
    page = client.get(
        reverse("server_detail", args=[server.pk]),
        {"gpu_span": "7d"},
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    ).content.decode()
    assert "GPU 历史" in page and ">7 天</a>" in page
    assert "GPU 0：最近一次读数" in page and "最近 7 天内峰值 35 %" in page
    assert 'data-utilization-label="利用率"' in page
