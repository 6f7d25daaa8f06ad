"""Why a document's training stands still, in words, from FastGPT's own log.

FastGPT's API only says how many chunks are still queued. When a chunk fails (its model is not
routed, it is too long for the embedding model, the file-processing model answers badly) the row
stays queued, is retried about once a minute, or is locked for good, and the reason is only
printed in the fastgpt container's log. The panel reads that log when the counts stop moving.
"""

import re
from dataclasses import dataclass

from django.utils.translation import gettext as _

from ..choices import TrainingType
from ..logs.redact import mask_text
from ..models import Document
from ..stacks.services import service_log

FASTGPT_SERVICE = "fastgpt"
LOG_LINES = 400
REASON_MAX_CHARS = 400

NOT_ROUTED = re.compile(r"无可用渠道|no available channel|model_not_found|does not exist", re.I)
TOO_LONG = re.compile(
    r"maximum context length|too long|exceeds? the (?:max|limit)|input length|max_tokens|"
    r"token limit|overToken|超出|过长",
    re.I,
)
LOCKED = re.compile(r"invalid_request_error|invalid message format", re.I)
QA_FAILED = re.compile(r"\bQA\b|生成QA|qa queue|splitQA|问答", re.I)
NOT_JSON_OR_JSON = re.compile(r"json", re.I)
NO_POINTS = re.compile(r"余额不足|insufficient|AI points", re.I)
ERROR_LINE = re.compile(r"error|错误|失败|fail|exception|refused|timed? ?out", re.I)


@dataclass(frozen=True)
class Stall:
    """What the log says about a stuck document: a sentence, and the log line behind it."""

    reason: str
    evidence: str = ""


def _clip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= REASON_MAX_CHARS else line[: REASON_MAX_CHARS - 1] + "…"


def stall_from_log(log: str, document: Document) -> Stall:
    """The most telling reason the log gives, newest lines first."""
    base = document.knowledge_base
    qa = document.training_type == TrainingType.QA
    lines = [line for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if ERROR_LINE.search(line) or NOT_ROUTED.search(line)]
    for line in reversed(errors):
        if NOT_ROUTED.search(line):
            model = base.agent_model if qa and QA_FAILED.search(line) else base.embedding_model
            return Stall(
                _(
                    "One API has no channel for the model “%(model)s”, so FastGPT cannot reach "
                    "it: launch the model on this stack or add it with a remote provider; the "
                    "training goes on by itself once it is routed."
                )
                % {"model": model},
                _clip(line),
            )
        if LOCKED.search(line):
            return Stall(
                _(
                    "The model refused a chunk as an invalid request, and FastGPT locked that "
                    "chunk for good. Import the document again with smaller chunks."
                ),
                _clip(line),
            )
        if TOO_LONG.search(line):
            return Stall(
                _(
                    "Some chunks are longer than the embedding model “%(model)s” takes. Import "
                    "the document again with a smaller chunk size."
                )
                % {"model": base.embedding_model},
                _clip(line),
            )
        if qa and QA_FAILED.search(line):
            detail = (
                _("it did not answer in the expected format")
                if NOT_JSON_OR_JSON.search(line)
                else _("it failed")
            )
            return Stall(
                _(
                    "The file-processing model “%(model)s” could not turn the text into "
                    "question/answer pairs: %(detail)s. Import the document again as plain "
                    "chunks, or choose another file-processing model."
                )
                % {"model": base.agent_model, "detail": detail},
                _clip(line),
            )
        if NO_POINTS.search(line):
            return Stall(
                _("FastGPT paused training because the team ran out of AI points."), _clip(line)
            )
    if errors:
        return Stall(
            _("FastGPT's log ends with this error: %(line)s") % {"line": _clip(errors[-1])},
            _clip(errors[-1]),
        )
    return Stall(
        _(
            "FastGPT's log gives no reason. Check that the embedding model “%(model)s” is "
            "launched and wired, then import the document again."
        )
        % {"model": base.embedding_model}
    )


def stall_reason(document: Document, minutes: int) -> str:
    """The sentence a stuck document fails with, log reading included."""
    head = _("Training made no progress for %(minutes)s minutes.") % {"minutes": minutes}
    try:
        log = service_log(document.knowledge_base.stack, FASTGPT_SERVICE, LOG_LINES)
    except Exception as error:  # reading the log is a courtesy: its failure is a detail
        return f"{head} " + _("FastGPT's log could not be read: %(error)s") % {"error": error}
    if log is None:
        return f"{head} " + _("The stack has no fastgpt container whose log would say why.")
    # FastGPT's log holds its root password: the reason is shown to every viewer.
    reason = stall_from_log(mask_text(document.knowledge_base.stack_id, log), document).reason
    return f"{head} {reason}"
