"""Routes of the idle guard, on the server page."""

from django.urls import path

from ..views import idle

urlpatterns: list = [
    path("servers/<int:pk>/idle/", idle.server_idle_settings, name="server_idle_settings"),
    path(
        "servers/<int:pk>/idle/keep-running/",
        idle.server_idle_keep_running,
        name="server_idle_keep_running",
    ),
    path(
        "servers/<int:pk>/idle/start-again/",
        idle.server_idle_start_again,
        name="server_idle_start_again",
    ),
]
