from django.urls import path

from ..views import (
    audit,
    backups,
    dashboard,
    history,
    invitations,
    launches,
    logs,
    runs,
    search,
    servers,
    stacks,
    teams,
)
from ..views import llm as model_views
from . import apps, idle, knowledge, notifications, providers

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("servers/", servers.server_list, name="server_list"),
    path("servers/new/", servers.server_create, name="server_create"),
    path("servers/<int:pk>/", servers.server_detail, name="server_detail"),
    path("servers/<int:pk>/edit/", servers.server_edit, name="server_edit"),
    path("servers/<int:pk>/check/", servers.server_check, name="server_check"),
    path("servers/<int:pk>/prepare/", servers.server_prepare, name="server_prepare"),
    path(
        "servers/<int:pk>/host-key/accept/",
        servers.server_accept_host_key,
        name="server_accept_host_key",
    ),
    path("stacks/", stacks.stack_list, name="stack_list"),
    path("stacks/new/", stacks.stack_create, name="stack_create"),
    path("stacks/<int:pk>/", stacks.stack_detail, name="stack_detail"),
    path("stacks/<int:pk>/deploy/", stacks.stack_deploy, name="stack_deploy"),
    path("stacks/<int:pk>/restart/", stacks.stack_restart, name="stack_restart"),
    path("stacks/<int:pk>/upgrade/", stacks.stack_upgrade, name="stack_upgrade"),
    path(
        "stacks/<int:pk>/rollback/<int:deployment_pk>/",
        stacks.stack_rollback,
        name="stack_rollback",
    ),
    path("stacks/<int:pk>/teardown/", stacks.stack_teardown, name="stack_teardown"),
    path("stacks/<int:pk>/services/", stacks.stack_refresh_services, name="stack_services"),
    path(
        "stacks/<int:pk>/services/table/",
        stacks.stack_services_table,
        name="stack_services_table",
    ),
    path("stacks/<int:pk>/logins/", stacks.stack_reveal_login, name="stack_reveal_login"),
    path("stacks/<int:pk>/backups/", backups.stack_backups, name="stack_backups"),
    path("stacks/<int:pk>/backups/new/", backups.stack_backup_start, name="stack_backup_start"),
    path(
        "stacks/<int:pk>/backups/settings/",
        backups.stack_backup_settings,
        name="stack_backup_settings",
    ),
    path("backups/<int:pk>/download/", backups.stack_backup_download, name="stack_backup_download"),
    path("backups/<int:pk>/restore/", backups.stack_backup_restore, name="stack_backup_restore"),
    path("stacks/<int:pk>/logs/", logs.stack_logs, name="stack_logs"),
    path("stacks/<int:pk>/logs/recent.json", logs.stack_logs_recent, name="stack_logs_recent"),
    path("services/<int:pk>/logs/", logs.service_logs, name="stack_service_logs"),
    path(
        "services/<int:pk>/logs/recent.json",
        logs.service_logs_recent,
        name="stack_service_logs_recent",
    ),
    path("deployments/", history.deployment_list, name="deployment_list"),
    path("deployments/<int:pk>/", history.deployment_detail, name="deployment_detail"),
    path("runs/<int:pk>/", runs.run_detail, name="run_detail"),
    path("runs/<int:pk>/steps/", runs.run_steps, name="run_steps"),
    path("runs/<int:pk>/retry/", runs.run_retry, name="run_retry"),
    path("runs/<int:pk>/cancel/", runs.run_cancel, name="run_cancel"),
    path("teams/", teams.team_list, name="team_list"),
    path("teams/new/", teams.team_create, name="team_create"),
    path("teams/<int:pk>/", teams.team_detail, name="team_detail"),
    path(
        "teams/<int:pk>/invitations/new/",
        teams.team_invitation_create,
        name="team_invitation_create",
    ),
    path(
        "teams/<int:pk>/invitations/<int:invitation_pk>/revoke/",
        teams.team_invitation_revoke,
        name="team_invitation_revoke",
    ),
    path(
        "teams/<int:pk>/owner-two-factor/",
        teams.team_owner_two_factor,
        name="team_owner_two_factor",
    ),
    path("teams/<int:pk>/budget/", teams.team_budget, name="team_budget"),
    path(
        "teams/<int:pk>/members/<int:membership_pk>/role/",
        teams.team_member_role,
        name="team_member_role",
    ),
    path(
        "teams/<int:pk>/members/<int:membership_pk>/remove/",
        teams.team_member_remove,
        name="team_member_remove",
    ),
    path("audit/", audit.audit_list, name="audit_list"),
    path("search/", search.search, name="search"),
    # Public: the person invited may not have an account yet. The link's token is after "#",
    # never in a path or query.
    path("invitations/accept/", invitations.invitation_accept, name="invitation_accept"),
]

urlpatterns += [
    path("models/", model_views.model_list, name="model_list"),
    # Before the configs' patterns, which "launches" would match as a kind.
    path("models/launches/<int:pk>/", launches.model_launch_detail, name="model_launch_detail"),
    path(
        "models/launches/<int:pk>/cancel/",
        launches.model_launch_cancel,
        name="model_launch_cancel",
    ),
    path(
        "models/launches/<int:pk>/terminate/",
        launches.model_launch_terminate,
        name="model_launch_terminate",
    ),
    path("models/presets/", model_views.model_preset, name="model_preset"),
    path("models/<slug:kind>/new/", model_views.model_create, name="model_create"),
    path("models/<slug:kind>/<int:pk>/", model_views.model_detail, name="model_detail"),
    path("models/<slug:kind>/<int:pk>/edit/", model_views.model_edit, name="model_edit"),
    path("models/<slug:kind>/<int:pk>/delete/", model_views.model_delete, name="model_delete"),
    path(
        "models/<slug:kind>/<int:pk>/launch/",
        launches.model_launch_create,
        name="model_launch_create",
    ),
]

# Each area's routes live in their own module.
urlpatterns += knowledge.urlpatterns + apps.urlpatterns + providers.urlpatterns
urlpatterns += notifications.urlpatterns + idle.urlpatterns
