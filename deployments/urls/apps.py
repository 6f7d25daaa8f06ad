"""Routes of the apps pages."""

urlpatterns: list = []
