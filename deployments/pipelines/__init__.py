"""Pipelines: named, fixed sequences of idempotent steps, run by a Celery worker.

A pipeline module builds a Pipeline and registers it (registry.register); runner.run()
executes a PipelineRun from its next step; reaper fails runs whose worker died.
"""

from .registry import UnknownPipeline, get, register
from .steps import Pipeline, RunCancelled, Step, StepContext, StepFailed

__all__ = [
    "Pipeline",
    "RunCancelled",
    "Step",
    "StepContext",
    "StepFailed",
    "UnknownPipeline",
    "get",
    "register",
]
