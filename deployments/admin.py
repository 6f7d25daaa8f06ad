from django.contrib import admin

from . import models


class ReadOnlyMixin:
    """View only. Servers, stacks, runs, deployments, launches and the rest change through
    the panel's actions, which check roles and write the audit trail; the admin is no way
    around them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(ReadOnlyMixin, admin.TabularInline):
    extra = 0


class TeamScopedAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_filter = ["team"]


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0


@admin.register(models.Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    inlines = [MembershipInline]


@admin.register(models.AuditEvent)
class AuditEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The trail is append-only, even for administrators."""

    list_display = ["created_at", "actor_name", "action", "target_type", "target_repr", "team"]
    list_filter = ["action", "team"]
    search_fields = ["actor_name", "target_repr"]


@admin.register(models.Server)
class ServerAdmin(TeamScopedAdmin):
    list_display = ["name", "team", "host", "ssh_port", "ssh_user", "status"]
    search_fields = ["name", "host"]
    # The key is never rendered back, not even to administrators.
    exclude = ["ssh_private_key"]
    readonly_fields = ["host_key_fingerprint", "facts", "facts_checked_at", "last_error"]


class ServiceInline(ReadOnlyInline):
    model = models.Service


@admin.register(models.Stack)
class StackAdmin(TeamScopedAdmin):
    list_display = ["name", "team", "server", "version_line", "status"]
    exclude = ["secrets"]
    inlines = [ServiceInline]


class StepRunInline(ReadOnlyInline):
    model = models.StepRun
    readonly_fields = ["index", "name", "attempt", "status", "started_at", "finished_at", "error"]
    exclude = ["output"]


@admin.register(models.PipelineRun)
class PipelineRunAdmin(TeamScopedAdmin):
    list_display = ["id", "kind", "team", "status", "next_step", "attempt", "created_at"]
    list_filter = ["status", "kind", "team"]
    inlines = [StepRunInline]


@admin.register(models.Deployment)
class DeploymentAdmin(TeamScopedAdmin):
    list_display = ["id", "action", "stack", "user", "created_at"]


for model in (
    models.LLMModelConfig,
    models.EmbeddingModelConfig,
    models.RerankModelConfig,
):
    admin.site.register(model, TeamScopedAdmin)


@admin.register(models.ModelLaunch)
class ModelLaunchAdmin(TeamScopedAdmin):
    list_display = ["model_uid", "stack", "status", "progress", "created_at"]


@admin.register(models.KnowledgeBase)
class KnowledgeBaseAdmin(TeamScopedAdmin):
    list_display = ["name", "stack", "team"]


@admin.register(models.Document)
class DocumentAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["name", "knowledge_base", "status", "created_at"]


@admin.register(models.ChatApp)
class ChatAppAdmin(TeamScopedAdmin):
    list_display = ["name", "stack", "team"]


@admin.register(models.RemoteProvider)
class RemoteProviderAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["name", "stack", "channel_type", "last_test_ok"]
    # The key is a secret: never shown, not even encrypted.
    exclude = ["api_key"]


@admin.register(models.ShareLink)
class ShareLinkAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["name", "app", "expires_at"]
