"""The Django admin for IT administrators (情報政策) only.

Installed in ``INSTALLED_APPS`` as ``YakubaAdminConfig`` in place of
``django.contrib.admin``, so ``admin.site`` everywhere is ``YakubaAdminSite``.  Sign-in
to the admin goes through the portal's sign-in (``/admin/login/`` redirects there), so
lockout, the second factor and the sign-in audit apply.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any, TypeVar, cast

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])


class YakubaAdminConfig(AdminConfig):
    default_site = "yakuba.directory.admin_site.YakubaAdminSite"


class YakubaAdminSite(AdminSite):
    site_header = "Yakuba 管理画面"
    site_title = "Yakuba 管理画面"
    index_title = "システム管理（情報政策）"

    def has_permission(self, request: HttpRequest) -> bool:
        from yakuba.directory.access import is_it_admin_request

        return bool(request.user.is_active and request.user.is_staff) and is_it_admin_request(
            request
        )

    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        """A signed-in person who is not an IT administrator gets 403 (audited) rather
        than Django's sign-in form."""
        inner = super().admin_view(view, cacheable)

        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.user.is_authenticated and not self.has_permission(request):
                from yakuba.directory.access import access_directory_admin

                access_directory_admin(request.user, "admin")
                raise PermissionDenied  # not reached: access_directory_admin raises
            return inner(request, *args, **kwargs)

        return cast(_View, update_wrapper(checked, view))
