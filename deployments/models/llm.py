from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..choices import RUN_RETRYABLE, Device, LaunchStatus, ModelHub
from ..validators import validate_name
from .pipelines import PipelineRun
from .servers import Stack
from .teams import Team


class ServedModelConfig(models.Model):
    """What every model config shares: its FastGPT name and how Xinference serves it."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    # The name FastGPT and One API know the model by; also the Xinference model_uid.
    model = models.CharField(max_length=64, validators=[validate_name])
    display_name = models.CharField(max_length=100)
    xinference_model_name = models.CharField(max_length=100)
    model_engine = models.CharField(max_length=64, blank=True)
    model_format = models.CharField(max_length=32, blank=True)
    model_size_in_billions = models.CharField(max_length=16, blank=True)
    quantization = models.CharField(max_length=32, blank=True)
    device = models.CharField(max_length=8, choices=Device.choices, default=Device.GPU)
    gpu_count = models.PositiveIntegerField(default=1)
    replicas = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    hub = models.CharField(max_length=16, choices=ModelHub.choices, default=ModelHub.MODELSCOPE)
    local_path = models.CharField(max_length=300, blank=True)
    # What the model needs of GPU memory, for checking that it fits before a launch.
    gpu_memory_mib = models.PositiveIntegerField(
        _("GPU memory (MiB)"),
        default=0,
        help_text=_(
            "An estimate of the GPU memory the model needs in all, shared evenly by its GPUs; "
            "0 means unknown."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["model"]

    def __str__(self) -> str:
        return self.display_name or self.model


class LLMModelConfig(ServedModelConfig):
    max_context = models.PositiveIntegerField(default=8000)
    max_response = models.PositiveIntegerField(default=4000)
    quote_max_token = models.PositiveIntegerField(default=6000)
    max_temperature = models.FloatField(
        default=1.2, validators=[MinValueValidator(0), MaxValueValidator(2)]
    )
    vision = models.BooleanField(default=False)
    dataset_process = models.BooleanField(default=True)
    used_in_classify = models.BooleanField(default=True)
    used_in_extract_fields = models.BooleanField(default=True)
    used_in_tool_call = models.BooleanField(default=True)
    used_in_query_extension = models.BooleanField(default=True)
    tool_choice = models.BooleanField(default=False)
    function_call = models.BooleanField(default=False)
    default_system_chat_prompt = models.TextField(blank=True)

    class Meta(ServedModelConfig.Meta):
        verbose_name = _("chat model config")
        constraints = [
            models.UniqueConstraint(fields=["team", "model"], name="unique_llm_model_per_team")
        ]


class EmbeddingModelConfig(ServedModelConfig):
    dimensions = models.PositiveIntegerField(default=768)
    default_token = models.PositiveIntegerField(default=700)
    max_token = models.PositiveIntegerField(default=3000)
    weight = models.PositiveIntegerField(default=100)

    class Meta(ServedModelConfig.Meta):
        verbose_name = _("embedding model config")
        constraints = [
            models.UniqueConstraint(
                fields=["team", "model"], name="unique_embedding_model_per_team"
            )
        ]


class RerankModelConfig(ServedModelConfig):
    class Meta(ServedModelConfig.Meta):
        verbose_name = _("rerank model config")
        constraints = [
            models.UniqueConstraint(fields=["team", "model"], name="unique_rerank_model_per_team")
        ]


class ModelLaunch(models.Model):
    """One launch of one model config on a stack's Xinference."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="model_launches")
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="model_launches")
    llm = models.ForeignKey(LLMModelConfig, null=True, blank=True, on_delete=models.PROTECT)
    embedding = models.ForeignKey(
        EmbeddingModelConfig, null=True, blank=True, on_delete=models.PROTECT
    )
    rerank = models.ForeignKey(RerankModelConfig, null=True, blank=True, on_delete=models.PROTECT)
    model_uid = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=LaunchStatus.choices, default=LaunchStatus.PENDING
    )
    progress = models.FloatField(default=0.0)
    stage = models.CharField(max_length=200, blank=True)
    smoke_test = models.JSONField(default=dict, blank=True)
    run = models.OneToOneField(
        PipelineRun, null=True, blank=True, on_delete=models.PROTECT, related_name="model_launch"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(llm__isnull=False, embedding__isnull=True, rerank__isnull=True)
                    | Q(llm__isnull=True, embedding__isnull=False, rerank__isnull=True)
                    | Q(llm__isnull=True, embedding__isnull=True, rerank__isnull=False)
                ),
                name="launch_has_exactly_one_config",
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_uid} on {self.stack.name}"

    @property
    def config(self):
        return self.llm or self.embedding or self.rerank

    @property
    def current_status(self) -> str:
        """The status to show: a launch whose run stopped (failed, cancelled, its worker
        died) before the model was ready is failed, whatever the row last said."""
        stopping = (LaunchStatus.PENDING, LaunchStatus.LAUNCHING)
        if self.status in stopping and self.run_id and self.run.status in RUN_RETRYABLE:
            return LaunchStatus.FAILED
        return self.status

    @property
    def is_active(self) -> bool:
        """Queued, launching or ready: the model holds its uid on the stack."""
        return self.current_status in (
            LaunchStatus.PENDING,
            LaunchStatus.LAUNCHING,
            LaunchStatus.READY,
        )
