"""The request-wide cache of the user's roles (see access.roles_read_once)."""

from .access import roles_read_once


def roles_read_once_middleware(get_response):
    """One page checks the user's role many times (navigation, each row's actions): the
    memberships are read once per request."""

    def middleware(request):
        with roles_read_once():
            return get_response(request)

    return middleware
