"""A URLconf with an unsafe (POST) operation behind the real API auth, for the CSRF test:
the real API has no write yet, and the CSRF rule must hold before the first one lands."""

from django.http import HttpRequest
from django.urls import path
from django.views.decorators.csrf import ensure_csrf_cookie
from ninja import NinjaAPI

from yakuba.lib import api_errors
from yakuba.lib.api_auth import BearerTokenAuth, SessionAuth, caller

api = NinjaAPI(
    urls_namespace="api-unsafe-test", docs_url=None, auth=[BearerTokenAuth(), SessionAuth()]
)
api_errors.install(api)


@api.get("/echo")
@ensure_csrf_cookie
def read(request: HttpRequest) -> dict[str, str]:
    return {"caller": caller(request).username}


@api.post("/echo")
def write(request: HttpRequest) -> dict[str, str]:
    return {"caller": caller(request).username}


urlpatterns = [path("api/", api.urls)]
