"""The ASGI application serves pages over HTTP and refuses unknown websocket routes."""

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator

from controlpanel.asgi import application


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_asgi_app_serves_the_login_page():
    communicator = HttpCommunicator(
        application, "GET", "/login/", headers=[(b"host", b"localhost")]
    )
    response = await communicator.get_response()
    assert response["status"] == 200
    assert b"Log in" in response["body"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_websocket_from_a_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(
        application,
        "/ws/anything/",
        headers=[(b"host", b"localhost"), (b"origin", b"https://evil.example")],
    )
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()
