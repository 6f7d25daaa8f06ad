"""Pipelines by kind. Each pipeline module registers its pipeline when it is imported."""

from .steps import Pipeline

_pipelines: dict[str, Pipeline] = {}


class UnknownPipeline(LookupError):
    def __init__(self, kind: str) -> None:
        super().__init__(
            f"There is no pipeline called {kind!r} in this version of the panel; "
            "it may have been renamed or removed."
        )
        self.kind = kind


def register(pipeline: Pipeline) -> Pipeline:
    """Make `pipeline` runnable by its kind. Returns it, so a module can keep a name for it."""
    existing = _pipelines.get(pipeline.kind)
    if existing is not None and existing != pipeline:
        raise ValueError(f"Another pipeline is already registered as {pipeline.kind!r}.")
    _pipelines[pipeline.kind] = pipeline
    return pipeline


def get(kind: str) -> Pipeline:
    try:
        return _pipelines[kind]
    except KeyError:
        raise UnknownPipeline(kind) from None


def kinds() -> list[str]:
    return sorted(_pipelines)
