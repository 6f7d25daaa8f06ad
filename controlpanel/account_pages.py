"""The account page: links to what a user manages of their own account."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .accounts import has_two_factor


@login_required
def account_index(request):
    return render(request, "account/index.html", {"two_factor": has_two_factor(request.user)})
