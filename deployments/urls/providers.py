"""Routes of the providers pages."""

urlpatterns: list = []
