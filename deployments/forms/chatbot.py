"""The one-click chatbot: a name, the models, how to chunk the files."""

from django import forms
from django.utils.translation import gettext_lazy as _

from ..knowledge.bases import StackModels
from .knowledge import ChunkingForm, no_control_characters


class PublishChatbotForm(ChunkingForm):
    name = forms.CharField(
        label=_("Chatbot name"),
        max_length=100,
        validators=[no_control_characters],
        help_text=_("Its knowledge base, chat app and share link are all named so."),
    )
    chat_model = forms.ChoiceField(label=_("Chat model"))
    embedding_model = forms.ChoiceField(label=_("Embedding model"))
    agent_model = forms.ChoiceField(label=_("File-processing model"))

    field_order = ["name", "chat_model", "embedding_model", "agent_model"]

    def __init__(self, *args, models: StackModels, **kwargs):
        super().__init__(*args, **kwargs)
        # The stack's models as FastGPT lists them: the first of each is the default.
        self.fields["chat_model"].choices = models.chat
        self.fields["embedding_model"].choices = models.embedding
        self.fields["agent_model"].choices = models.file_processing

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()
