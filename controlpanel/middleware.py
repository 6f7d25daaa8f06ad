"""Response headers the panel adds to every page."""

from django.utils.cache import patch_cache_control
from django.utils.deprecation import MiddlewareMixin


class NoStoreForUsersMiddleware(MiddlewareMixin):
    """Pages for a logged-in user show team data: no browser or proxy cache may keep them
    (the back button after logging out, a shared computer, a caching proxy)."""

    def process_response(self, request, response):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response


class LoginLockoutStatusMiddleware(MiddlewareMixin):
    """429 for a login that django-axes refused or locked. The page stays the login form, with
    the wait in its errors (controlpanel.login): axes's own middleware would swap it for a bare
    message, and passes its hook the wrong arguments under ASGI (jazzband/django-axes#1494)."""

    def process_response(self, request, response):
        if getattr(request, "axes_locked_out", False):
            response.status_code = 429
        return response
