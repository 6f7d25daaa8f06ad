"""One click from files to a public chatbot: stage the files, then one run makes the knowledge
base, imports and trains them, makes the chat app and publishes its share link."""

from collections.abc import Callable

from django.utils.translation import gettext as _

from .. import access
from ..choices import PipelineKind, Role
from ..knowledge import staging
from ..models import ChatApp, KnowledgeBase, PipelineRun, Stack
from . import ActionError, require_deployed
from .pipelines import do_start_run


def do_stage_for_publish(
    stack: Stack, *, read: Callable[[int], bytes], name: str, user
) -> dict[str, object]:
    """Stream one file to the staging folder; a token the publish form sends back for it."""
    access.require_role(user, stack.team_id, Role.OPERATOR)
    try:
        staged, size = staging.receive(read, name)
    except staging.BadUpload as error:
        raise ActionError(str(error)) from error
    return {"id": staging.token_for(staged, stack.pk, name, size), "name": name, "size": size}


def do_stage_piece_for_publish(
    stack: Stack, *, read: Callable[[int], bytes], piece: staging.Piece, user
) -> dict[str, object]:
    """One piece of a file sent in pieces: the token for the next piece, or once the last is
    in, the token the publish form sends back for the file."""
    access.require_role(user, stack.team_id, Role.OPERATOR)
    try:
        received = staging.take_piece(read, piece, target=f"publish:{stack.pk}", user_id=user.pk)
    except staging.BadUpload as error:
        raise ActionError(str(error)) from error
    if not received.done:
        return {"next": received.token, "received": received.size}
    token = staging.token_for(received.staged, stack.pk, piece.name, received.size)
    return {"id": token, "name": piece.name, "size": received.size}


def do_publish_chatbot(
    stack: Stack,
    *,
    name: str,
    embedding_model: str,
    agent_model: str,
    chat_model: str,
    files: list[str],
    training_type: str,
    chunk_size: int,
    chunk_splitter: str = "",
    user,
    request=None,
) -> PipelineRun:
    """Start the publish run. `files` are the tokens the uploads answered."""
    access.require_role(user, stack.team_id, Role.OPERATOR)
    require_deployed(stack)
    if (
        KnowledgeBase.objects.filter(stack=stack, name=name).exists()
        or ChatApp.objects.filter(stack=stack, name=name).exists()
    ):
        raise ActionError(
            _("Stack “%(stack)s” already has a knowledge base or chat app called “%(name)s”.")
            % {"stack": stack.name, "name": name}
        )
    if not files:
        raise ActionError(_("Add at least one file for the chatbot to answer from."))
    try:
        staged = [staging.staged_from_token(token, stack.pk) for token in files]
    except staging.BadUpload as error:
        raise ActionError(str(error)) from error
    return do_start_run(
        team=stack.team,
        kind=PipelineKind.CHATBOT_PUBLISH,
        params={
            "stack_id": stack.pk,
            "name": name,
            "embedding_model": embedding_model,
            "agent_model": agent_model,
            "chat_model": chat_model,
            "training_type": training_type,
            "chunk_size": chunk_size,
            "chunk_splitter": chunk_splitter,
            "files": staged,
        },
        user=user,
        request=request,
    )
