"""Team scoping: which objects a user may see, and what their role lets them do.

Every view and consumer goes through here. An object of a team the user is not in
answers 404 (its existence is not revealed); a visible object with too low a role
answers 403 with the role that is needed.

A team may require two-factor authentication of its owners: there, an owner without it acts as an
operator (reads and runs actions, but manages neither members nor secrets) until they turn it on.
"""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from allauth.mfa.models import Authenticator
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.db.models.signals import post_delete, post_save
from django.http import Http404
from django.utils.translation import gettext as _

from controlpanel.accounts import has_two_factor

from .choices import ROLE_RANK, Role
from .models import Membership, Team


def two_factor_needed_message() -> str:
    return _(
        "This team asks its owners for two-factor authentication: turn it on under Account, "
        "then try again."
    )


class TwoFactorRequired(PermissionDenied):
    """An owner of a team that requires two-factor authentication, without it."""


# What a request has read of its user's memberships and two-factor state, so the many checks
# one page makes read them once. Only inside `roles_read_once()` (the middleware's request);
# any change to a membership, a team or an authenticator forgets it at once.
_read: ContextVar[dict | None] = ContextVar("panel_roles_read", default=None)


@contextlib.contextmanager
def roles_read_once() -> Iterator[None]:
    token = _read.set({})
    try:
        yield
    finally:
        _read.reset(token)


def _forget_read_roles(**kwargs) -> None:
    read = _read.get()
    if read is not None:
        read.clear()


for _model in (Membership, Team, Authenticator):
    post_save.connect(_forget_read_roles, sender=_model, dispatch_uid=f"roles-{_model.__name__}")
    post_delete.connect(_forget_read_roles, sender=_model, dispatch_uid=f"roles-{_model.__name__}")


def _remembered(key: tuple, read_now):
    read = _read.get()
    if read is None:
        return read_now()
    if key not in read:
        read[key] = read_now()
    return read[key]


def _memberships(user) -> list[Membership]:
    if not user.is_authenticated:
        return []
    return _remembered(
        ("memberships", user.pk),
        lambda: list(Membership.objects.filter(user=user).select_related("team")),
    )


def _owner_lacks_two_factor(membership: Membership, user, cache: dict) -> bool:
    if membership.role != Role.OWNER or not membership.team.require_owner_two_factor:
        return False
    if "has" not in cache:
        cache["has"] = _remembered(("two_factor", user.pk), lambda: has_two_factor(user))
    return not cache["has"]


def roles_by_team(user) -> dict[int, Role]:
    """The role `user` acts with in each of their teams."""
    roles: dict[int, Role] = {}
    cache: dict = {}
    for membership in _memberships(user):
        if _owner_lacks_two_factor(membership, user, cache):
            roles[membership.team_id] = Role.OPERATOR
        else:
            roles[membership.team_id] = Role(membership.role)
    return roles


def owner_needs_two_factor(user, team: Team | int) -> bool:
    """Whether `user` is an owner of `team` who cannot act as one until they turn on
    two-factor authentication."""
    team_id = team if isinstance(team, int) else team.pk
    for membership in _memberships(user):
        if membership.team_id == team_id:
            return _owner_lacks_two_factor(membership, user, {})
    return False


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
    if has_role(user, team, needed):
        return
    if Role(needed) == Role.OWNER and owner_needs_two_factor(user, team):
        raise TwoFactorRequired(two_factor_needed_message())
    raise PermissionDenied(
        _("This needs the %(role)s role in the team.") % {"role": Role(needed).label.lower()}
    )
