"""What websocket consumer tests share: ORM calls from async code, and a logged-in cookie."""

import asyncio

from django.db import connections
from django.test import Client


def _closing(func, *args, **kwargs):
    """Run func, then close this thread's connections (they would keep the test DB open)."""
    try:
        return func(*args, **kwargs)
    finally:
        connections.close_all()


async def in_thread(func, *args, **kwargs):
    return await asyncio.to_thread(_closing, func, *args, **kwargs)


def session_cookie(user) -> bytes:
    """A `sessionid=...` cookie header value of `user`, logged in."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()
