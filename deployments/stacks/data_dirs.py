"""A stack's data directory on its server: its own, and never a directory the system needs.

Two stacks sharing a directory (or one inside the other's) overwrite each other's secrets file
on deploy, and deleting one's data deletes the other's databases. A system directory would mix
the stack's files with the server's own, and a teardown deleting data there would remove them.
"""

import posixpath

from django.utils.translation import gettext as _

from ..models import Stack

# Nothing of a stack goes inside these: the kernel's, the system's programs and settings, the
# container engine's own state, and temporary folders.
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/snap",
    "/sys",
    "/tmp",  # noqa: S108 - refused, not used: emptied at boot, with the stack's databases
    "/usr",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/tmp",  # noqa: S108 - refused, as /tmp
)
# These hold other things beside a stack: a stack may live inside them, never be one.
SHARED_DIRS = frozenset(
    {
        "/",
        "/data",
        "/home",
        "/media",
        "/mnt",
        "/opt",
        "/root",
        "/srv",
        "/var",
        "/var/backups",
        "/var/cache",
        "/var/lib",
        "/var/local",
        "/var/log",
        "/var/mail",
        "/var/opt",
        "/var/spool",
    }
)


def normalized(path: str) -> str:
    return posixpath.normpath("/" + path.strip().lstrip("/"))


def inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies under it (both normalized)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def overlap(first: str, second: str) -> bool:
    """The same directory, or one inside the other."""
    first, second = normalized(first), normalized(second)
    return inside(first, second) or inside(second, first)


def system_path_problem(path: str) -> str | None:
    """Why `path` cannot hold a stack's data, or None."""
    path = normalized(path)
    tree = next((tree for tree in SYSTEM_TREES if inside(path, tree)), None)
    if tree is not None:
        return _(
            "%(path)s is inside %(tree)s, which the system needs: choose another directory."
        ) % {
            "path": path,
            "tree": tree,
        }
    parent = posixpath.dirname(path)
    if path in SHARED_DIRS or parent == "/home":
        return _(
            "%(path)s holds more than this stack: choose a directory of its own inside it, "
            "e.g. %(example)s."
        ) % {"path": path, "example": posixpath.join(path, "fastgpt")}
    return None


def stacks_sharing(stack: Stack) -> list[Stack]:
    """Other stacks of the stack's server whose data directory is the same as its own, or
    inside or around it. The stack may be unsaved (a form's values)."""
    others = Stack.objects.filter(server_id=stack.server_id).only("name", "data_dir")
    if stack.pk is not None:
        others = others.exclude(pk=stack.pk)
    return [other for other in others.order_by("name") if overlap(other.data_dir, stack.data_dir)]


def data_dir_problems(stack: Stack) -> list[str]:
    """Why the stack cannot keep its data where it says, in sentences; empty when it can."""
    problems = []
    system = system_path_problem(stack.data_dir)
    if system:
        problems.append(system)
    for other in stacks_sharing(stack):
        problems.append(
            _(
                "Stack “%(stack)s” on this server keeps its data in %(other)s: each stack needs a "
                "directory of its own, not inside or around another's."
            )
            % {"stack": other.name, "other": other.data_dir}
        )
    return problems
