"""The log viewer in a real browser, with Playwright playing the log websocket's server side."""

import json
import re
import time

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from deployments.choices import Role
from deployments.logs import polls
from deployments.models import Service
from deployments.views import logs as log_views
from testkit.browser import log_in
from testkit.factories import add_member, make_server, make_stack, make_team, make_user
from tests.test_log_hub import FakeSource

from .test_views_logs import Remote, install_remote

pytestmark = [pytest.mark.slow, pytest.mark.engine_agnostic]

LOG_SOCKETS = re.compile(r"/ws/(services|stacks)/\d+/logs/")


class FakeLogServer:
    """The server side of the log websockets the page opens; `refuse` closes the next ones."""

    def __init__(self, page: Page):
        self.page = page
        self.sockets: list[WebSocketRoute] = []
        self.urls: list[str] = []
        self.received: list[dict] = []
        self.refuse = 0
        self.seq = 0
        page.route_web_socket(LOG_SOCKETS, self._accept)

    def _accept(self, ws: WebSocketRoute) -> None:
        self.urls.append(ws.url)
        if self.refuse:
            self.refuse -= 1
            ws.close()
            return
        ws.on_message(lambda message: self.received.append(json.loads(message)))
        self.sockets.append(ws)

    def wait_for_socket(self, count: int = 1) -> WebSocketRoute:
        deadline = time.monotonic() + 10
        while len(self.sockets) < count:
            assert time.monotonic() < deadline, f"the page opened {len(self.sockets)} sockets"
            self.page.wait_for_timeout(50)
        return self.sockets[count - 1]

    def send(self, message: dict) -> None:
        self.sockets[-1].send(json.dumps(message))

    def lines(self, lines: list[dict], skipped: int = 0) -> None:
        self.seq += 1
        self.send({"type": "lines", "seq": self.seq, "skipped": skipped, "lines": lines})


