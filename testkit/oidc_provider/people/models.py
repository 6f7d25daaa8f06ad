from django.conf import settings
from django.db import models


class Person(models.Model):
    """What the provider knows of a user beyond Django's account: whether it has checked the
    user's e-mail address."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    email_verified = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.user.get_username()
