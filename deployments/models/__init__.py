from .backups import BackupStatus, StackBackup, StackBackupSettings
from .datasets import ChatApp, Document, KnowledgeBase, ShareLink
from .deployments import Deployment
from .gpu_history import GpuSample
from .idle import IdleGuard, IdleState, IdleStep
from .llm import EmbeddingModelConfig, LLMModelConfig, ModelLaunch, RerankModelConfig
from .notifications import ChannelKind, NotificationChannel, NotificationEvent
from .pipelines import PipelineEvent, PipelineRun, StepRun
from .providers import RemoteProvider
from .servers import Server, Service, Stack
from .teams import AuditEvent, Invitation, Membership, Team

__all__ = [
    "AuditEvent",
    "BackupStatus",
    "ChannelKind",
    "ChatApp",
    "Deployment",
    "Document",
    "EmbeddingModelConfig",
    "GpuSample",
    "IdleGuard",
    "IdleState",
    "IdleStep",
    "Invitation",
    "KnowledgeBase",
    "LLMModelConfig",
    "Membership",
    "ModelLaunch",
    "NotificationChannel",
    "NotificationEvent",
    "PipelineEvent",
    "PipelineRun",
    "RemoteProvider",
    "RerankModelConfig",
    "Server",
    "Service",
    "ShareLink",
    "Stack",
    "StackBackup",
    "StackBackupSettings",
    "StepRun",
    "Team",
]
