"""testkit/needs.py: scripts/test prepares what the selected tests need, and only that."""

import ast
import subprocess
import sys
from pathlib import Path

from testkit.needs import (
    FIXTURE_NEEDS,
    IMPLIES,
    ORDER,
    TESTKIT_NEEDS,
    closure,
    imported_testkit_modules,
    module_needs,
    needs_of,
)

ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout.split()


def test_the_fast_layer_needs_no_docker_no_browser_and_no_sshd_and_runs_on_sqlite():
    assert run("-m", "testkit.needs", "-m", "not slow") == ["sqlite"]


def test_a_module_with_slow_xinference_tests_needs_xinference():
    module = "tests/test_xinference_client.py"
    # Its other tests never reach the database: the SQLite run would leave them out too.
    assert run("-m", "testkit.needs", module) == ["docker", "images", "registry", "xinference"]


def test_a_selection_that_the_sqlite_run_would_leave_out_entirely_has_no_sqlite_run():
    """Tests that need Docker or never reach the database run on PostgreSQL only: a SQLite run
    of them would collect nothing, which scripts/test counts as a failure."""
    selection = ("tests/test_panel_image.py", "tests/test_start_redis.py")
    assert run("-m", "testkit.needs", *selection) == ["docker", "images"]
    sqlite_run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q"]
        + ["-p", "testkit.needs", "--without-docker", "--without-engine-agnostic", *selection],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sqlite_run.returncode == 5, sqlite_run.stdout[-2000:]  # pytest: nothing collected


def test_without_docker_deselects_the_tests_that_need_it():
    from tests import test_xinference_client as module

    kept = run(
        *("-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q"),
        *("-p", "testkit.needs", "--without-docker", "tests/test_xinference_client.py"),
    )
    names = [line.split("::")[1] for line in kept if "::" in line]
    # The module's slow tests start a real Xinference; the others need no Docker.
    assert names and "deselected" in " ".join(kept)
    for name in names:
        marks = getattr(getattr(module, name), "pytestmark", [])
        assert all(mark.name != "slow" for mark in marks), name


def test_without_engine_agnostic_keeps_only_the_unmarked_tests_that_reach_the_database(tmp_path):
    module = tmp_path / "test_engines.py"
    module.write_text(
        "import pytest\n"
        "@pytest.mark.engine_agnostic\n"
        "def test_page(db):\n"
        "    pass\n"
        "def test_rows(db):\n"
        "    pass\n"
        "@pytest.mark.django_db\n"
        "def test_marked():\n"
        "    pass\n"
        "@pytest.fixture\n"
        "def team(db):\n"
        "    pass\n"
        "def test_through_a_fixture(team):\n"
        "    pass\n"
        "def test_parser():\n"
        "    pass\n"
    )
    collect = ("-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-p")
    both = run(*collect, "testkit.needs", str(module))
    one = run(*collect, "testkit.needs", "--without-engine-agnostic", str(module))
    assert [line.split("::")[1] for line in both if "::" in line] == [
        "test_page",
        "test_rows",
        "test_marked",
        "test_through_a_fixture",
        "test_parser",
    ]
    assert [line.split("::")[1] for line in one if "::" in line] == [
        "test_rows",
        "test_marked",
        "test_through_a_fixture",
    ]


def test_fixtures_count_for_every_test_and_imports_for_slow_ones(tmp_path):
    module = tmp_path / "test_example.py"
    module.write_text(
        "import pytest\n"
        "from testkit.factories import make_team\n"
        "def test_x():\n"
        "    from testkit.browser import log_in\n"
    )
    assert needs_of(slow=False, fixturenames=["db", "team"], path=module) == {"sqlite"}
    assert needs_of(slow=True, fixturenames=["db"], path=module) == {"chromium", "sqlite"}
    assert needs_of(slow=False, fixturenames=["ssh_target"], path=module) == {"docker", "images"}


def test_what_a_need_stands_on_comes_with_it():
    assert closure({"stack"}) == {"stack", "images", "registry", "docker"}
    assert closure({"xinference"}) == {"xinference", "images", "registry", "docker"}
    assert closure({"chromium", "sshd"}) == {"chromium", "sshd"}
    named = set(IMPLIES).union(*IMPLIES.values(), *FIXTURE_NEEDS.values(), *TESTKIT_NEEDS.values())
    assert named <= set(ORDER)


def test_imports_are_found_in_every_form():
    source = (
        "import testkit.images.stack\n"
        "from testkit import target\n"
        "from testkit.registry import MIRROR_PREFIX\n"
        "from deployments import models\n"
        "def f():\n"
        "    from testkit.sshd import free_port\n"
    )
    found = imported_testkit_modules(source)
    assert {"testkit.images.stack", "testkit.target", "testkit.registry", "testkit.sshd"} <= found
    assert not any(name.startswith("deployments") for name in found)
    assert module_needs("testkit.images.stack") == {"images", "stack"}
    assert module_needs("testkit.standins.fastgpt.chat") == set()


def test_every_fixture_of_conftest_has_its_needs_named():
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text())
    fixtures = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)
    }
    assert fixtures == set(FIXTURE_NEEDS)


def test_each_testkit_module_needs_at_least_what_the_modules_it_imports_need():
    for path in sorted((ROOT / "testkit").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        imported = set().union(
            *(module_needs(other) for other in imported_testkit_modules(path.read_text()))
        )
        assert closure(imported) <= closure(module_needs(name)), name
