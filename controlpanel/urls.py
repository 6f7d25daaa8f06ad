from allauth.account import views as account_views
from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from . import account_pages

# The admin has no login of its own: it sends to the panel's, which asks for the second factor
# and is throttled.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("login/", account_views.login, name="login"),
    path("logout/", account_views.logout, name="logout"),
    path("account/", account_pages.account_index, name="account_index"),
    path("accounts/", include("allauth.urls")),
    # allauth's pages send to their login by this name: after allauth's own, so that reverse()
    # gives this one, the panel's login.
    path("login/", account_views.login, name="account_login"),
    path("admin/", admin.site.urls),
    # The language switch posts to set_language, which sets the language cookie.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("deployments.urls")),
]
