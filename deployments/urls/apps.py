"""Routes of the apps pages."""

from django.urls import path

from ..views import apps

urlpatterns: list = [
    path("stacks/<int:pk>/apps/", apps.app_list, name="app_list"),
    path("stacks/<int:pk>/apps/new/", apps.app_create, name="app_create"),
    path("apps/<int:pk>/", apps.app_detail, name="app_detail"),
    path("apps/<int:pk>/edit/", apps.app_edit, name="app_edit"),
    path("apps/<int:pk>/delete/", apps.app_delete, name="app_delete"),
    path("apps/<int:pk>/chat/", apps.app_chat_test, name="app_chat_test"),
    path("apps/<int:pk>/links/", apps.app_share_link_create, name="app_share_link_create"),
    path("apps/links/<int:pk>/revoke/", apps.app_share_link_revoke, name="app_share_link_revoke"),
]
