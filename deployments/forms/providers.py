"""A remote model provider of a stack: a cloud model service One API reaches with a key.

The key is asked for when a provider is added and never shown again: the edit form leaves it
blank, and blank keeps the saved one.
"""

import re
import unicodedata

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..clients.oneapi import CHANNEL_KEY_FORMATS, CHANNEL_TYPES, CUSTOM_CHANNEL_TYPE
from ..llm.wiring import CHANNEL_NAME
from ..models import ModelLaunch, RemoteProvider, Stack
from ..stacks.files import provider_models

# One API's channel name and the provider's: words, dots, dashes, single spaces between.
NAME_RE = re.compile(r"\w[\w.-]*(?: [\w.-]+)*")
NAME_MAX = 30
# A model name as One API and FastGPT take it: no commas (One API splits on them), no spaces.
MODEL_NAME_RE = re.compile(r"[^\s,]{1,100}")
MODELS_MAX = 50
MODELS_SEPARATOR_RE = re.compile(r"[,\r\n]+")
# http(s), a host name or address and an optional path: no user, query or fragment, so a base
# URL can be shown and logged.
BASE_URL_RE = re.compile(
    r"https?://(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%+/-]*)?"
)
KEY_MAX = 1000
MAX_CONTEXT_RANGE = (1000, 10_000_000)


def has_control_characters(text: str) -> bool:
    """Any control, format or unassigned character (category C), line breaks included."""
    return any(unicodedata.category(char).startswith("C") for char in text)


def channel_type_choices() -> list[tuple[int, str]]:
    labels = {CUSTOM_CHANNEL_TYPE: _("Custom: any OpenAI-compatible base URL")}
    choices = [(number, labels.get(number, name)) for number, name in CHANNEL_TYPES.items()]
    # The usual choice first, then the rest by name.
    first = [choice for choice in choices if choice[0] == CUSTOM_CHANNEL_TYPE]
    rest = sorted((c for c in choices if c[0] != CUSTOM_CHANNEL_TYPE), key=lambda c: c[1].lower())
    return [(number, f"{label} ({number})") for number, label in first + rest]


def split_models(text: str) -> list[str]:
    """The model names of a comma- or newline-separated list, each once, in order."""
    names = [name.strip() for name in MODELS_SEPARATOR_RE.split(text)]
    return list(dict.fromkeys(name for name in names if name))


def models_in_use(stack: Stack, provider: RemoteProvider | None = None) -> dict[str, str]:
    """The model names taken on the stack, each with what holds it: launched models and the
    other providers' models."""
    taken: dict[str, str] = {}
    launches = ModelLaunch.objects.filter(stack=stack).select_related("run")
    for launch in launches:
        if launch.is_active:
            taken[launch.model_uid] = _("launched on this stack")
    for model, name in provider_models(stack, exclude=provider).items():
        taken.setdefault(model, _("served by the provider “%(name)s”") % {"name": name})
    return taken


class ProviderForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=NAME_MAX,
        help_text=gettext_lazy("Also the name of its channel in One API."),
    )
    channel_type = forms.TypedChoiceField(
        label=gettext_lazy("Kind of service (One API channel type)"),
        coerce=int,
        choices=channel_type_choices,
        initial=CUSTOM_CHANNEL_TYPE,
    )
    base_url = forms.CharField(
        label=gettext_lazy("Base URL"),
        required=False,
        max_length=500,
        help_text=gettext_lazy(
            "Required for a custom service, e.g. https://api.example.com (One API adds "
            "/v1/chat/completions itself). Leave empty to use One API's address for the kind "
            "of service."
        ),
    )
    api_key = forms.CharField(
        label=gettext_lazy("API key"),
        required=False,
        max_length=KEY_MAX,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    models = forms.CharField(
        label=gettext_lazy("Models"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy(
            "The provider's chat models, by the names it knows them, separated by commas or "
            "new lines, e.g. ERNIE-Speed-128K. Put a chat model first: One API's channel test "
            "asks the first one."
        ),
    )
    dataset_process = forms.BooleanField(
        label=gettext_lazy("Offer these models for file processing (QA splitting)"),
        required=False,
        initial=True,
    )
    max_context = forms.IntegerField(
        label=gettext_lazy("Context (tokens)"),
        min_value=MAX_CONTEXT_RANGE[0],
        max_value=MAX_CONTEXT_RANGE[1],
        initial=16000,
        help_text=gettext_lazy("How much the models take at once: 128000 for ERNIE-Speed-128K."),
    )

    def __init__(self, *args, stack: Stack, provider: RemoteProvider | None = None, **kwargs):
        if provider is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": provider.name,
                "channel_type": provider.channel_type,
                "base_url": provider.base_url,
                "models": "\n".join(provider.model_names or []),
                "dataset_process": provider.dataset_process,
                "max_context": provider.max_context,
            }
        super().__init__(*args, **kwargs)
        self.stack, self.provider = stack, provider
        key = self.fields["api_key"]
        formats = "; ".join(
            _("%(kind)s: %(format)s") % {"kind": CHANNEL_TYPES[number], "format": key_format}
            for number, key_format in CHANNEL_KEY_FORMATS.items()
        )
        if provider is None:
            key.required = True
            key.help_text = _(
                "Sent to One API only, and never shown again. Keys of several parts: %(formats)s."
            ) % {"formats": formats}
        else:
            key.help_text = _("Leave empty to keep the saved key; it is never shown.")

    @property
    def editing(self) -> bool:
        return self.provider is not None

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if has_control_characters(name) or not NAME_RE.fullmatch(name):
            raise ValidationError(
                _("Use letters, digits, dots, dashes or underscores, with single spaces between.")
            )
        if name.casefold() == CHANNEL_NAME:
            raise ValidationError(
                _("“%(name)s” is the channel of the models launched on the stack: choose another.")
                % {"name": CHANNEL_NAME}
            )
        same = RemoteProvider.objects.filter(stack=self.stack, name__iexact=name)
        if self.provider is not None:
            same = same.exclude(pk=self.provider.pk)
        if same.exists():
            raise ValidationError(
                _("Stack “%(stack)s” already has a provider “%(name)s”.")
                % {"stack": self.stack.name, "name": name}
            )
        return name

    def clean_base_url(self) -> str:
        url = self.cleaned_data["base_url"].strip()
        if not url:
            return ""
        message = _("Enter an http:// or https:// address with no user, query or fragment.")
        if has_control_characters(url) or not BASE_URL_RE.fullmatch(url):
            raise ValidationError(message)
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise ValidationError(message) from None
        return url.rstrip("/")

    def clean_api_key(self) -> str:
        key = self.cleaned_data["api_key"]
        if key and (has_control_characters(key) or any(char.isspace() for char in key)):
            raise ValidationError(_("An API key is one line with no spaces."))
        return key

    def clean_models(self) -> list[str]:
        text = self.cleaned_data["models"]
        if has_control_characters(text.replace("\r", "").replace("\n", "")):
            raise ValidationError(_("Model names may not hold control characters."))
        names = split_models(text)
        if not names:
            raise ValidationError(_("Name at least one model."))
        if len(names) > MODELS_MAX:
            raise ValidationError(
                _("At most %(count)s models per provider.") % {"count": MODELS_MAX}
            )
        bad = [name for name in names if not MODEL_NAME_RE.fullmatch(name)]
        if bad:
            raise ValidationError(
                _("Not a model name: %(names)s. Use up to 100 characters, without spaces.")
                % {"names": ", ".join(bad)}
            )
        taken = models_in_use(self.stack, self.provider)
        clashes = [name for name in names if name in taken]
        if clashes:
            raise ValidationError(
                [
                    _("“%(model)s” is already %(holder)s: FastGPT would not know which to use.")
                    % {"model": name, "holder": taken[name]}
                    for name in clashes
                ]
            )
        return names

    def clean(self):
        cleaned = super().clean()
        custom = cleaned.get("channel_type") == CUSTOM_CHANNEL_TYPE
        if custom and not cleaned.get("base_url") and "base_url" not in self.errors:
            self.add_error(
                "base_url", _("A custom service needs its base URL: One API has no default.")
            )
        return cleaned

    def provider_data(self) -> dict:
        """The cleaned values as the actions take them; an empty key means keep the saved one."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "channel_type": data["channel_type"],
            "base_url": data["base_url"],
            "api_key": data["api_key"],
            "model_names": data["models"],
            "dataset_process": data["dataset_process"],
            "max_context": data["max_context"],
        }
