"""Routes are filled in as the consumers land."""

websocket_urlpatterns: list = []
