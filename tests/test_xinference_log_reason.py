"""A failed launch's reason read from Xinference's log, where the release keeps it nowhere else."""

from pathlib import Path

from deployments.stacks.xinference_access import REASON_MAX_CHARS, error_in_log

FIXTURES = Path(__file__).parent / "fixtures" / "xinference"

# Shaped after what 0.16 prints when a launch that did not wait fails: asyncio reports the
# launch task's exception with its traceback (the release has no other place for the reason).
ASYNC_TASK_FAILURE = (FIXTURES / "async_launch_failed.log").read_text()


def test_the_last_exception_line_naming_the_model_is_the_reason():
    reason = error_in_log(ASYNC_TASK_FAILURE, ("qwen-chat", "qwen2-instruct"))
    assert reason == (
        "Model not found, name: qwen2-instruct, format: awq, size: 7, quantization: Int3"
    )


def test_an_error_about_another_model_loses_to_one_about_this_one():
    log = (
        "ValueError: [address=0.0.0.0:1, pid=1] Model not found, name: mine\n"
        "2024-11-20 08:04:00,000 xinference.api 1 ERROR    Model other-model is not ready\n"
    )
    assert error_in_log(log, ("mine",)) == "Model not found, name: mine"


def test_without_an_error_naming_the_model_the_last_error_is_given():
    log = (
        "2024-11-20 08:04:00,000 xinference.core.worker 1 ERROR    first failure\n"
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "2024-11-20 08:04:01,000 xinference.core.worker 1 INFO     Leave launch_builtin_model\n"
    )
    assert error_in_log(log, ("mine",)) == "CUDA out of memory. Tried to allocate 2.00 GiB"


def test_a_log_without_errors_gives_no_reason():
    log = "2024-11-20 08:03:10,007 xinference.core.worker 1 INFO     Enter launch_builtin_model\n"
    assert error_in_log(log, ("mine",)) is None
    assert error_in_log("", ("mine",)) is None


def test_a_long_reason_is_cut_short():
    log = "ValueError: Model not found, name: mine, available: " + "x, " * 1000 + "\n"
    reason = error_in_log(log, ("mine",))
    assert reason.startswith("Model not found, name: mine")
    assert len(reason) == REASON_MAX_CHARS and reason.endswith("…")
