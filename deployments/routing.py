"""Websocket routes: live pipeline progress and live container logs."""

from .consumers import logs, runs

websocket_urlpatterns = [*runs.websocket_urlpatterns, *logs.websocket_urlpatterns]
