"""Routes of the providers pages."""

from django.urls import path

from ..views import providers

urlpatterns: list = [
    path("stacks/<int:pk>/providers/", providers.provider_list, name="provider_list"),
    path("stacks/<int:pk>/providers/new/", providers.provider_create, name="provider_create"),
    path("stacks/<int:pk>/providers/test/", providers.provider_test, name="provider_test"),
    path("providers/<int:pk>/edit/", providers.provider_edit, name="provider_edit"),
    path("providers/<int:pk>/delete/", providers.provider_delete, name="provider_delete"),
]
