"""Pages of the UI shell: the portal.  (Sign-in lives in yakuba.directory.views.auth.)"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from yakuba.directory.models import ConcurrentPost, User


@login_required
def portal(request: HttpRequest) -> HttpResponse:
    assert isinstance(request.user, User)  # login_required
    # 兼務 of the viewer; the viewer's own profile comes from the shell's viewer_profile.
    posts = ConcurrentPost.objects.filter(staff__user_id=request.user.pk).select_related(
        "department__parent__parent"
    )
    return render(request, "web/portal.html", {"active_nav": "portal", "concurrent_posts": posts})
