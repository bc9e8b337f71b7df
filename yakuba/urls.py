from django.contrib import admin
from django.urls import path

from yakuba.web import views

urlpatterns = [
    path("", views.portal, name="portal"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("account/", views.portal, name="account"),
    path("admin/", admin.site.urls),
]
