"""Pages of the UI shell: sign-in, sign-out, the portal."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from yakuba.directory.actions import auth as actions
from yakuba.directory.models import ConcurrentPost, User


def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    context = {"next": next_url, "username": "", "error": ""}
    if request.method == "POST":
        username = request.POST.get("username", "").strip()
        password = request.POST.get("password", "")
        user = authenticate(request, username=username, password=password)
        if isinstance(user, User):
            actions.do_login(request, user)
            if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
                next_url = ""
            return redirect(next_url or "portal")
        context.update(username=username, error=_("ユーザー名またはパスワードが違います。"))
        return render(request, "web/login.html", context, status=401)
    return render(request, "web/login.html", context)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    actions.do_logout(request)
    return redirect("login")


@login_required
def portal(request: HttpRequest) -> HttpResponse:
    staff = getattr(request.user, "staff", None)
    posts = (
        ConcurrentPost.objects.filter(staff=staff).select_related("department__parent__parent")
        if staff is not None
        else []
    )
    return render(request, "web/portal.html", {"active_nav": "portal", "concurrent_posts": posts})
