"""Team scoping: which objects a user may see, and what their role lets them do.

Every view and consumer goes through here. An object of a team the user is not in
answers 404 (its existence is not revealed); a visible object with too low a role
answers 403 with the role that is needed.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404

from .choices import ROLE_RANK, Role
from .models import Membership, Team


def roles_by_team(user) -> dict[int, Role]:
    if not user.is_authenticated:
        return {}
    return {m.team_id: Role(m.role) for m in Membership.objects.filter(user=user)}


def team_ids(user, min_role: Role = Role.VIEWER) -> list[int]:
    return [
        team_id
        for team_id, role in roles_by_team(user).items()
        if ROLE_RANK[role] >= ROLE_RANK[min_role]
    ]


def teams(user, min_role: Role = Role.VIEWER) -> QuerySet[Team]:
    return Team.objects.filter(pk__in=team_ids(user, min_role))


def team_path(model: type[Model]) -> str:
    """The lookup from a model to its owning team ("team", or "stack__team", ...)."""
    return getattr(model, "team_path", "team")


def visible(queryset: QuerySet, user) -> QuerySet:
    return queryset.filter(**{f"{team_path(queryset.model)}__in": team_ids(user)})


def get_visible_or_404(queryset: QuerySet, user, **lookup) -> Model:
    try:
        return visible(queryset, user).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404("No such object in your teams.") from None


def role_in(user, team: Team | int) -> Role | None:
    team_id = team if isinstance(team, int) else team.pk
    return roles_by_team(user).get(team_id)


def has_role(user, team: Team | int, needed: Role) -> bool:
    role = role_in(user, team)
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[needed]


def require_role(user, team: Team | int, needed: Role) -> None:
    if not has_role(user, team, needed):
        raise PermissionDenied(f"This needs the {Role(needed).label.lower()} role in the team.")
