"""Routes of a team's notification channels."""

from django.urls import path

from ..views import notifications

urlpatterns: list = [
    path(
        "teams/<int:pk>/notifications/",
        notifications.notification_list,
        name="notification_list",
    ),
    path(
        "teams/<int:pk>/notifications/new/",
        notifications.notification_create,
        name="notification_create",
    ),
    path("notifications/<int:pk>/edit/", notifications.notification_edit, name="notification_edit"),
    path(
        "notifications/<int:pk>/delete/",
        notifications.notification_delete,
        name="notification_delete",
    ),
    path("notifications/<int:pk>/test/", notifications.notification_test, name="notification_test"),
]
