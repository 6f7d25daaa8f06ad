"""A FastGPT client signed in as the stack's root user."""

from ..clients.fastgpt import FastGPTClient
from ..models import Stack
from ..stacks.endpoints import fastgpt_url
from ..stacks.secrets import stack_secrets


def signed_in_fastgpt(stack: Stack, *, timeout: float = 30) -> FastGPTClient:
    """Sign in afresh each time: FastGPT resets root's password to the stack's at every start,
    so the password always works, while a kept token would outlive a teardown of its data."""
    client = FastGPTClient(fastgpt_url(stack), timeout=timeout)
    try:
        client.login(stack_secrets(stack)["FASTGPT_ROOT_PASSWORD"])
    except BaseException:
        client.close()
        raise
    return client
