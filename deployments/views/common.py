"""What the views of every area share."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_htmx.middleware import HtmxDetails

from ..clients.fastgpt import FastGPTError
from ..knowledge.bases import StackModels, stack_models
from ..models import Stack

PAGE_SIZE = 25


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def paginate(request: HttpRequest, queryset, per_page: int = PAGE_SIZE) -> Page:
    """The requested page; a missing or bad number gives the first, one too high the last."""
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def wants_partial(request: HtmxHttpRequest) -> bool:
    # A history restore after a cache miss needs the whole page, not a fragment.
    return bool(request.htmx) and not request.htmx.history_restore_request


def render_page_or_partial(
    request: HtmxHttpRequest, template_name: str, partial: str, context: dict
) -> HttpResponse:
    """The whole page, or only `partial` of it when htmx asks for a swap."""
    name = f"{template_name}#{partial}" if wants_partial(request) else template_name
    response = render(request, name, context)
    # The same URL answers two bodies: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response


def add_action_errors(form: forms.Form, error: ValidationError) -> None:
    """Show an action's ValidationError on the form, beside the fields it names."""
    errors = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
    for field, field_messages in errors.items():
        form.add_error(field if field in form.fields else None, field_messages)


def form_data(request: HttpRequest):
    """The POSTed data to bind a form to, or None for a blank form on GET."""
    return request.POST if request.method == "POST" else None


def fastgpt_models(stack: Stack) -> tuple[StackModels | None, str]:
    """The models the stack's FastGPT lists, or the sentence saying why it could not tell."""
    try:
        return stack_models(stack), ""
    except FastGPTError as error:
        return None, str(error)
