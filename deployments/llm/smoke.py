"""Smoke tests run right after a model is launched: does it answer the way FastGPT needs?

A chat model is asked a sum whose answer is known; an embedding model embeds two texts; a
rerank model orders a relevant and an irrelevant passage. Each check returns a SmokeResult
and never raises: an error from Xinference is a failed check (verdict "error") whose message
is the client's sentence, so the launch can record it (`as_dict()` goes into
ModelLaunch.smoke_test) and the page can show it.
"""

import json
import math
import re
import time
import unicodedata
from dataclasses import asdict, dataclass, field

from deployments.clients.xinference import XinferenceClient, XinferenceError

# Verdicts: one short code per way a check ends.
OK = "ok"
EMPTY = "empty"
JSON_ONLY = "json_only"
WRONG_ANSWER = "wrong_answer"
WRONG_DIMENSIONS = "wrong_dimensions"
MISORDERED = "misordered"
ERROR = "error"

CHAT_QUESTION = "What is 17 + 25? Answer with the number only."
CHAT_EXPECTED = 42
# Room for a reasoning model to think before it answers; a plain model stops far sooner.
CHAT_MAX_TOKENS = 512

EMBEDDING_TEXTS = [
    "The cat sleeps on the warm windowsill.",
    "Quarterly stock prices fell after the earnings report.",
]

RERANK_QUERY = "Where does the cat sleep in the afternoon?"
# The irrelevant passage comes first: a reranker that hands the documents back in the order
# it got them fails.
RERANK_IRRELEVANT = 0
RERANK_RELEVANT = 1
RERANK_DOCUMENTS = [
    "Quarterly stock prices fell sharply after the earnings report.",
    "Every afternoon the cat sleeps on the warm windowsill in the kitchen.",
]

# How much of a model's answer is kept in the details.
ANSWER_CHARS = 300
# Exceptions a malformed answer can raise while the client reads it.
MALFORMED = (KeyError, IndexError, TypeError, ValueError)


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    verdict: str  # ok, empty, json_only, wrong_answer, wrong_dimensions, misordered, error
    message: str  # one sentence for the page
    details: dict = field(default_factory=dict)  # JSON-serialisable: what was asked and seen

    def as_dict(self) -> dict:
        """The result as ModelLaunch.smoke_test stores it."""
        return asdict(self)


def _failed(verdict: str, message: str, details: dict) -> SmokeResult:
    return SmokeResult(passed=False, verdict=verdict, message=message, details=details)


def _error(error: Exception, what: str, details: dict) -> SmokeResult:
    if isinstance(error, XinferenceError):
        return _failed(ERROR, str(error), details)
    return _failed(
        ERROR,
        f"Xinference answered the {what} in a shape the panel does not understand "
        f"({type(error).__name__}: {error}).",
        details,
    )


def _seconds(started: float) -> float:
    return round(time.monotonic() - started, 2)


# Chat ----------------------------------------------------------------------------------------

_THINKING = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_UNCLOSED_THINKING = re.compile(r"<think>", re.IGNORECASE)
_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_TOOL_CALL_TAGS = re.compile(r"</?tool_call>", re.IGNORECASE)
# Control characters but tab and newlines: a broken model's bytes, which PostgreSQL's JSON
# cannot store (NUL) and a page cannot show.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A key of a JSON object: what a cut-off JSON answer still shows.
_JSON_KEY = re.compile(r'^[\[{]\s*"[^"\n]+"\s*:')

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_CHINESE_DIGITS = "零一二三四五六七八九"


def _english_words(number: int) -> list[str]:
    if number < 20:
        return [_ONES[number]]
    tens, ones = divmod(number, 10)
    if ones == 0:
        return [_TENS[tens - 2]]
    return [f"{_TENS[tens - 2]}-{_ONES[ones]}", f"{_TENS[tens - 2]} {_ONES[ones]}"]


def _chinese_words(number: int) -> list[str]:
    if number < 10:
        return [_CHINESE_DIGITS[number]]
    tens, ones = divmod(number, 10)
    tail = "十" + (_CHINESE_DIGITS[ones] if ones else "")
    # Ten to nineteen are written both ways: 十二 and 一十二.
    return [tail, "一" + tail] if tens == 1 else [_CHINESE_DIGITS[tens] + tail]


