from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from .login import AdminLoginForm, LoginForm

# Both login pages say how long to wait once django-axes has locked a login.
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("deployments.urls")),
]
