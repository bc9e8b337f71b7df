"""Pages of the UI shell: the portal.  (Sign-in lives in yakuba.directory.views.auth.)"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from yakuba.directory.models import ConcurrentPost


@login_required
def portal(request: HttpRequest) -> HttpResponse:
    staff = getattr(request.user, "staff", None)
    posts = (
        ConcurrentPost.objects.filter(staff=staff).select_related("department__parent__parent")
        if staff is not None
        else []
    )
    return render(request, "web/portal.html", {"active_nav": "portal", "concurrent_posts": posts})