def _says_number(text: str, expected: int) -> bool:
    """Whether TEXT states EXPECTED: as digits ("42", "42.", "= 42.0", "４２"), or for 0 to 99
    in English or Chinese words ("forty-two", "四十二")."""
    text = unicodedata.normalize("NFKC", text)
    digits = re.compile(rf"(?<![\d.\-]){expected}(?:\.0+)?(?!\.?\d)")
    if digits.search(text):
        return True
    if not 0 <= expected < 100:
        return False
    lowered = text.lower()
    for word in _english_words(expected):
        if re.search(rf"(?<![a-z-]){re.escape(word)}(?![a-z-])", lowered):
            return True
    # Chinese numerals have no spaces around them: "四十二" must not be part of "一百四十二".
    for word in _chinese_words(expected):
        if re.search(
            rf"(?<![{_CHINESE_DIGITS}十百千万]){word}(?![{_CHINESE_DIGITS}十百千万])", text
        ):
            return True
    return False


def _is_json_only(text: str) -> bool:
    """An answer that is nothing but a JSON object or array, bare, fenced (```json) or in
    tool-call tags; also one cut off before its end, as long as it starts like an object."""
    text = _TOOL_CALL_TAGS.sub("", text).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith(("{", "[")):
        return False
    try:
        value, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        # Not even a complete value: JSON cut off by the token limit still starts with a key.
        return bool(_JSON_KEY.match(text))
    # Text after the JSON means the model also said something.
    return isinstance(value, dict | list) and not text[end:].strip()


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def classify_chat_answer(text: str | None, expected: int) -> SmokeResult:
    """Judge a chat model's answer to a question whose answer is the number EXPECTED.

    empty: nothing but whitespace (or only reasoning that never reached an answer);
    json_only: a JSON object or array and nothing else, the sign of a model that answers
    in raw function-call JSON instead of chatting; wrong_answer: the number is not in it;
    ok otherwise. A reasoning block (<think>...</think>) is not part of the answer.
    """
    raw = _CONTROL.sub("\ufffd", text or "")
    details = {"expected": str(expected), "answer": raw[:ANSWER_CHARS]}
    answer = _THINKING.sub("", raw).strip()
    if _UNCLOSED_THINKING.search(answer):
        answer = _UNCLOSED_THINKING.split(answer)[0].strip()
        if not answer:
            return _failed(
                EMPTY,
                "The model was still reasoning when its answer was cut off, and gave no answer.",
                details,
            )
    if not answer:
        if raw.strip():
            return _failed(EMPTY, "The model only reasoned and gave no answer.", details)
        return _failed(EMPTY, "The model answered with nothing.", details)
    if _is_json_only(answer):
        return _failed(
            JSON_ONLY,
            f"The model answered with raw JSON instead of text ({_quote(answer)}): FastGPT "
            "would show that JSON to users. Check the model's chat template and engine.",
            details,
        )
    if not _says_number(answer, expected):
        return _failed(
            WRONG_ANSWER,
            f"The model did not answer {expected}; it said {_quote(answer)}.",
            details,
        )
    return SmokeResult(
        passed=True,
        verdict=OK,
        message=f"The model answered correctly ({_quote(answer, 40)}).",
        details=details,
    )


def check_chat(
    client: XinferenceClient, uid: str, *, max_tokens: int = CHAT_MAX_TOKENS
) -> SmokeResult:
    """Ask the chat model UID a small sum and judge its answer (classify_chat_answer).

    Xinference refuses a request whose prompt plus MAX_TOKENS passes the model's context
    length: give a model with a short context a smaller MAX_TOKENS.
    """
    details = {"kind": "chat", "uid": uid, "question": CHAT_QUESTION, "max_tokens": max_tokens}
    started = time.monotonic()
    try:
        answer = client.chat(uid, [{"role": "user", "content": CHAT_QUESTION}], max_tokens)
    except (XinferenceError, *MALFORMED) as error:
        return _error(error, "question", {**details, "seconds": _seconds(started)})
    result = classify_chat_answer(answer, CHAT_EXPECTED)
    details.update(result.details, seconds=_seconds(started))
    return SmokeResult(result.passed, result.verdict, result.message, details)


