"""The GPU chart draws in a real browser on a server's page, under the Content-Security-Policy:
lines on the canvas, no console error or violation, and the period links draw it again."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from deployments.choices import LaunchStatus, Role
from deployments.llm.presets import PRESETS
from deployments.models import GpuSample, ModelLaunch
from testkit.browser import log_in
from testkit.factories import add_member, make_server, make_stack, make_team, make_user

pytestmark = [pytest.mark.slow, pytest.mark.engine_agnostic]

# Pixels of the canvas that are drawn on (not transparent).
DRAWN_PIXELS = """canvas => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) drawn++; }
  return drawn;
}"""


def _server_with_history():
    team = make_team("Alpha")
    user = make_user("viewer-vera")
    add_member(team, user, role=Role.VIEWER)
    server = make_server(team, name="gpu-chart")
    now = timezone.now()
    GpuSample.objects.bulk_create(
        GpuSample(
            server=server,
            gpu_index=0,
            at=now - timedelta(minutes=10 * step),
            memory_used_mib=20480 + 100 * step,
            memory_total_mib=81559,
            utilization_percent=(step * 7) % 100,
            memory_used_peak_mib=20480 + 100 * step,
            utilization_peak_percent=(step * 7) % 100,
        )
        for step in range(140)
    )
    config = PRESETS["qwen2-instruct-7b"].build(team)
    config.save()
    launch = ModelLaunch.objects.create(
        team=team,
        stack=make_stack(server),
        model_uid=config.model,
        status=LaunchStatus.READY,
        llm=config,
    )
    ModelLaunch.objects.filter(pk=launch.pk).update(created_at=now - timedelta(hours=3))
    return user, server


def test_the_gpu_chart_draws_on_the_server_page_without_errors(live_server, transactional_db, page):
    user, server = _server_with_history()
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and errors.append(f"{message.text} ({message.location.get('url', '')})")
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))
    log_in(page, live_server.url, "viewer-vera", user.raw_password)

    page.goto(f"{live_server.url}{reverse('server_detail', args=[server.pk])}")
    canvas = page.locator('#gpu-chart[data-drawn="true"]')
    expect(canvas).to_be_visible()
    assert canvas.evaluate(DRAWN_PIXELS) > 1000
    expect(page.locator("#gpu-summary")).to_contain_text("GPU 0:")
    expect(page.locator("#gpu-summary")).to_contain_text("Models launched: qwen2")

    page.get_by_role("link", name="7 days").click()
    expect(page.get_by_role("link", name="7 days")).to_have_attribute("aria-current", "true")
    expect(canvas).to_be_visible()
    assert canvas.evaluate(DRAWN_PIXELS) > 1000
    assert errors == []
