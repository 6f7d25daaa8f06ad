"""A stack's backups: the list, "Back up now", how many are kept and when, and downloads."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.backups import (
    SETTINGS_FIELDS,
    do_backup_stack,
    do_open_download,
    do_restore_backup,
    do_save_backup_settings,
    download_name,
    read_in_thread,
)
from ..choices import Role
from ..models import Stack, StackBackup, StackBackupSettings
from ..models.backups import backup_settings
from .common import HtmxHttpRequest, add_action_errors, form_data

LISTED_BACKUPS = 50


class BackupSettingsForm(forms.ModelForm):
    class Meta:
        model = StackBackupSettings
        fields = SETTINGS_FIELDS


class RestoreForm(forms.Form):
    confirm_name = forms.CharField(
        label=gettext_lazy("To restore, type the stack's name"), max_length=64
    )


def _stack(request: HtmxHttpRequest, pk: int) -> Stack:
    return access.get_visible_or_404(
        Stack.objects.select_related("team", "server"), request.user, pk=pk
    )


@login_required
def stack_backups(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = _stack(request, pk)
    can_operate = access.has_role(request.user, stack.team, Role.OPERATOR)
    current = backup_settings(stack)
    backups = stack.backups.select_related("run", "created_by")[:LISTED_BACKUPS]
    context = {
        "stack": stack,
        "backups": backups,
        "settings": current,
        "can_operate": can_operate,
        "form": BackupSettingsForm(instance=current) if can_operate else None,
    }
    return render(request, "deployments/stack_backups.html", context)


@login_required
@require_POST
def stack_backup_start(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = _stack(request, pk)
    try:
        backup = do_backup_stack(stack, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
        return redirect("stack_backups", pk=stack.pk)
    messages.success(request, _("Backup started."))
    return redirect("run_detail", pk=backup.run_id)


@login_required
@require_POST
def stack_backup_settings(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = _stack(request, pk)
    access.require_role(request.user, stack.team, Role.OPERATOR)
    form = BackupSettingsForm(request.POST, instance=backup_settings(stack))
    if form.is_valid():
        try:
            do_save_backup_settings(
                stack, data=form.cleaned_data, user=request.user, request=request
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, _("Backup settings saved."))
    else:
        problems = [str(message) for errors in form.errors.values() for message in errors]
        messages.error(
            request, _("Backup settings not saved: %(problems)s") % {"problems": " ".join(problems)}
        )
    return redirect("stack_backups", pk=stack.pk)


@login_required
@require_POST
def stack_backup_download(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The backup's folder as a tar, streamed from the server as it is read."""
    backup = access.get_visible_or_404(
        StackBackup.objects.select_related("team", "stack__server"), request.user, pk=pk
    )
    try:
        chunks = do_open_download(backup, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
        return redirect("stack_backups", pk=backup.stack_id)
    if isinstance(request, ASGIRequest):
        chunks = read_in_thread(chunks)
    response = StreamingHttpResponse(chunks, content_type="application/x-tar")
    response["Content-Disposition"] = f'attachment; filename="{download_name(backup)}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
def stack_backup_restore(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Confirm by the stack's name, then restore the backup into its stack."""
    backup = access.get_visible_or_404(
        StackBackup.objects.select_related("team", "stack__server"), request.user, pk=pk
    )
    access.require_role(request.user, backup.team, Role.OPERATOR)
    if not backup.downloadable:
        messages.error(
            request, _("This backup is not on the server (any more): it cannot be restored.")
        )
        return redirect("stack_backups", pk=backup.stack_id)
    form = RestoreForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        try:
            run = do_restore_backup(
                backup,
                confirm_name=form.cleaned_data["confirm_name"],
                user=request.user,
                request=request,
            )
        except ActionError as error:
            messages.error(request, str(error))
            return redirect("stack_backups", pk=backup.stack_id)
        except ValidationError as error:
            add_action_errors(form, error)
        else:
            messages.success(request, _("Restore started."))
            return redirect("run_detail", pk=run.pk)
    context = {"backup": backup, "stack": backup.stack, "form": form}
    return render(request, "deployments/stack_backup_restore.html", context)
