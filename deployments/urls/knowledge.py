"""Routes of the knowledge pages."""

urlpatterns: list = []
