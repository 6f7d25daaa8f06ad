"""The idle guard's note: what its last check found, kept as sentence codes with their values
and written out in the language of whoever reads it.

A note is a list of parts, each {"code": ..., "params": {...}}: `part()` makes one, `render()`
writes a list out. A part whose params name a run ("run": id) reads that run's title in the
reader's language; where the run is gone, the title kept with it.
"""

from django.utils.translation import gettext, gettext_noop

from ..models import PipelineRun

USED = "used"
FIRST = "first"
GPU_BUSY = "gpu_busy"
UNREAD = "unread"
NO_GPU_READING = "no_gpu_reading"
IDLE = "idle"
QUIET = "quiet"
OFF = "off"
NO_PRICE = "no_price"
STEP_FAILED = "step_failed"
RUN_UNDER_WAY = "run_under_way"
KEPT_RUNNING = "kept_running"
STARTED_AGAIN = "started_again"
# Text kept as it was written (a note from before notes had codes, where no sentence fits).
TEXT = "text"

SENTENCES = {
    USED: gettext_noop("The models of %(stacks)s received requests since the last check."),
    FIRST: gettext_noop("First reading of the request counter of %(stacks)s."),
    GPU_BUSY: gettext_noop("The GPUs were in use at %(at)s UTC."),
    UNREAD: gettext_noop("Could not read the requests of %(reasons)s"),
    NO_GPU_READING: gettext_noop(
        "No GPU reading in the last %(minutes)s min: the server's checks record them "
        "(is the periodic check on?)."
    ),
    IDLE: gettext_noop("Idle for %(minutes)s min: no model request and the GPUs quiet."),
    QUIET: gettext_noop("Quiet for %(minutes)s min of %(idle_minutes)s."),
    OFF: gettext_noop("The idle guard is off for this server."),
    NO_PRICE: gettext_noop("The server has no hourly price: the idle guard leaves it alone."),
    STEP_FAILED: gettext_noop("The step “%(title)s” did not succeed: %(error)s"),
    RUN_UNDER_WAY: gettext_noop("“%(title)s” is under way: the guard waits until it has finished."),
    KEPT_RUNNING: gettext_noop("Kept running."),
    STARTED_AGAIN: gettext_noop("Started again."),
}

Note = list[dict]


def part(code: str, **params) -> dict:
    return {"code": code, "params": params}


def about_run(code: str, run: PipelineRun, **params) -> dict:
    """A part naming `run`: its title is read again when shown."""
    return part(code, run=run.pk, title=run.title, **params)


def _titles(parts: Note) -> dict[int, str]:
    ids = {p["params"]["run"] for p in parts if isinstance(p.get("params", {}).get("run"), int)}
    if not ids:
        return {}
    return {run.pk: run.title for run in PipelineRun.objects.filter(pk__in=ids)}


def render(parts: Note) -> str:
    """The note in the active language; a part of an unknown code shows its text, if any."""
    titles = _titles(parts)
    shown = []
    for found in parts:
        params = dict(found.get("params") or {})
        if params.get("run") in titles:
            params["title"] = titles[params["run"]]
        sentence = SENTENCES.get(found.get("code"))
        try:
            shown.append(gettext(sentence) % params if sentence else str(params["text"]))
        except (KeyError, TypeError, ValueError):
            continue  # a part that does not fit its sentence: leave it out, not the page
    return " ".join(shown)
