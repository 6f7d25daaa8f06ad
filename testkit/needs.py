"""What a selection of tests needs set up before it runs, so scripts/test prepares only that.

    python -m testkit.needs [pytest arguments]   # e.g. -m "not slow"; prints one need a line

A test marked slow needs what its fixtures need and what its module imports from testkit needs
(a fixture of the module may use any of it). A test not marked slow needs only what its fixtures
need: the marker's meaning is that only slow tests start real services, so the fast tests in a
module that imports the Xinference environment, say, need none of it.

The needs, printed in this order:

- docker: the Docker engine;
- images: the debootstrap base and the SSH target image (`python -m testkit.images`);
- registry: the registry on 127.0.0.1:5000 (testkit/registry.py);
- stack: the stack's images, pushed to that registry (`python -m testkit.images.stack`);
- xinference: the Xinference environment and image (`python -m testkit.xinference_env`);
- chromium: Debian's chromium, which Playwright drives;
- sshd: OpenSSH's server, which the SSH client's tests run on loopback;
- sqlite: a selected test runs on SQLite as well. scripts/test runs every test on PostgreSQL, and
  on SQLite those that need no Docker: `python -m pytest -p testkit.needs --without-docker`.

Redis, PostgreSQL, the SSH client and docker-compose (which parses files without an engine) are
always there: the fast tests use them.
"""

import ast
import contextlib
import functools
import io
import sys
from pathlib import Path

import pytest

ORDER = ("docker", "images", "registry", "stack", "xinference", "chromium", "sshd", "sqlite")

# What each need stands on: the stack's images and Xinference's are built FROM the debootstrap
# base and pushed to the registry.
IMPLIES = {
    "images": {"docker"},
    "registry": {"docker"},
    "stack": {"images", "registry"},
    "xinference": {"images", "registry"},
}

# Every fixture of tests/conftest.py (tests/test_needs.py checks that none is left out).
FIXTURE_NEEDS: dict[str, set[str]] = {
    "_own_compose_projects": set(),
    "_plain_static_storage": set(),
    "_english_after_each_test": set(),
    "team": set(),
    "other_team": set(),
    "owner": set(),
    "operator": set(),
    "viewer": set(),
    "ssh_target_image": {"images"},
    "ssh_target": {"images"},
    "page": {"chromium"},
    "eager_tasks": set(),
    "fastgpt_stack": set(),
    "queued": set(),
    "data_dir": set(),
    "models_dir": set(),
}

# testkit modules whose use needs something, with what the modules they import need (checked by
# tests/test_needs.py); a module not named here needs nothing.
TESTKIT_NEEDS: dict[str, set[str]] = {
    "testkit.browser": {"chromium"},
    "testkit.docker_engine": {"docker"},
    "testkit.images": {"images"},
    "testkit.images.__main__": {"images"},
    "testkit.images.stack": {"stack"},
    "testkit.images.stack.__main__": {"stack"},
    "testkit.logwriter": {"images"},  # a container of the base image
    "testkit.real_launches": {"stack", "xinference"},
    "testkit.registry": {"registry"},
    "testkit.sshd": {"sshd"},
    "testkit.stacks": {"stack", "xinference"},
    "testkit.target": {"images"},
    "testkit.xinference_env": {"xinference"},
    "testkit.xinference_models": {"xinference"},  # runs the environment's python
}


def closure(needs: set[str]) -> set[str]:
    """NEEDS with everything they stand on."""
    found = set(needs)
    while True:
        more = set().union(*(IMPLIES.get(need, set()) for need in found)) - found
        if not more:
            return found
        found |= more


def imported_testkit_modules(source: str) -> set[str]:
    """The testkit modules SOURCE imports, anywhere in it (inside functions too)."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            # `from testkit import target` imports the module testkit.target.
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in modules if name == "testkit" or name.startswith("testkit.")}


def module_needs(name: str) -> set[str]:
    """What using testkit module NAME needs: its own entry and those of its packages."""
    parts = name.split(".")
    prefixes = (".".join(parts[:end]) for end in range(1, len(parts) + 1))
    return set().union(*(TESTKIT_NEEDS.get(prefix, set()) for prefix in prefixes))


@functools.cache
def file_needs(path: Path) -> frozenset[str]:
    """What the testkit imports of the test module at PATH need."""
    if path.suffix != ".py":
        return frozenset()
    modules = imported_testkit_modules(path.read_text())
    return frozenset(set().union(*(module_needs(name) for name in modules)))


def needs_of(*, slow: bool, fixturenames: list[str], path: Path) -> set[str]:
    """The needs of one test (with what they stand on), "sqlite" where it needs no Docker."""
    needs = set().union(*(FIXTURE_NEEDS.get(name, set()) for name in fixturenames))
    if slow:
        needs |= file_needs(path)
    needs = closure(needs)
    if "docker" not in needs:
        needs.add("sqlite")
    return needs


def item_needs(item: pytest.Item) -> set[str]:
    needs = needs_of(
        slow=item.get_closest_marker("slow") is not None,
        fixturenames=list(getattr(item, "fixturenames", ())),
        path=Path(item.path),
    )
    # The SQLite run leaves these out (see kept_in_run): a selection of only such tests has no
    # SQLite run, rather than one that collects nothing.
    if item.get_closest_marker("engine_agnostic") or not uses_database(item):
        needs.discard("sqlite")
    return needs


def ordered(needs: set[str]) -> list[str]:
    return [need for need in ORDER if need in needs]


# The plugin ------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("needs").addoption(
        "--without-docker",
        action="store_true",
        help="deselect the tests that need the Docker engine (scripts/test's SQLite run)",
    )
    parser.getgroup("needs").addoption(
        "--without-engine-agnostic",
        action="store_true",
        help=(
            "deselect the tests marked engine_agnostic and those that never reach the database "
            "(they ran on the other engine)"
        ),
    )


# A test that asks for none of these (and has no django_db mark) never reaches the database.
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
    }
)


def uses_database(item: pytest.Item) -> bool:
    if item.get_closest_marker("django_db"):
        return True
    return not DATABASE_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


def kept_in_run(item: pytest.Item, *, without_docker: bool, without_agnostic: bool) -> bool:
    if without_docker and "docker" in item_needs(item):
        return False
    if without_agnostic:
        return not item.get_closest_marker("engine_agnostic") and uses_database(item)
    return True


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    without_docker = config.getoption("without_docker")
    without_agnostic = config.getoption("without_engine_agnostic")
    if not (without_docker or without_agnostic):
        return
    kept = [
        item
        for item in items
        if kept_in_run(item, without_docker=without_docker, without_agnostic=without_agnostic)
    ]
    if len(kept) < len(items):
        kept_ids = {id(item) for item in kept}
        config.hook.pytest_deselected(items=[i for i in items if id(i) not in kept_ids])
        items[:] = kept


class _Collector:
    """Adds up the needs of the items a collection selected."""

    def __init__(self) -> None:
        self.needs: set[str] = set()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            self.needs |= item_needs(item)


def main(argv: list[str]) -> int:
    """Collect with ARGV (pytest's own output is kept back unless collecting fails), print the
    needs. No test selected prints nothing: the runs that follow then fail as pytest says."""
    collector = _Collector()
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = pytest.main(["--collect-only", "-qq", *argv], plugins=[collector])
    if status not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        sys.stderr.write(output.getvalue())
        print(f"Collecting the tests failed (pytest exit {int(status)}).", file=sys.stderr)
        return int(status)
    for need in ordered(collector.needs):
        print(need)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
