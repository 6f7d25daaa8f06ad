"""Websocket routes. Live progress and log consumers are added here."""

websocket_urlpatterns: list = []
