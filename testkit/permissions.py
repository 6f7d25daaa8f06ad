"""What the permission matrix (tests/test_permission_matrix.py) walks and measures: every route
of the URL configuration and of the websocket routing, the path that reaches a route with given
arguments, and a snapshot of the database that tells whether a refused request changed anything.
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from channels.routing import URLRouter
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

# <int:pk> in a route pattern; (?P<app_label>a|b) in a regular expression (none nests groups).
_ROUTE_ARGUMENT = re.compile(r"<(?:[^>:]+:)?(?P<name>[^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^()]*\)")


@dataclass(frozen=True)
class Route:
    """One route: its name, the pattern of each level it is nested in, and what it calls.

    An HTTP route is named as reverse() names it ("admin:index"); one without a name by its
    namespace and whole pattern. A websocket route is named by its consumer's class.
    """

    name: str
    patterns: tuple[Any, ...]
    callback: Any

    @property
    def pattern(self) -> str:
        return "".join(str(pattern) for pattern in self.patterns)

    @property
    def arguments(self) -> tuple[str, ...]:
        names: list[str] = []
        for pattern in self.patterns:
            if isinstance(pattern, RoutePattern):
                names.extend(pattern.converters)
            else:
                names.extend(pattern.regex.groupindex)
        return tuple(names)

    def path(self, values: Mapping[str, object]) -> str:
        """The path of this route with `values` for its arguments."""
        return "/" + "".join(_fill(pattern, values) for pattern in self.patterns)

    def __str__(self) -> str:
        return self.name


def _fill(pattern, values: Mapping[str, object]) -> str:
    if isinstance(pattern, RoutePattern):
        return _ROUTE_ARGUMENT.sub(lambda m: str(values[m["name"]]), str(pattern))
    regex = str(pattern).removeprefix("^").removesuffix("$")
    return _REGEX_GROUP.sub(lambda m: str(values[m["name"]]), regex)


def _walk_http(entries: Iterable, parents: tuple, namespace: str) -> Iterator[Route]:
    for entry in entries:
        if isinstance(entry, URLResolver):
            inner = ":".join(part for part in (namespace, entry.namespace or "") if part)
            yield from _walk_http(entry.url_patterns, (*parents, entry.pattern), inner)
            continue
        patterns = (*parents, entry.pattern)
        name = entry.name or "<{}>".format("".join(str(p) for p in patterns))
        yield Route(f"{namespace}:{name}" if namespace else name, patterns, entry.callback)


def http_routes() -> list[Route]:
    """Every route of the URL configuration, through every include."""
    return list(_walk_http(get_resolver().url_patterns, (), ""))


def _walk_websocket(entries: Iterable, parents: tuple) -> Iterator[Route]:
    for entry in entries:
        if isinstance(entry, URLPattern) and isinstance(entry.callback, URLRouter):
            yield from _walk_websocket(entry.callback.routes, (*parents, entry.pattern))
            continue
        consumer = getattr(entry.callback, "consumer_class", entry.callback)
        yield Route(consumer.__name__, (*parents, entry.pattern), entry.callback)


def websocket_routes() -> list[Route]:
    """Every websocket route of the ASGI application, with its consumer's class as its name."""
    from deployments.routing import websocket_urlpatterns

    return list(_walk_websocket(websocket_urlpatterns, ()))


def reaches(route: Route, path: str) -> bool:
    """Whether `path` resolves to `route`'s view (the path was built right)."""
    return resolve(path).func is route.callback


def snapshot() -> dict[str, object]:
    """What a refused request must leave as it was: the rows of every model of the project and
    of the accounts, counted, and who has which role in which team."""
    from deployments.models import Membership

    models = [*apps.get_app_config("deployments").get_models(), apps.get_model("auth", "User")]
    state: dict[str, object] = {
        model._meta.label: model._default_manager.count() for model in models
    }
    state["roles"] = sorted(Membership.objects.values_list("team_id", "user_id", "role"))
    return state
