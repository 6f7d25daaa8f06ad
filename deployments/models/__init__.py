from .datasets import ChatApp, Document, KnowledgeBase, ShareLink
from .deployments import Deployment
from .llm import EmbeddingModelConfig, LLMModelConfig, ModelLaunch, RerankModelConfig
from .pipelines import PipelineEvent, PipelineRun, StepRun
from .providers import RemoteProvider
from .servers import Server, Service, Stack
from .teams import AuditEvent, Invitation, Membership, Team

__all__ = [
    "AuditEvent",
    "ChatApp",
    "Deployment",
    "Document",
    "EmbeddingModelConfig",
    "Invitation",
    "KnowledgeBase",
    "LLMModelConfig",
    "Membership",
    "ModelLaunch",
    "PipelineEvent",
    "PipelineRun",
    "RemoteProvider",
    "RerankModelConfig",
    "Server",
    "Service",
    "ShareLink",
    "Stack",
    "StepRun",
    "Team",
]
