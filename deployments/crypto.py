"""Symmetric encryption of secrets stored in the database.

The Fernet key is derived from settings.FIELD_ENCRYPTION_KEY with HKDF, so any
high-entropy string works as the setting and the key itself never sits in a file.

Key rotation: new values are always written with FIELD_ENCRYPTION_KEY; values written with an
earlier key still read while that key is listed in FIELD_ENCRYPTION_OLD_KEYS (MultiFernet, newest
first). `manage.py rotate_encryption_key` re-encrypts what is stored; then the old keys can go.
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the configured keys."""


UNREADABLE = (
    "A stored secret cannot be decrypted: it was saved with a key that is neither "
    "FIELD_ENCRYPTION_KEY nor one of FIELD_ENCRYPTION_OLD_KEYS."
)


@lru_cache(maxsize=8)
def _fernet(key_material: str) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"controlpanel-field-encryption",
        info=b"fernet-v1",
    ).derive(key_material.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=4)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet(key) for key in keys])


def _accepted() -> MultiFernet:
    """Every key that may read: the current one first, so it is the one MultiFernet writes with."""
    old = tuple(key for key in settings.FIELD_ENCRYPTION_OLD_KEYS if key)
    return _multi_fernet((settings.FIELD_ENCRYPTION_KEY, *old))


def encrypt(plaintext: str) -> str:
    return _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _accepted().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise SecretUnreadable(UNREADABLE) from error


def is_current(token: str) -> bool:
    """Whether `token` was written with FIELD_ENCRYPTION_KEY itself."""
    try:
        _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def reencrypt(token: str) -> str:
    """`token` written again with FIELD_ENCRYPTION_KEY (SecretUnreadable if no accepted key
    reads it)."""
    try:
        return _accepted().rotate(token.encode()).decode()
    except InvalidToken as error:
        raise SecretUnreadable(UNREADABLE) from error