# Embedding -----------------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_embedding(client: XinferenceClient, uid: str, dimensions: int | None) -> SmokeResult:
    """Embed two short texts with model UID: two vectors of DIMENSIONS finite numbers, not all
    zeros. DIMENSIONS is what the model's config tells FastGPT; 0 or None skips that check."""
    details: dict = {
        "kind": "embedding",
        "uid": uid,
        "texts": len(EMBEDDING_TEXTS),
        "dimensions": dimensions or None,
    }
    started = time.monotonic()
    try:
        vectors = client.embed(uid, EMBEDDING_TEXTS)
    except (XinferenceError, *MALFORMED) as error:
        return _error(error, "embedding request", {**details, "seconds": _seconds(started)})
    details["seconds"] = _seconds(started)
    if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
        return _failed(ERROR, "The model's answer held no vectors.", details)
    lengths = [len(vector) for vector in vectors]
    details["got_dimensions"] = lengths
    if len(vectors) != len(EMBEDDING_TEXTS):
        return _failed(
            ERROR,
            f"The model returned {len(vectors)} vectors for {len(EMBEDDING_TEXTS)} texts.",
            details,
        )
    if dimensions and any(length != dimensions for length in lengths):
        got = " and ".join(str(length) for length in sorted(set(lengths)))
        return _failed(
            WRONG_DIMENSIONS,
            f"The model's vectors have {got} dimensions, but its config says {dimensions}: "
            f"set the dimensions to {lengths[0]} or FastGPT cannot store its vectors.",
            details,
        )
    if len(set(lengths)) > 1:
        return _failed(
            WRONG_DIMENSIONS,
            f"The model's vectors differ in length ({' and '.join(map(str, lengths))}).",
            details,
        )
    if lengths[0] == 0:
        return _failed(ERROR, "The model returned empty vectors.", details)
    if not all(_is_number(value) for vector in vectors for value in vector):
        return _failed(
            ERROR, "The model's vectors hold values that are not finite numbers.", details
        )
    if any(not any(vector) for vector in vectors):
        return _failed(ERROR, "The model returned a vector of zeros only.", details)
    return SmokeResult(
        passed=True,
        verdict=OK,
        message=f"The model embeds texts into vectors of {lengths[0]} dimensions.",
        details=details,
    )


# Rerank --------------------------------------------------------------------------------------


def check_rerank(client: XinferenceClient, uid: str) -> SmokeResult:
    """Rerank an irrelevant and a relevant passage for a query with model UID: the relevant
    one must score higher (and so come first). A tie fails too: the model cannot tell them
    apart."""
    details: dict = {
        "kind": "rerank",
        "uid": uid,
        "query": RERANK_QUERY,
        "documents": RERANK_DOCUMENTS,
        "relevant": RERANK_RELEVANT,
    }
    started = time.monotonic()
    try:
        ranked = client.rerank(uid, RERANK_QUERY, RERANK_DOCUMENTS)
    except (XinferenceError, *MALFORMED) as error:
        return _error(error, "rerank request", {**details, "seconds": _seconds(started)})
    details["seconds"] = _seconds(started)
    details["order"] = [index for index, _ in ranked]
    scores = dict(ranked)
    if set(scores) != set(range(len(RERANK_DOCUMENTS))) or len(ranked) != len(RERANK_DOCUMENTS):
        return _failed(
            ERROR,
            f"The model ranked documents {details['order']} where "
            f"{len(RERANK_DOCUMENTS)} were given.",
            details,
        )
    if not all(_is_number(score) for score in scores.values()):
        return _failed(ERROR, "The model's scores are not finite numbers.", details)
    relevant, irrelevant = scores[RERANK_RELEVANT], scores[RERANK_IRRELEVANT]
    details["scores"] = {"relevant": relevant, "irrelevant": irrelevant}
    if relevant <= irrelevant:
        return _failed(
            MISORDERED,
            f"The model did not rank the relevant passage first: it scored {relevant:.4g} "
            f"against {irrelevant:.4g} for an unrelated one.",
            details,
        )
    return SmokeResult(
        passed=True,
        verdict=OK,
        message=(
            f"The model ranks the relevant passage first ({relevant:.4g} against {irrelevant:.4g})."
        ),
        details=details,
    )
