"""Chat apps, their share links and a test question."""

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..actions.apps import QPM_RANGE, QUESTION_MAX, QUOTE_LIMIT_RANGE
from ..knowledge.apps import NAME_MAX, validate_display_name, validate_text
from ..models import ChatApp, KnowledgeBase, Stack


class ChatAppForm(forms.Form):
    """An app's settings. The chat models are those the stack's FastGPT lists (the view asks
    it); rerank is offered only where it lists a rerank model."""

    name = forms.CharField(label=_("Name"), max_length=NAME_MAX, validators=[validate_display_name])
    chat_model = forms.ChoiceField(
        label=_("Chat model"),
        help_text=_("A chat model FastGPT on this stack lists."),
        error_messages={"invalid_choice": _("Choose one of the chat models FastGPT lists.")},
    )
    knowledge_bases = forms.ModelMultipleChoiceField(
        label=_("Knowledge bases"),
        queryset=KnowledgeBase.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "FastGPT searches them all with one embedding model: choose knowledge bases that "
            "share one."
        ),
        error_messages={
            "required": _("Choose at least one knowledge base to answer from."),
            "invalid_choice": _("Choose knowledge bases of this stack."),
            "invalid_pk_value": _("Choose knowledge bases of this stack."),
        },
    )
    system_prompt = forms.CharField(
        label=_("System prompt"),
        required=False,
        max_length=3000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        validators=[validate_text],
        help_text=_("Instructions the chat model gets before every question."),
    )
    similarity = forms.FloatField(
        label=_("Minimum similarity"),
        initial=0.4,
        min_value=0,
        max_value=1,
        widget=forms.NumberInput(attrs={"step": "0.01"}),
        help_text=_("0 to 1: chunks less similar to the question are not quoted."),
    )
    quote_limit = forms.IntegerField(
        label=_("Quote limit (tokens)"),
        initial=1500,
        min_value=QUOTE_LIMIT_RANGE[0],
        max_value=QUOTE_LIMIT_RANGE[1],
        help_text=_("100 to 20000: the most tokens of quoted chunks handed to the chat model."),
    )
    using_rerank = forms.BooleanField(
        label=_("Rerank the found chunks"),
        required=False,
        help_text=_("With the rerank model FastGPT lists, before quoting them."),
    )

    def __init__(
        self,
        *args,
        stack: Stack,
        chat_models: list[tuple[str, str]],
        rerank: bool,
        app: ChatApp | None = None,
        **kwargs,
    ):
        if app is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": app.name,
                    "chat_model": app.chat_model,
                    "knowledge_bases": list(app.knowledge_bases.all()),
                    "system_prompt": app.system_prompt,
                    "similarity": app.similarity,
                    "quote_limit": app.quote_limit,
                    "using_rerank": app.using_rerank,
                },
            )
        super().__init__(*args, **kwargs)
        self.fields["chat_model"].choices = list(chat_models)
        knowledge_bases = self.fields["knowledge_bases"]
        knowledge_bases.queryset = (
            KnowledgeBase.objects.filter(stack=stack, team=stack.team)
            .exclude(fastgpt_dataset_id="")
            .order_by("name")
        )
        knowledge_bases.label_from_instance = lambda kb: f"{kb.name} ({kb.embedding_model})"
        if app is not None:
            self.fields["name"].help_text = _(
                "A new name shows at once, on share links too; it needs no new version."
            )
        if not rerank:
            del self.fields["using_rerank"]


class ShareLinkForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=NAME_MAX, validators=[validate_display_name])
    show_references = forms.BooleanField(
        label=_("Show the quoted passages under each answer"), required=False
    )
    qpm = forms.IntegerField(
        label=_("Rate limit (questions a minute)"),
        initial=100,
        min_value=QPM_RANGE[0],
        max_value=QPM_RANGE[1],
        help_text=_("Stored with the link; FastGPT's community edition does not enforce it."),
    )
    expires_at = forms.DateTimeField(
        label=_("Expires"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Optional. Empty: the link never expires."),
    )

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError(_("Choose an expiry in the future."), code="past")
        return expires_at


class ChatTestForm(forms.Form):
    question = forms.CharField(
        label=_("Question"),
        max_length=QUESTION_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        validators=[validate_text],
    )


class AppDeleteForm(forms.Form):
    confirm_name = forms.CharField(label=_("Type the app's name to delete it"), max_length=NAME_MAX)
