"""Symmetric encryption of secrets stored in the database.

The Fernet key is derived from settings.FIELD_ENCRYPTION_KEY with HKDF, so any
high-entropy string works as the setting and the key itself never sits in a file.
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the configured key."""


@lru_cache(maxsize=4)
def _fernet(key_material: str) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"controlpanel-field-encryption",
        info=b"fernet-v1",
    ).derive(key_material.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(plaintext: str) -> str:
    return _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEY differs from the "
            "one it was saved with."
        ) from error
