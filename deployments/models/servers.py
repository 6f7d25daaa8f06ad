from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..choices import (
    Device,
    Health,
    KeySource,
    Registry,
    RunStatus,
    ServerStatus,
    ServiceState,
    StackStatus,
)
from ..fields import EncryptedTextField
from ..validators import (
    validate_container_name,
    validate_currency,
    validate_data_dir,
    validate_hostname,
    validate_name,
    validate_registry_prefix,
    validate_unix_user,
)
from .teams import Team

PORT_VALIDATORS = [MinValueValidator(1), MaxValueValidator(65535)]


class Server(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="servers")
    name = models.CharField(max_length=64, validators=[validate_name])
    host = models.CharField(
        max_length=253, validators=[validate_hostname], help_text=_("Hostname or IP address.")
    )
    ssh_port = models.PositiveIntegerField(default=22, validators=PORT_VALIDATORS)
    ssh_user = models.CharField(max_length=32, default="root", validators=[validate_unix_user])
    # Set by an owner only: the panel connects to its own machine (loopback, its own addresses)
    # or a link-local address (cloud metadata) only where this says so.
    allow_local_address = models.BooleanField(
        default=False,
        help_text=_(
            "Let the panel connect when the address is its own machine (loopback or one of its "
            "addresses) or link-local (where cloud metadata services answer). Off unless the "
            "server really runs there."
        ),
    )
    ssh_private_key = EncryptedTextField(blank=True)
    # Not secret: shown so it can be put in the server's authorized_keys.
    ssh_public_key = models.TextField(blank=True)
    key_source = models.CharField(max_length=16, choices=KeySource.choices, default=KeySource.NONE)
    # The pinned host key ("ssh-ed25519 AAAA..."), set on first contact. A different key
    # offered later is kept in host_key_pending and refused until an owner accepts it.
    host_key = models.TextField(blank=True)
    host_key_fingerprint = models.CharField(max_length=128, blank=True)
    host_key_pending = models.TextField(blank=True)
    host_key_pending_fingerprint = models.CharField(max_length=128, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    facts = models.JSONField(default=dict, blank=True)
    facts_checked_at = models.DateTimeField(null=True, blank=True)
    hourly_price = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("What the rented server costs per hour, to show the running cost."),
    )
    price_currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[validate_currency],
        help_text=_("The hourly price's currency: its three-letter code (USD, EUR, CNY)."),
    )
    # When the server last started, read from its uptime at each check that reaches it.
    booted_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=ServerStatus.choices, default=ServerStatus.UNKNOWN
    )
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="unique_server_name_per_team")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_private_key(self) -> bool:
        return bool(self.ssh_private_key)


class Stack(models.Model):
    """One installation of the FastGPT + One API + Xinference stack on a server."""

    # What a user chooses in the stack form: kept on each deployment so a rollback can
    # restore them with its files.
    SETTINGS_FIELDS = (
        "version_line",
        "registry",
        "registry_prefix",
        "fastgpt_port",
        "oneapi_port",
        "xinference_port",
        "expose_database_ports",
        "publish_internal_services",
        "xinference_device",
        "data_dir",
    )

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="stacks")
    server = models.ForeignKey(Server, on_delete=models.PROTECT, related_name="stacks")
    name = models.CharField(max_length=64, validators=[validate_name])
    version_line = models.CharField(max_length=64, default="fastgpt-4.8.8")
    registry = models.CharField(
        max_length=16, choices=Registry.choices, default=Registry.DOCKER_HUB
    )
    registry_prefix = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_registry_prefix],
        help_text=_("Only for a custom registry, e.g. registry.example.com/team"),
    )
    fastgpt_port = models.PositiveIntegerField(default=3000, validators=PORT_VALIDATORS)
    oneapi_port = models.PositiveIntegerField(default=3001, validators=PORT_VALIDATORS)
    xinference_port = models.PositiveIntegerField(default=9997, validators=PORT_VALIDATORS)
    expose_database_ports = models.BooleanField(default=False)
    # Set by an owner only. Off: One API and Xinference listen on the server's loopback and the
    # panel reaches them through its SSH connection.
    publish_internal_services = models.BooleanField(
        default=False,
        help_text=_(
            "Publish One API and Xinference on every address of the server, not only to the "
            "panel through SSH. Anyone who reaches the server can then use Xinference (no login "
            "unless its auth is on: launch and stop models) and try One API's root login, and "
            "the panel's requests to them cross the network unencrypted. FastGPT is always "
            "published."
        ),
    )
    xinference_device = models.CharField(max_length=8, choices=Device.choices, default=Device.GPU)
    data_dir = models.CharField(
        max_length=200, default="/opt/fastgpt", validators=[validate_data_dir]
    )
    # Generated per stack (database passwords, TOKEN_KEY, ROOT_KEY, ...), as a JSON object.
    secrets = EncryptedTextField(blank=True)
    # The files the last successful deploy wrote: {"docker-compose.yml": "...", ...}.
    rendered_files = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=StackStatus.choices, default=StackStatus.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["server", "name"], name="unique_stack_name_per_server")
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.server.name}"

    def active_deployment(self):
        """The action under way on this stack (queued or running), if any."""
        return (
            self.deployments.filter(run__status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
            .select_related("run", "user")
            .first()
        )

    def settings_snapshot(self) -> dict:
        return {name: getattr(self, name) for name in self.SETTINGS_FIELDS}


class Service(models.Model):
    """One container of a stack, as last seen."""

    team_path = "stack__team"

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="services")
    name = models.CharField(max_length=64)
    # The container on the server's Docker engine, as compose named it.
    container_name = models.CharField(
        max_length=128, blank=True, validators=[validate_container_name]
    )
    image = models.CharField(max_length=300, blank=True)
    ports = models.JSONField(default=list, blank=True)
    state = models.CharField(
        max_length=16, choices=ServiceState.choices, default=ServiceState.UNKNOWN
    )
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.UNKNOWN)
    restart_count = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["stack", "name"], name="unique_service_per_stack")
        ]

    def __str__(self) -> str:
        return self.name
