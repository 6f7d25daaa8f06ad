"""`python -m testkit.images`: build the test images that are missing, print their tags."""

import sys

from testkit.docker_engine import engine_error
from testkit.images import ensure_all


def main() -> int:
    problem = engine_error()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        images = ensure_all()
    except Exception as error:
        print(f"Building the test images failed: {error}", file=sys.stderr)
        return 1
    for name, tag in images.items():
        print(f"{name}: {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
