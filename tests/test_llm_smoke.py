"""Smoke tests after a launch: the chat answer's classification on plain strings, and every
check against a real Xinference on the CPU (testkit) with MiniLM's real weights, MiniLM as an
untrained reranker and a tiny random chat model: models a smoke test must pass or flag.

A few fast tests use a fake transport for answers no real model here gives (raw JSON, zero
vectors, a reranker that gets it right).
"""

import json

import httpx
import pytest

from deployments.clients.xinference import XinferenceClient
from deployments.llm.smoke import (
    CHAT_EXPECTED,
    CHAT_QUESTION,
    EMBEDDING_TEXTS,
    RERANK_DOCUMENTS,
    RERANK_IRRELEVANT,
    RERANK_QUERY,
    RERANK_RELEVANT,
    SmokeResult,
    check_chat,
    check_embedding,
    check_rerank,
    classify_chat_answer,
)
from testkit.workers import wait_until
from testkit.xinference_env import XinferenceContainer, prepare
from testkit.xinference_models import (
    MINILM_DIMENSIONS,
    launch_until_ready,
    make_tiny_chat_model,
    minilm_embedding_spec,
    minilm_launch_body,
    minilm_rerank_launch_body,
    minilm_rerank_spec,
    setup_token_from_log,
    tiny_chat_launch_body,
    tiny_chat_spec,
    wait_until_answering,
)

START_TIMEOUT = 240
LAUNCH_TIMEOUT = 300
ADMIN = "admin"
PASSWORD = "admin-password-for-tests"


def verdict(text, expected=42) -> str:
    return classify_chat_answer(text, expected).verdict


# The chat answer, on plain strings ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "42",
        "42.",
        "42.0",
        " 42\n",
        "The answer is 42",
        "17 + 25 = 42.",
        "**42**",
        "４２",
        "Forty-two.",
        "forty two",
        "答案是四十二。",
        "<think>17 plus 25: 7 and 5 make 12, carry one, so 42.</think>\n\n42",
        "<think>\nHmm, 17 + 25 is 43? No, 42.\n</think>42",
    ],
)
def test_answers_that_state_the_number_pass(text):
    result = classify_chat_answer(text, 42)
    assert result.passed and result.verdict == "ok"
    assert result.details == {"expected": "42", "answer": text}


@pytest.mark.parametrize(
    "text",
    [
        "43",
        "420",
        "4242",
        "142",
        "-42",
        "42.5",
        "1.42",
        "The answer is forty-three.",
        "一百四十二",
        "I cannot do arithmetic.",
        "<think>It is 42.</think>The answer is 41.",
        "four two",
    ],
)
def test_answers_without_the_number_are_wrong(text):
    result = classify_chat_answer(text, 42)
    assert not result.passed and result.verdict == "wrong_answer"
    assert result.message.startswith("The model did not answer 42; it said ")


def test_a_wrong_answer_is_quoted_shortly_in_the_message():
    result = classify_chat_answer("Hello world " * 40, 42)
    assert result.message.startswith("The model did not answer 42; it said 'Hello world Hello")
    assert len(result.message) < 150
    assert len(result.details["answer"]) == 300  # what is kept of the answer


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n", None])
def test_nothing_is_empty(text):
    result = classify_chat_answer(text, 42)
    assert not result.passed and result.verdict == "empty"
    assert result.message == "The model answered with nothing."


def test_reasoning_without_an_answer_is_empty():
    only = classify_chat_answer("<think>17 + 25 is 42.</think>\n", 42)
    assert only.verdict == "empty"
    assert only.message == "The model only reasoned and gave no answer."
    cut = classify_chat_answer("<think>Let me add 17 and 25 step by step. First", 42)
    assert cut.verdict == "empty"
    assert "cut off" in cut.message


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "add", "arguments": {"a": 17, "b": 25}}',
        '{"answer": 42}',
        '[{"name": "calculator", "arguments": "{\\"expression\\": \\"17 + 25\\"}"}]',
        '```json\n{"name": "add", "arguments": {"a": 17, "b": 25}}\n```',
        '```\n{"result": 42}\n```',
        '<tool_call>\n{"name": "add", "arguments": {"a": 17, "b": 25}}\n</tool_call>',
        '{\n  "name": "add",\n  "arguments": {"a": 17,',  # cut off by the token limit
        '<think>The user wants a sum.</think>\n{"name": "add", "arguments": {}}',
    ],
)
def test_raw_json_is_json_only(text):
    result = classify_chat_answer(text, 42)
    assert not result.passed and result.verdict == "json_only"
    assert result.message.startswith("The model answered with raw JSON instead of text (")


@pytest.mark.parametrize(
    "text",
    [
        '{"answer": 42} so the answer is 42.',  # JSON, then words
        "[42] is the answer: 42",
        "{42}",  # not JSON
    ],
)
def test_json_followed_by_words_or_braces_around_a_number_are_not_json_only(text):
    assert verdict(text) == "ok"


