from oauth2_provider.oauth2_validators import OAuth2Validator

from .models import Person


class PeopleValidator(OAuth2Validator):
    """The standard claims of the person who logged in, in the ID token and at userinfo (each
    only with its scope: email and email_verified with "email", preferred_username with
    "profile")."""

    def get_additional_claims(self, request):
        user = request.user
        person = Person.objects.filter(user=user).first()
        return {
            "preferred_username": user.get_username(),
            "email": user.email,
            "email_verified": bool(person and person.email_verified),
        }
