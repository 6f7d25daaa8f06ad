"""`python -m testkit.images.stack`: build the stack's images that are missing, push them all to
the local registry, print their references and the time each step took."""

import sys

from testkit.docker_engine import engine_error
from testkit.images.stack import ensure_stack_images, services_without_image


def main() -> int:
    problem = engine_error()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        pushed = ensure_stack_images()
    except Exception as error:
        print(f"Building the stack images failed: {error}", file=sys.stderr)
        return 1
    for service, references in pushed.items():
        print(f"{service}: {' '.join(references)}")
    for service in services_without_image():
        print(f"{service}: not built here, not pushed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