def ts(second: int, millis: int = 0) -> str:
    """A line's time as the server sends it: ISO 8601 in UTC with milliseconds."""
    minutes, seconds = divmod(second, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2026-11-24T{22 + hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def out(second: int, text: str, stream: str = "stdout", **extra) -> dict:
    return {"ts": ts(second), "stream": stream, "text": text, **extra}


@pytest.fixture
def stack(transactional_db):
    team = make_team("Alpha")
    user = make_user("viewer-vera")
    add_member(team, user, role=Role.VIEWER)
    stack = make_stack(make_server(team, name="gpu-a"), name="prod")
    stack.viewer = user
    return stack


@pytest.fixture
def service(stack):
    return Service.objects.create(stack=stack, name="fastgpt", container_name="prod-fastgpt-1")


@pytest.fixture
def open_logs(live_server, page, stack):
    """Log in and open a logs page with the websocket faked; gives the fake server."""

    def open_logs(path: str, refuse: int = 0, language: str = "") -> FakeLogServer:
        server = FakeLogServer(page)
        server.refuse = refuse
        log_in(page, live_server.url, "viewer-vera", stack.viewer.raw_password)
        if language:
            page.context.add_cookies(
                [{"name": "django_language", "value": language, "url": live_server.url}]
            )
        page.goto(f"{live_server.url}{path}")
        if not refuse:
            server.wait_for_socket()
        return server

    return open_logs


def line_elements(page: Page):
    return page.locator("#log-view .log-line")


def test_lines_appear_with_stderr_marked_timestamps_toggled_and_a_filter_that_counts(
    page, open_logs, service, tmp_path
):
    server = open_logs(f"/services/{service.pk}/logs/")
    assert server.urls[0].endswith(f"/ws/services/{service.pk}/logs/?tail=500")
    server.send({"type": "status", "state": "following", "message": "prod-fastgpt-1"})
    server.lines(
        [
            out(1, "Server listening on :3000"),
            out(2, "WARN mongo slow query", "stderr"),
            out(3, "<script>window.pwned = 1</script><b>bold?</b>"),
            out(4, "\x1b[31mred by hand\x1b[0m and a bell\x07"),
            {
                **out(5, "coloured INFO ready"),
                "segments": [
                    ["coloured ", None],
                    ["INFO", "ansi-green ansi-bold evil-class"],
                    [" ready", "onclick"],
                ],
            },
            {
                **out(6, "cut by the server … [1,234 more bytes]"),
                "segments": [["cut by the server", ""], [" … [1,234 more bytes]", "log-cut"]],
                "cut": 1234,
            },
        ]
    )
    lines = line_elements(page)
    expect(lines).to_have_count(6)
    expect(page.locator("#log-state")).to_have_text("Following · prod-fastgpt-1")
    expect(page.locator("#log-state")).to_have_attribute("data-state", "following")

    # stderr is told apart by a class and a badge that says so, stdout is not.
    expect(lines.nth(1)).to_have_class(re.compile(r"\bstderr\b"))
    expect(lines.nth(1).locator(".stream")).to_have_text("stderr")
    expect(lines.nth(1).locator(".stream")).to_have_attribute(
        "title", "Written to the error output (stderr)"
    )
    expect(lines.nth(0)).not_to_have_class(re.compile(r"\bstderr\b"))
    expect(lines.nth(0).locator(".stream")).to_have_count(0)

    # Log text is text: no element comes from it, and escape codes never show.
    expect(lines.nth(2).locator(".msg")).to_have_text(
        "<script>window.pwned = 1</script><b>bold?</b>"
    )
    assert lines.nth(2).locator(".msg script, .msg b").count() == 0
    assert page.evaluate("window.pwned") is None
    expect(lines.nth(3).locator(".msg")).to_have_text("red by hand and a bell\u2407")
    coloured = lines.nth(4).locator(".msg span")
    expect(coloured).to_have_count(3)
    expect(coloured.nth(1)).to_have_text("INFO")
    assert coloured.nth(1).get_attribute("class") == "ansi-green ansi-bold"
    assert coloured.nth(2).get_attribute("class") is None
    assert lines.nth(5).locator(".msg span").nth(1).get_attribute("class") == "log-cut"

    # Timestamps: shown, then hidden and shown again without a re-render.
    first_ts = lines.nth(0).locator(".ts")
    expect(first_ts).to_be_visible()
    expect(first_ts).to_have_text("2026-11-24 22:00:01.000")
    page.get_by_label("Timestamps").uncheck()
    expect(first_ts).to_be_hidden()
    expect(lines).to_have_count(6)
    page.get_by_label("Timestamps").check()
    expect(first_ts).to_be_visible()
    page.screenshot(path=str(tmp_path / "service-logs.png"), full_page=True)

    # The filter narrows what is shown, counts matches, and applies to new lines too.
    page.get_by_label("Filter").fill("MONGO")
    expect(lines).to_have_count(1)
    expect(lines.first).to_contain_text("WARN mongo slow query")
    expect(page.locator("#log-matches")).to_have_text("1 line matches of 6")
    server.lines([out(7, "mongo reconnected"), out(8, "unrelated")])
    expect(lines).to_have_count(2)
    expect(page.locator("#log-matches")).to_have_text("2 lines match of 8")
    page.get_by_label("Filter").fill("nothing like this")
    expect(lines).to_have_count(0)
    expect(page.locator("#log-empty")).to_have_text("No line matches the filter.")
    page.get_by_label("Filter").fill("")
    expect(lines).to_have_count(8)
    expect(page.locator("#log-matches")).to_have_text("")


def test_pause_counts_new_lines_and_resume_shows_them(page, open_logs, service, tmp_path):
    server = open_logs(f"/services/{service.pk}/logs/")
    server.lines([out(i, f"line {i}") for i in range(5)])
    lines = line_elements(page)
    expect(lines).to_have_count(5)

    pause = page.get_by_role("button", name="Pause", exact=True)
    pause.click()
    expect(page.get_by_role("button", name="Resume", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    server.lines([out(10 + i, f"while paused {i}") for i in range(3)])
    marker = page.locator("#log-new")
    expect(marker).to_have_text("3 new lines — resume")
    page.screenshot(path=str(tmp_path / "paused.png"))
    page.wait_for_timeout(600)
    expect(lines).to_have_count(5)

    marker.click()
    expect(lines).to_have_count(8)
    expect(lines.last).to_contain_text("while paused 2")
    expect(marker).to_be_hidden()
    expect(page.get_by_role("button", name="Pause", exact=True)).to_have_attribute(
        "aria-pressed", "false"
    )


def test_the_status_says_paused_with_the_lines_held_back_and_following_once_resumed(
    page, open_logs, service, tmp_path
):
    server = open_logs(f"/services/{service.pk}/logs/")
    server.send({"type": "status", "state": "following", "message": ""})
    server.lines([out(i, f"line {i}") for i in range(3)])
    expect(line_elements(page)).to_have_count(3)
    state = page.locator("#log-state")
    expect(state).to_have_text("Following")
    expect(state).to_have_attribute("data-state", "following")

    page.get_by_role("button", name="Pause", exact=True).click()
    expect(state).to_have_text("Paused")
    expect(state).to_have_attribute("data-state", "paused")
    server.lines([out(10, "while paused 0")])
    expect(state).to_have_text("Paused · 1 new line held back")
    server.lines([out(11 + i, f"while paused {i + 1}") for i in range(2)])
    expect(state).to_have_text("Paused · 3 new lines held back")
    page.screenshot(path=str(tmp_path / "paused-status.png"))

    page.get_by_role("button", name="Resume", exact=True).click()
    expect(state).to_have_text("Following")
    expect(state).to_have_attribute("data-state", "following")
    expect(line_elements(page)).to_have_count(6)

    # Scrolling up pauses too, and says so; back at the bottom it follows again.
    server.lines([out(100 + i, f"more {i}") for i in range(300)])
    expect(line_elements(page)).to_have_count(306)
    page.wait_for_function(
        "() => { const v = document.getElementById('log-view');"
        " return v.scrollHeight - v.scrollTop - v.clientHeight < 30; }"
    )
    view = page.locator("#log-view")
    view.evaluate("v => { v.scrollTop = 0; }")
    expect(state).to_have_text("Paused")
    view.evaluate("v => { v.scrollTop = v.scrollHeight; }")
    expect(state).to_have_text("Following")


def test_scrolling_up_pauses_and_scrolling_back_down_follows_again(page, open_logs, service):
    server = open_logs(f"/services/{service.pk}/logs/")
    server.lines([out(i, f"line {i}") for i in range(300)])
    lines = line_elements(page)
    expect(lines).to_have_count(300)
    view = page.locator("#log-view")
    page.wait_for_function(
        "() => { const v = document.getElementById('log-view');"
        " return v.scrollHeight - v.scrollTop - v.clientHeight < 30; }"
    )

    view.evaluate("v => { v.scrollTop = 0; }")
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible()
    server.lines([out(400, "arrived while reading")])
    expect(page.locator("#log-new")).to_have_text("1 new line — resume")
    assert view.evaluate("v => v.scrollTop") == 0

    view.evaluate("v => { v.scrollTop = v.scrollHeight; }")
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    expect(lines.last).to_have_text(re.compile("arrived while reading"))


def test_skipped_lines_are_announced_where_they_were_lost(page, open_logs, service, tmp_path):
    server = open_logs(f"/services/{service.pk}/logs/")
    server.lines([out(1, "before the burst")])
    server.lines([out(9, "after the burst")], skipped=1234)
    expect(page.locator("#log-skipped")).to_have_text(
        "1,234 lines skipped: the stream was faster than the page"
    )
    gap = page.locator("#log-view .log-gap")
    expect(gap).to_have_text("1,234 lines skipped")
    rows = page.locator("#log-view > div")
    assert rows.evaluate_all("rows => rows.map(r => r.className)") == [
        "log-line",
        "log-gap",
        "log-line",
    ]
    expect(rows.last).to_contain_text("after the burst")
    page.screenshot(path=str(tmp_path / "skipped.png"))


def test_a_flood_keeps_the_page_bounded_and_a_huge_line_does_not_hang_it(
    page, open_logs, service, tmp_path
):
    server = open_logs(f"/services/{service.pk}/logs/")
    for batch in range(6):
        server.lines(
            [out(batch * 500 + i, f"flood {batch * 500 + i} " + "x" * 80) for i in range(500)]
        )
    lines = line_elements(page)
    expect(lines.last).to_contain_text("flood 2999")
    assert lines.count() == 1000
    expect(lines.first).to_contain_text("flood 2000 ")

    huge = "A" * 200_000 + "THE END"
    started = time.monotonic()
    server.lines([out(4000, huge), out(4001, "after the huge line")])
    expect(lines.last).to_contain_text("after the huge line")
    assert time.monotonic() - started < 5
    big = lines.nth(-2)
    expect(big).to_have_class(re.compile(r"\blong\b"))
    assert len(big.locator(".msg").inner_text()) < 5000
    assert big.evaluate("el => el.getBoundingClientRect().height") < 200
    page.screenshot(path=str(tmp_path / "huge-line.png"))
    big.get_by_role("button", name="Show all 200,007 characters").click()
    expect(big.locator(".msg")).to_contain_text("THE END")
    assert lines.count() <= 1000


def test_download_gives_the_filtered_lines_as_a_log_file(page, open_logs, service):
    server = open_logs(f"/services/{service.pk}/logs/")
    server.lines(
        [out(1, "GET /api 200"), out(2, "POST /api 500", "stderr"), out(3, "GET /health 200")]
    )
    expect(line_elements(page)).to_have_count(3)
    page.get_by_label("Filter").fill("get")
    expect(line_elements(page)).to_have_count(2)

    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    download = info.value
    assert re.fullmatch(r"prod-fastgpt-\d{8}-\d{6}\.log", download.suggested_filename)
    with open(download.path(), encoding="utf-8") as file:
        assert file.read() == (
            "2026-11-24T22:00:01.000Z GET /api 200\n2026-11-24T22:00:03.000Z GET /health 200\n"
        )

    page.get_by_label("Timestamps").uncheck()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    with open(info.value.path(), encoding="utf-8") as file:
        assert file.read() == "GET /api 200\nGET /health 200\n"


def test_each_message_of_lines_is_acknowledged_for_the_servers_window(page, open_logs, service):
    server = open_logs(f"/services/{service.pk}/logs/")
    server.lines([out(1, "one")])
    server.lines([out(2, "two")])
    expect(line_elements(page)).to_have_count(2)
    assert server.received == [{"type": "ack", "seq": 1}, {"type": "ack", "seq": 2}]


def test_a_reconnect_asks_for_a_small_tail_and_shows_no_line_twice(page, open_logs, service):
    server = open_logs(f"/services/{service.pk}/logs/")
    server.lines([out(1, "one"), out(2, "two"), out(3, "same ms a"), out(3, "same ms b")])
    lines = line_elements(page)
    expect(lines).to_have_count(4)

    server.sockets[0].close()
    expect(page.locator("#log-state")).to_have_attribute("data-state", "reconnecting")
    second = server.wait_for_socket(2)
    assert second.url.endswith("?tail=100")
    server.seq = 0
    server.lines(
        [
            out(2, "two"),
            out(3, "same ms a"),
            out(3, "same ms b"),
            out(3, "same ms c"),
            out(4, "four"),
        ]
    )
    expect(lines).to_have_count(6)
    assert [text.split("\n")[-1] for text in lines.locator(".msg").all_inner_texts()] == [
        "one",
        "two",
        "same ms a",
        "same ms b",
        "same ms c",
        "four",
    ]
    expect(page.locator("#log-state")).to_have_attribute("data-state", "following")


def test_a_refused_socket_is_not_retried(page, live_server, stack, service):
    urls = []

    def refuse(ws: WebSocketRoute) -> None:
        urls.append(ws.url)
        ws.close(code=4403, reason="not visible")

    page.route_web_socket(LOG_SOCKETS, refuse)
    log_in(page, live_server.url, "viewer-vera", stack.viewer.raw_password)
    page.goto(f"{live_server.url}/services/{service.pk}/logs/")
    expect(page.locator("#log-state")).to_have_text("Error: these logs are not visible to you.")
    page.wait_for_timeout(1500)
    assert len(urls) == 1


def test_an_ended_stream_says_so_and_offers_to_reconnect(page, open_logs, service):
    server = open_logs(f"/services/{service.pk}/logs/")
    server.send({"type": "status", "state": "ended", "message": "The container exited."})
    server.sockets[0].close()
    expect(page.locator("#log-state")).to_have_text("Ended: The container exited.")
    page.wait_for_timeout(800)
    assert len(server.urls) == 1
    page.get_by_role("button", name="Reconnect").click()
    server.wait_for_socket(2)
    server.send({"type": "status", "state": "error", "message": "Could not reach gpu-a."})
    expect(page.locator("#log-state")).to_have_text("Error: Could not reach gpu-a.")
    expect(page.locator("#log-state")).to_have_attribute("data-state", "error")


@pytest.fixture
def remote(monkeypatch):
    remote, loop = install_remote(monkeypatch)
    yield remote
    loop.close()


def stamped(second: int, text: str) -> bytes:
    return f"{ts(second)} {text}\n".encode()


def test_when_websockets_are_refused_the_page_polls_the_shared_feed(
    page, open_logs, service, remote, tmp_path
):
    source = remote.source("prod-fastgpt-1")
    source.put(stamped(1, "polled one"), stamped(2, "polled two"))

    log_server = open_logs(f"/services/{service.pk}/logs/", refuse=3)
    state = page.locator("#log-state")
    expect(state).to_have_attribute("data-state", "polling", timeout=10_000)
    expect(state).to_contain_text("Polling every 2 s")
    lines = line_elements(page)
    expect(lines).to_have_count(2)
    expect(lines.nth(1)).to_have_class(re.compile(r"\bstderr\b"))
    assert len(log_server.urls) == 3
    page.screenshot(path=str(tmp_path / "polling.png"))

    # Each poll asks for the lines after its cursor: new ones are added, none twice.
    source.put(stamped(3, "polled three"))
    expect(lines).to_have_count(3)
    expect(lines.last).to_contain_text("polled three")
    page.wait_for_timeout(2500)
    expect(lines).to_have_count(3)
    assert len(log_server.urls) == 3
    # Every poll read the one feed that the first poll started.
    assert remote.opened == [("prod-fastgpt-1", 200)]


class TailingRemote(Remote):
    """A remote whose every opening starts with the tail of what was written, as docker's."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)
        for source in self.sources.values():
            source.put(data)

    def __call__(self, server, container: str, tail: int) -> FakeSource:
        self.opened.append((container, tail))
        source = self.sources[container] = FakeSource()
        source.put(b"".join(self.written[-tail:]))
        return source


def test_a_poll_that_starts_over_shows_no_line_twice(page, open_logs, service, remote, monkeypatch):
    # Every poll comes after the feed of the previous one ended: each answer is a replay.
    monkeypatch.setattr(polls, "KEEP_SECONDS", 0.2)
    tailing = TailingRemote()
    monkeypatch.setattr(log_views, "open_remote_logs", tailing)
    tailing.write(stamped(1, "one"))
    tailing.write(stamped(2, "two"))

    open_logs(f"/services/{service.pk}/logs/", refuse=3)
    lines = line_elements(page)
    expect(lines).to_have_count(2)
    tailing.write(stamped(3, "three"))

    expect(lines).to_have_count(3)
    page.wait_for_timeout(2500)
    assert [text.split("\n")[-1] for text in lines.locator(".msg").all_inner_texts()] == [
        "one",
        "two",
        "three",
    ]
    assert len(tailing.opened) >= 2


def test_the_stack_view_interleaves_its_services_and_filters_by_service(
    page, open_logs, stack, service, tmp_path
):
    Service.objects.create(stack=stack, name="oneapi", container_name="prod-oneapi-1")
    server = open_logs(f"/stacks/{stack.pk}/logs/")
    assert server.urls[0].endswith(f"/ws/stacks/{stack.pk}/logs/?tail=500")
    for name in ("fastgpt", "oneapi", "xinference"):
        server.send({"type": "status", "state": "connecting", "message": "", "service": name})
    expect(page.locator("#log-state")).to_have_attribute("data-state", "connecting")
    server.lines(
        [
            out(1, "fastgpt up", service="fastgpt"),
            out(2, "oneapi up", service="oneapi"),
            out(3, "fastgpt asks oneapi", service="fastgpt"),
            out(4, "xinference loading", "stderr", service="xinference"),
        ]
    )
    lines = line_elements(page)
    expect(lines).to_have_count(4)
    assert lines.locator(".svc").all_inner_texts() == ["fastgpt", "oneapi", "fastgpt", "xinference"]
    server.send(
        {"type": "status", "state": "error", "message": "GPU lost.", "service": "xinference"}
    )
    state = page.locator("#log-state")
    expect(state).to_have_text("Following · xinference error: GPU lost.")
    page.screenshot(path=str(tmp_path / "stack-logs.png"), full_page=True)

    page.get_by_label("Service", exact=True).select_option("fastgpt")
    expect(lines).to_have_count(2)
    page.get_by_label("Service", exact=True).select_option("xinference")
    expect(lines).to_have_count(1)
    page.get_by_label("Service", exact=True).select_option("")
    expect(lines).to_have_count(4)

    # Once every service has ended the server closes the socket, and that is the end.
    for name in ("fastgpt", "oneapi", "xinference"):
        server.send({"type": "status", "state": "ended", "message": "", "service": name})
    expect(state).to_have_text("Ended")
    server.sockets[0].close()
    page.wait_for_timeout(1000)
    assert len(server.urls) == 1
    expect(page.get_by_role("button", name="Reconnect")).to_be_visible()


def test_in_chinese_the_stderr_badge_and_each_services_state_read_in_chinese(
    page, open_logs, stack, service
):
    Service.objects.create(stack=stack, name="oneapi", container_name="prod-oneapi-1")
    server = open_logs(f"/stacks/{stack.pk}/logs/", language="zh-hans")
    server.lines(
        [out(1, "fastgpt up", service="fastgpt"), out(2, "boom", "stderr", service="oneapi")]
    )
    badge = line_elements(page).nth(1).locator(".stream")
    expect(badge).to_have_text("错误输出")
    expect(badge).to_have_attribute("title", "写入错误输出（stderr）的行")
    server.send({"type": "status", "state": "error", "message": "GPU lost.", "service": "oneapi"})
    expect(page.locator("#log-state")).to_have_text("实时跟踪中 · oneapi 错误: GPU lost.")


def test_the_stack_views_first_lines_are_interleaved_by_time_whatever_order_they_come_in(
    page, open_logs, stack, service
):
    Service.objects.create(stack=stack, name="oneapi", container_name="prod-oneapi-1")
    server = open_logs(f"/stacks/{stack.pk}/logs/")
    # Each container's stream opens on its own: one tail comes whole, then the other's.
    server.lines([out(s, f"fastgpt {s}", service="fastgpt") for s in (1, 3, 5)])
    lines = line_elements(page)
    expect(lines).to_have_count(3)
    server.lines(
        [out(s, f"oneapi {s}", service="oneapi") for s in (2, 4)]
        + [out(6, "oneapi 6", "stderr", service="oneapi")]
    )
    expected = ["fastgpt 1", "oneapi 2", "fastgpt 3", "oneapi 4", "fastgpt 5", "oneapi 6"]
    expect(lines.locator(".msg")).to_have_text(expected)
    assert lines.locator(".svc").all_inner_texts() == [text.split()[0] for text in expected]

    # A line that comes late takes its place by time too, and the download follows the page.
    server.lines([out(4, "fastgpt 4 late", service="fastgpt")])
    expected.insert(4, "fastgpt 4 late")
    expect(lines.locator(".msg")).to_have_text(expected)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    with open(download.value.path(), encoding="utf-8") as saved:
        assert [row.split(" | ", 1)[1] for row in saved.read().splitlines()] == expected


def test_the_stack_page_leads_to_the_logs(page, live_server, stack, service, tmp_path):
    log_in(page, live_server.url, "viewer-vera", stack.viewer.raw_password)
    FakeLogServer(page)
    page.goto(f"{live_server.url}/stacks/{stack.pk}/")
    page.screenshot(path=str(tmp_path / "stack-detail.png"), full_page=True)
    page.get_by_role("link", name="Logs of fastgpt").click()
    expect(page.get_by_role("heading", name="Logs of fastgpt")).to_be_visible()
    page.get_by_role("link", name="All logs of the stack").click()
    expect(page.get_by_role("heading", name="Logs of stack prod")).to_be_visible()
    expect(page.get_by_role("log")).to_have_attribute("aria-live", "off")
