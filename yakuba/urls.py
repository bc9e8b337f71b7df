from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language

from yakuba.api import urls as api_urls
from yakuba.web import health, views

urlpatterns = [
    path("", views.portal, name="portal"),
    # Sign-in, sessions, the account page (before admin/: it takes over admin/login/).
    path("", include("yakuba.directory.urls_auth")),
    path("admin/", admin.site.urls),
    path("directory/", include("yakuba.directory.urls")),
    path("audit/", include("yakuba.audit.urls")),
    path("rooms/", include("yakuba.rooms.urls")),
    path("minutes/", include("yakuba.minutes.urls")),
    path("chat/", include("yakuba.chat.urls")),
    path("i18n/setlang/", set_language, name="set_language"),
    path("api/", api_urls()),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
]

if settings.OIDC_ENABLED:
    urlpatterns.append(path("oidc/", include("mozilla_django_oidc.urls")))

handler403 = "yakuba.web.errors.forbidden"
handler404 = "yakuba.web.errors.not_found"
handler500 = "yakuba.web.errors.server_error"
