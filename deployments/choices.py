from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    OWNER = "owner", "Owner"


# What each role may do includes everything below it.
ROLE_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.OWNER: 3}


class ServerStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not checked yet"
    REACHABLE = "reachable", "Reachable"
    UNREACHABLE = "unreachable", "Unreachable"


class Registry(models.TextChoices):
    DOCKER_HUB = "dockerhub", "Docker Hub"
    GHCR = "ghcr", "GitHub Container Registry"
    ALIYUN = "aliyun", "Aliyun mirror"
    CUSTOM = "custom", "Custom registry prefix"


class Device(models.TextChoices):
    GPU = "gpu", "GPU"
    CPU = "cpu", "CPU"


class StackStatus(models.TextChoices):
    DRAFT = "draft", "Not deployed"
    DEPLOYING = "deploying", "Deploying"
    RUNNING = "running", "Running"
    DEGRADED = "degraded", "Degraded"
    STOPPED = "stopped", "Stopped"
    TORN_DOWN = "torn_down", "Torn down"


class ServiceState(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    CREATED = "created", "Created"
    RUNNING = "running", "Running"
    RESTARTING = "restarting", "Restarting"
    EXITED = "exited", "Exited"
    MISSING = "missing", "Missing"


class Health(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    STARTING = "starting", "Starting"
    HEALTHY = "healthy", "Healthy"
    UNHEALTHY = "unhealthy", "Unhealthy"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


RUN_TERMINAL = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
RUN_RETRYABLE = (RunStatus.FAILED, RunStatus.CANCELLED)


class StepStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class EventKind(models.TextChoices):
    RUN_STARTED = "run_started", "Run started"
    STEP_STARTED = "step_started", "Step started"
    OUTPUT = "output", "Output"
    STEP_FINISHED = "step_finished", "Step finished"
    RUN_FINISHED = "run_finished", "Run finished"


class DeploymentAction(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    UPGRADE = "upgrade", "Upgrade"
    RESTART = "restart", "Restart"
    ROLLBACK = "rollback", "Roll back"
    TEARDOWN = "teardown", "Tear down"


class ModelKind(models.TextChoices):
    LLM = "LLM", "Chat (LLM)"
    EMBEDDING = "embedding", "Embedding"
    RERANK = "rerank", "Rerank"


class ModelHub(models.TextChoices):
    HUGGINGFACE = "huggingface", "Hugging Face"
    MODELSCOPE = "modelscope", "ModelScope"
    LOCAL = "local", "Local path on the server"


class LaunchStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    LAUNCHING = "launching", "Launching"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    TERMINATED = "terminated", "Terminated"


class TrainingType(models.TextChoices):
    CHUNK = "chunk", "Chunks"
    QA = "qa", "Question/answer pairs"


class DocumentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    UPLOADING = "uploading", "Uploading"
    TRAINING = "training", "Training"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
