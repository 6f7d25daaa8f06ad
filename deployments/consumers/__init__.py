"""Websocket consumers. Each checks the user's session and role on its object at connect."""
