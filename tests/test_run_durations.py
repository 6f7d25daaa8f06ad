"""Durations read as people read them, in the page's language: "8 s", "1 min 5 s", "2 h 3 min",
the same whether the server wrote them or the run page's counter counts them up."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

from deployments.choices import Role
from deployments.templatetags.panel import duration
from testkit.factories import add_member, make_team, make_user

RUN_STEPS_JS = Path(settings.BASE_DIR) / "static" / "js" / "run_steps.js"
# Seconds, and how each reads in English and in Chinese.
CASES = [
    (0.4, "0 s", "0 秒"),
    (8.9, "8 s", "8 秒"),
    (60, "1 min", "1 分"),
    (65.3, "1 min 5 s", "1 分 5 秒"),
    (3599.9, "59 min 59 s", "59 分 59 秒"),
    (3600, "1 h", "1 小时"),
    (7384, "2 h 3 min", "2 小时 3 分"),
    (90000, "25 h", "25 小时"),
]


@pytest.mark.parametrize(("seconds", "english", "chinese"), CASES)
def test_the_duration_filter_writes_whole_units_in_the_pages_language(seconds, english, chinese):
    assert duration(timedelta(seconds=seconds)) == english
    with translation.override("zh-hans"):
        assert duration(timedelta(seconds=seconds)) == chinese


def test_no_duration_is_empty():
    assert duration(None) == ""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "units"),
    [("en", ["h", "min", "s"]), ("zh-hans", ["小时", "分", "秒"])],
)
def test_pages_hand_the_translated_units_to_the_counting_script(language, units):
    user = make_user("viewer-vera")
    add_member(make_team("Alpha"), user, role=Role.VIEWER)
    client = Client()
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    html = client.get("/").content.decode()
    tag = next(line for line in html.splitlines() if "js/run_steps.js" in line)
    for name, word in zip(["h", "min", "s"], units, strict=True):
        assert f'data-unit-{name}="{word}"' in tag


@pytest.mark.slow
def test_the_pages_counter_writes_what_the_filter_writes(page):
    # The script as base.html loads it, with the Chinese units, counting elements that the
    # server rendered with these seconds.
    spans = "".join(f'<span data-elapsed-seconds="{seconds}"></span>' for seconds, *_ in CASES)
    page.set_content(f"<body>{spans}</body>")
    page.evaluate(
        """source => {
          Date.now = () => 1000;  // time stands still: the counter shows the rendered seconds
          const script = document.createElement("script");
          script.setAttribute("data-unit-h", "小时");
          script.setAttribute("data-unit-min", "分");
          script.setAttribute("data-unit-s", "秒");
          script.textContent = source;
          document.body.appendChild(script);
        }""",
        RUN_STEPS_JS.read_text(),
    )
    shown = page.locator("[data-elapsed-seconds]").all_inner_texts()
    with translation.override("zh-hans"):
        written = [duration(timedelta(seconds=seconds)) for seconds, *_ in CASES]
    assert shown == written
