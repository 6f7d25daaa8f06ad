"""Knowledge bases: create one, set how documents are chunked, add text or a web page, search."""

import unicodedata

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.translation import gettext_lazy as _

from ..choices import TrainingType
from ..knowledge.bases import StackModels
from ..knowledge.documents import CHUNK_SIZE_RANGE, DEFAULT_CHUNK_SIZE

# FastGPT's create/text takes a JSON body of up to 10 MB.
TEXT_MAX_CHARS = 2_000_000
SEARCH_MAX_CHARS = 2000


def no_control_characters(value: str) -> None:
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in value):
        raise ValidationError(_("Control characters are not allowed here."))


class KnowledgeBaseForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, validators=[no_control_characters])
    intro = forms.CharField(
        label=_("Description"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    embedding_model = forms.ChoiceField(
        label=_("Embedding model"),
        help_text=_("Turns chunks into vectors; it cannot be changed later."),
    )
    agent_model = forms.ChoiceField(
        label=_("File-processing model"),
        help_text=_("Writes question/answer pairs in QA mode. Models marked for it come first."),
    )

    def __init__(self, *args, models: StackModels, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["embedding_model"].choices = models.embedding
        self.fields["agent_model"].choices = models.file_processing

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()


class ChunkingForm(forms.Form):
    """How FastGPT cuts documents into chunks."""

    training_type = forms.ChoiceField(
        label=_("Training mode"), choices=TrainingType.choices, initial=TrainingType.CHUNK
    )
    chunk_size = forms.IntegerField(
        label=_("Chunk size (characters)"),
        min_value=CHUNK_SIZE_RANGE[0],
        max_value=CHUNK_SIZE_RANGE[1],
        initial=DEFAULT_CHUNK_SIZE,
        help_text=_(
            "Keep chunks well under what the embedding model takes: longer ones are never trained."
        ),
    )
    chunk_splitter = forms.CharField(
        label=_("Custom separator"),
        required=False,
        max_length=100,
        strip=False,
        validators=[no_control_characters],
        help_text=_("Optional: cut here first (a regular expression, as FastGPT reads it)."),
    )


class StagedImportForm(ChunkingForm):
    documents = forms.TypedMultipleChoiceField(label=_("Documents"), coerce=int, choices=())

    def __init__(self, *args, staged: list[tuple[int, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["documents"].choices = staged


class TextSourceForm(ChunkingForm):
    name = forms.CharField(label=_("Title"), max_length=200, validators=[no_control_characters])
    text = forms.CharField(
        label=_("Text"), max_length=TEXT_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 6})
    )


class LinkSourceForm(ChunkingForm):
    link = forms.URLField(
        label=_("Web page"),
        max_length=1000,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        help_text=_("FastGPT's server fetches the page itself."),
    )


class SearchForm(forms.Form):
    text = forms.CharField(label=_("Question"), max_length=SEARCH_MAX_CHARS)


class DeleteKnowledgeBaseForm(forms.Form):
    confirm_name = forms.CharField(label=_("Type the knowledge base's name to confirm"))
