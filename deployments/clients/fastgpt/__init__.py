"""The panel's one client for FastGPT's HTTP API (V4.8.8), its results and app graphs."""

from .client import FastGPTClient, share_url, uri_component
from .errors import DatasetLimitReached, FastGPTError
from .graph import AppGraph, chat_config, simple_dataset_chat
from .results import ChatAnswer, Collection, CreateResult, SearchHit

__all__ = [
    "AppGraph",
    "ChatAnswer",
    "Collection",
    "CreateResult",
    "DatasetLimitReached",
    "FastGPTClient",
    "FastGPTError",
    "SearchHit",
    "chat_config",
    "share_url",
    "simple_dataset_chat",
    "uri_component",
]
