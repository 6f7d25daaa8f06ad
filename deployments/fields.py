from django.db import models

from . import crypto


class EncryptedTextField(models.TextField):
    """Text kept encrypted in the database; Python code sees the plaintext.

    An empty value is stored as an empty string, so "no secret set" stays queryable.
    """

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return value
        return crypto.encrypt(value)