def test_other_expected_numbers():
    assert verdict("7", 7) == "ok"
    assert verdict("seven", 7) == "ok"
    assert verdict("七", 7) == "ok"
    assert verdict("17", 7) == "wrong_answer"
    assert verdict("十二", 12) == "ok"
    assert verdict("一十二", 12) == "ok"
    assert verdict("The sum is 150.", 150) == "ok"
    assert verdict("one hundred fifty", 150) == "wrong_answer"  # words only up to 99


def test_control_characters_of_a_broken_model_are_replaced():
    result = classify_chat_answer("\x00\x1b[0mabc\x7f\nline", 42)
    assert result.verdict == "wrong_answer"
    assert result.details["answer"] == "\ufffd\ufffd[0mabc\ufffd\nline"
    assert "\x00" not in result.message


def test_the_result_goes_into_the_launch_record_as_json():
    stored = classify_chat_answer("42", 42).as_dict()
    assert json.loads(json.dumps(stored)) == stored
    assert set(stored) == {"passed", "verdict", "message", "details"}


# Checks with a fake transport: answers no model here gives --------------------------------


def fake_client(answer: dict, seen: list | None = None) -> XinferenceClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(json.loads(request.content))
        return httpx.Response(200, json=answer)

    return XinferenceClient("http://xinference:9997", transport=httpx.MockTransport(handle))


def chat_answer(content: str | None) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


def test_check_chat_asks_the_sum_and_flags_raw_json():
    seen: list = []
    client = fake_client(chat_answer('{"name": "add", "arguments": {"a": 17}}'), seen)
    result = check_chat(client, "qwen-chat")
    assert seen[0]["model"] == "qwen-chat"
    assert seen[0]["messages"] == [{"role": "user", "content": CHAT_QUESTION}]
    assert seen[0]["max_tokens"] == 512  # room for a reasoning model to think first
    assert result.verdict == "json_only"
    assert result.details["kind"] == "chat" and result.details["uid"] == "qwen-chat"
    assert result.details["question"] == CHAT_QUESTION

    assert check_chat(fake_client(chat_answer("42")), "qwen-chat").passed
    assert check_chat(fake_client(chat_answer(None)), "qwen-chat").verdict == "empty"


def test_check_chat_reports_an_answer_of_the_wrong_shape_as_an_error():
    result = check_chat(fake_client({"unexpected": True}), "qwen-chat")
    assert result.verdict == "error" and not result.passed
    assert "shape the panel does not understand" in result.message


def embedding_answer(vectors: list) -> dict:
    return {"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)]}


def test_check_embedding_flags_zero_and_non_finite_vectors():
    zeros = check_embedding(fake_client(embedding_answer([[0.0] * 4, [0.5] * 4])), "e", 4)
    assert zeros.verdict == "error"
    assert zeros.message == "The model returned a vector of zeros only."
    # Python's JSON reader takes NaN, so a broken model's NaN reaches the check.
    nan = httpx.Response(
        200,
        content=b'{"data": [{"index": 0, "embedding": [NaN, 1.0]},'
        b' {"index": 1, "embedding": [1.0, 1.0]}]}',
    )
    client = XinferenceClient("http://x:9997", transport=httpx.MockTransport(lambda _: nan))
    result = check_embedding(client, "e", 2)
    assert result.verdict == "error"
    assert "not finite numbers" in result.message
    missing = check_embedding(fake_client(embedding_answer([[0.5] * 4])), "e", 4)
    assert missing.message == "The model returned 1 vectors for 2 texts."


def test_check_embedding_without_configured_dimensions_reports_what_it_got():
    result = check_embedding(fake_client(embedding_answer([[0.1] * 8, [0.2] * 8])), "e", 0)
    assert result.passed
    assert result.message == "The model embeds texts into vectors of 8 dimensions."


def test_check_rerank_passes_a_model_that_scores_the_relevant_passage_higher():
    seen: list = []
    answer = {
        "results": [
            {"index": RERANK_RELEVANT, "relevance_score": 0.98},
            {"index": RERANK_IRRELEVANT, "relevance_score": 0.01},
        ]
    }
    result = check_rerank(fake_client(answer, seen), "bge-reranker")
    assert seen[0] == {
        "model": "bge-reranker",
        "query": RERANK_QUERY,
        "documents": RERANK_DOCUMENTS,
    }
    assert result.passed and result.verdict == "ok"
    assert result.message == "The model ranks the relevant passage first (0.98 against 0.01)."
    assert result.details["order"] == [RERANK_RELEVANT, RERANK_IRRELEVANT]


# Against a real Xinference ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-chat")
    return folder, make_tiny_chat_model(folder)


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_chat):
    """A client logged in to one fresh Xinference for the module (its first admin set up)."""
    image = prepare()
    home = tmp_path_factory.mktemp("xinference-home")
    with (
        XinferenceContainer(image, home, mounts=[tiny_chat[0]]) as server,
        XinferenceClient(server.base_url, timeout=60) as client,
    ):
        wait_until_answering(client, server, START_TIMEOUT)
        setup_token = wait_until(
            lambda: setup_token_from_log(server.logs()), 60, "the setup token in the log", 1
        )
        client.setup_admin(setup_token, ADMIN, PASSWORD)
        client.login(ADMIN, PASSWORD)
        yield client


def launch_ready(client: XinferenceClient, body: dict) -> str:
    return launch_until_ready(client, body, LAUNCH_TIMEOUT)


@pytest.fixture(scope="module")
def chat_uid(client, tiny_chat):
    folder, summary = tiny_chat
    client.register("LLM", tiny_chat_spec(folder, "tiny-chat", summary["end_of_turn_id"]))
    return launch_ready(client, tiny_chat_launch_body("tiny-chat", "tiny-chat"))


@pytest.fixture(scope="module")
def embedding_uid(client):
    client.register("embedding", minilm_embedding_spec("minilm-local"))
    return launch_ready(client, minilm_launch_body("minilm-local", "minilm"))


@pytest.fixture(scope="module")
def rerank_uid(client):
    client.register("rerank", minilm_rerank_spec(), persist=False)
    return launch_ready(client, minilm_rerank_launch_body())


def assert_recordable(result: SmokeResult) -> None:
    stored = result.as_dict()
    assert json.loads(json.dumps(stored)) == stored
    assert isinstance(result.details["seconds"], float)


@pytest.mark.slow
def test_a_random_chat_model_is_flagged(client, chat_uid):
    # The tiny model's context is 512 tokens: the prompt and the answer must fit in it.
    result = check_chat(client, chat_uid, max_tokens=64)
    # Random weights cannot add 17 and 25: whatever it says, the check must not pass.
    assert result.passed is False
    assert result.verdict in {"empty", "json_only", "wrong_answer"}, result
    assert result.details["uid"] == chat_uid
    assert result.details["expected"] == str(CHAT_EXPECTED)
    assert result.details["max_tokens"] == 64
    assert result.verdict == classify_chat_answer(result.details["answer"], CHAT_EXPECTED).verdict
    # Its random bytes come back without control characters, so the record can store them.
    assert not any(char < " " and char not in "\n\t\r" for char in result.details["answer"])
    assert_recordable(result)


@pytest.mark.slow
def test_minilm_embeds_with_its_384_dimensions(client, embedding_uid):
    result = check_embedding(client, embedding_uid, MINILM_DIMENSIONS)
    assert result.passed and result.verdict == "ok", result
    assert result.message == "The model embeds texts into vectors of 384 dimensions."
    assert result.details["got_dimensions"] == [384] * len(EMBEDDING_TEXTS)
    assert_recordable(result)


@pytest.mark.slow
def test_minilm_configured_with_768_dimensions_is_flagged(client, embedding_uid):
    result = check_embedding(client, embedding_uid, 768)
    assert not result.passed and result.verdict == "wrong_dimensions"
    assert "384" in result.message and "768" in result.message
    assert result.message == (
        "The model's vectors have 384 dimensions, but its config says 768: set the dimensions "
        "to 384 or FastGPT cannot store its vectors."
    )
    assert result.details["dimensions"] == 768
    assert_recordable(result)


@pytest.mark.slow
def test_the_rerank_verdict_follows_the_scores_the_model_gave(client, rerank_uid):
    result = check_rerank(client, rerank_uid)
    # The untrained head ranks at random: only the verdict's agreement with the scores holds.
    ranked = dict(client.rerank(rerank_uid, RERANK_QUERY, RERANK_DOCUMENTS))
    relevant, irrelevant = ranked[RERANK_RELEVANT], ranked[RERANK_IRRELEVANT]
    assert result.details["scores"] == pytest.approx(
        {"relevant": relevant, "irrelevant": irrelevant}
    )
    assert result.passed == (relevant > irrelevant)
    assert (result.verdict == "misordered") == (irrelevant >= relevant)
    assert result.verdict in {"ok", "misordered"}
    if relevant != irrelevant:
        first = RERANK_RELEVANT if relevant > irrelevant else RERANK_IRRELEVANT
        assert result.details["order"][0] == first
    if result.verdict == "misordered":
        assert f"{relevant:.4g}" in result.message and f"{irrelevant:.4g}" in result.message
    assert_recordable(result)


@pytest.mark.slow
def test_an_unknown_uid_is_an_error_not_an_exception(client):
    for result in (
        check_chat(client, "no-such-uid"),
        check_embedding(client, "no-such-uid", 384),
        check_rerank(client, "no-such-uid"),
    ):
        assert not result.passed and result.verdict == "error"
        assert "'no-such-uid'" in result.message
        assert result.message.startswith("Xinference could not")
        assert_recordable(result)
