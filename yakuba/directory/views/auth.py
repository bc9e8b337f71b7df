"""Sign-in pages (password, TOTP, forced enrolment), the account page, and the small
IT-administrator pages for a user's sessions and for bot/device API tokens.

Views parse the request and call one action from ``yakuba.directory.actions.auth``.
Between the password and the second factor the session holds only a *pending* record
(``PENDING``): the person is not signed in and no page but the TOTP step opens.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.password_validation import password_validators_help_text_html
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from yakuba.audit.record import record_denial
from yakuba.directory import totp as totp_lib
from yakuba.directory.access import access_directory_admin, is_it_admin
from yakuba.directory.actions import auth as actions
from yakuba.directory.middleware import SIGNED_OUT_REASON
from yakuba.directory.models import ApiToken, User, UserSession
from yakuba.directory.tokens import TOKEN_SCOPES, UnknownScope
from yakuba.lib import clock

PENDING = "yakuba_pending_sign_in"
# The TOTP step must follow the password within this time.
PENDING_SECONDS = 300
ENROL_SECRET = "yakuba_totp_enrol_secret"  # noqa: S105  (a session key name)


def _signed_out_message(reason: str) -> str:
    messages_by_reason = {
        "idle": _(
            "一定時間操作がなかったため、サインアウトしました。もう一度サインインしてください。"
        ),
        "absolute": _("サインインしてから長時間が経過したため、サインアウトしました。"),
        "everywhere": _("すべての端末からサインアウトしました。"),
        "ended": _("このセッションは終了しました。もう一度サインインしてください。"),
        "pending_expired": _("確認コードの入力期限が過ぎました。もう一度サインインしてください。"),
        "guest_expired": _("ゲストアカウントの有効期限が切れたため、サインアウトしました。"),
    }
    return messages_by_reason.get(reason, _("サインアウトしました。"))


def _refusal_message(check: actions.SignInCheck) -> str:
    if check.refusal is actions.Refusal.LOCKED:
        until = clock.local(check.locked_until) if check.locked_until else None
        return _(
            "サインインの失敗が続いたため、このアカウントは一時的にロックされています。"
            "%(time)s 以降にもう一度お試しください。お急ぎの場合は情報政策担当にご連絡ください。"
        ) % {"time": f"{until:%H:%M}" if until else _("しばらく")}
    if check.refusal is actions.Refusal.GUEST_EXPIRED:
        return _("ゲストアカウントの有効期限が切れています。招待した職員にお問い合わせください。")
    return _("ユーザー名またはパスワードが違います。")


def _safe_next(request: HttpRequest, next_url: str) -> str:
    """``next_url`` if it is a path on this site, else "".  Only paths: ``redirect``
    reads anything else as a URL name, and an unknown name is a 500."""
    allowed = next_url.startswith("/") and url_has_allowed_host_and_scheme(
        next_url, {request.get_host()}, require_https=request.is_secure()
    )
    return next_url if allowed else ""


def _login_page(
    request: HttpRequest,
    *,
    username: str = "",
    error: str = "",
    next_url: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "username": username,
        "error": error,
        "next": next_url,
        "oidc_enabled": getattr(settings, "OIDC_ENABLED", False),
    }
    return render(request, "auth/login.html", context, status=status)


# --- Sign-in ------------------------------------------------------------------------------


@sensitive_post_parameters("password")
@never_cache
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next") or "")
    if request.method != "POST":
        if request.user.is_authenticated:
            return redirect(next_url or "portal")
        reason = request.session.pop(SIGNED_OUT_REASON, "")
        if reason:
            messages.info(request, _signed_out_message(reason))
        error = ""
        if request.GET.get("error") == "oidc":
            error = _("組織アカウントでのサインインに失敗しました。")
        return _login_page(request, error=error, next_url=next_url)
    username = request.POST.get("username", "").strip()
    password = request.POST.get("password", "")
    if not username or not password:
        error = _("ユーザー名とパスワードを入力してください。")
        return _login_page(request, username=username, error=error, next_url=next_url, status=400)
    check = actions.check_password_sign_in(request, username, password)
    if check.user is None:
        return _login_page(
            request,
            username=username,
            error=_refusal_message(check),
            next_url=next_url,
            status=403 if check.refusal is actions.Refusal.LOCKED else 401,
        )
    return begin_sign_in(request, check.user, method="password", next_url=next_url)


def begin_sign_in(request: HttpRequest, user: User, *, method: str, next_url: str) -> HttpResponse:
    """After the first factor: ask for the TOTP code, require enrolment (role), or sign in.

    Also used by the OIDC callback, so single sign-on follows the same second-factor rules.
    """
    if user.totp_enabled or actions.totp_required(user):
        purpose = "verify" if user.totp_enabled else "enrol"
        # The half-signed-in state is worth stealing too: give it a fresh session id,
        # not the one the browser arrived with (which someone may have planted).
        request.session.cycle_key()
        request.session[PENDING] = {
            "user": user.pk,
            "purpose": purpose,
            "method": method,
            "next": next_url,
            "at": clock.now().timestamp(),
        }
        return redirect("login_totp" if purpose == "verify" else "login_totp_enrol")
    return _finish_sign_in(request, user, method=method, next_url=next_url)


def _finish_sign_in(
    request: HttpRequest, user: User, *, method: str, next_url: str
) -> HttpResponse:
    request.session.pop(PENDING, None)
    request.session.pop(ENROL_SECRET, None)
    if not actions.do_login(request, user, method=method):
        # Locked or deactivated between the credentials check and now.
        user.refresh_from_db(fields=["locked_until", "is_active"])
        refusal = actions.Refusal.LOCKED if actions.is_locked(user) else actions.Refusal.INVALID
        check = actions.SignInCheck(None, refusal, user.locked_until)
        return _login_page(
            request, username=user.username, error=_refusal_message(check), status=403
        )
    return redirect(next_url or "portal")


def _pending_user(request: HttpRequest, purpose: str) -> User | None:
    """The user half-way through signing in, if the pending record is fresh."""
    pending: dict[str, Any] | None = request.session.get(PENDING)
    if not pending or pending.get("purpose") != purpose:
        return None
    if clock.now().timestamp() - float(pending["at"]) > PENDING_SECONDS:
        request.session.pop(PENDING, None)
        request.session[SIGNED_OUT_REASON] = "pending_expired"
        return None
    return User.objects.filter(pk=pending["user"]).first()


@sensitive_post_parameters("code")
@never_cache
def login_totp_view(request: HttpRequest) -> HttpResponse:
    """The second step: a 6-digit code from the authenticator app."""
    user = _pending_user(request, "verify")
    if user is None:
        return redirect("login")
    if request.method != "POST":
        return render(request, "auth/login_totp.html", {})
    pending = request.session[PENDING]
    check = actions.check_user_may_sign_in(user, username=user.username)
    if check.user is None:
        request.session.pop(PENDING, None)
        return _login_page(
            request, username=user.username, error=_refusal_message(check), status=403
        )
    # Counted before the code is checked, as passwords are: concurrent guesses at the
    # code cannot outrun the lockout.
    refused = actions.check_claim_attempt(user, username=user.username)
    if refused is not None:
        return _locked_page(request, user, refused.locked_until)
    result = actions.check_totp_code(user, request.POST.get("code", ""))
    if result is actions.TotpResult.OK:
        return _finish_sign_in(request, user, method=pending["method"], next_url=pending["next"])
    locked_until = actions.do_record_login_failure(
        user.username, user, reason=_totp_refusal(result), claimed=True
    )
    if locked_until is not None:
        return _locked_page(request, user, locked_until)
    error = (
        _("この確認コードは既に使われています。次のコードが表示されるまでお待ちください。")
        if result is actions.TotpResult.REPLAYED
        else _("確認コードが正しくありません。")
    )
    return render(request, "auth/login_totp.html", {"error": error}, status=401)


def _totp_refusal(result: actions.TotpResult) -> actions.Refusal:
    if result is actions.TotpResult.REPLAYED:
        return actions.Refusal.TOTP_REPLAYED
    return actions.Refusal.TOTP_INVALID


def _locked_page(request: HttpRequest, user: User, until: dt.datetime | None) -> HttpResponse:
    """The sign-in page saying the account is locked; the pending sign-in is forgotten."""
    request.session.pop(PENDING, None)
    check = actions.SignInCheck(None, actions.Refusal.LOCKED, until)
    return _login_page(request, username=user.username, error=_refusal_message(check), status=403)


def _enrol_context(request: HttpRequest, user: User, secret: str, **extra: Any) -> dict[str, Any]:
    uri = totp_lib.provisioning_uri(user, secret)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    # segno writes only path data and our own URI (escaped) into the SVG.
    return {"qr_svg": mark_safe(totp_lib.qr_svg(uri)), "secret": grouped, "uri": uri, **extra}  # noqa: S308


def _enrol_secret(request: HttpRequest) -> str:
    secret = request.session.get(ENROL_SECRET)
    if not secret:
        secret = request.session[ENROL_SECRET] = totp_lib.new_secret()
    return str(secret)


@sensitive_post_parameters("code")
@never_cache
def login_totp_enrol_view(request: HttpRequest) -> HttpResponse:
    """Enrolment required by a role, before the person is signed in at all."""
    user = _pending_user(request, "enrol")
    if user is None:
        return redirect("login")
    secret = _enrol_secret(request)
    context = _enrol_context(
        request, user, secret, required=True, action=reverse("login_totp_enrol")
    )
    if request.method != "POST":
        return render(request, "auth/totp_enrol.html", context)
    check = actions.check_user_may_sign_in(user, username=user.username)
    if check.user is None:
        request.session.pop(PENDING, None)
        return _login_page(
            request, username=user.username, error=_refusal_message(check), status=403
        )
    result = actions.check_totp_code(user, request.POST.get("code", ""), secret=secret)
    if result is not actions.TotpResult.OK:
        context["error"] = _(
            "確認コードが正しくありません。アプリに表示されている6桁の数字を入力してください。"
        )
        return render(request, "auth/totp_enrol.html", context, status=400)
    pending = request.session[PENDING]
    actions.do_enable_totp(user, secret=secret, acting_user=user)
    return _finish_sign_in(request, user, method=pending["method"], next_url=pending["next"])


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    actions.do_logout(request)
    return redirect("login")


# --- The account page --------------------------------------------------------------------


def _me(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


BROWSERS = (
    ("Edg/", "Microsoft Edge"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
SYSTEMS = (
    ("Windows", "Windows"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def describe_browser(user_agent: str) -> str:
    """ "Chrome（Windows）" from a User-Agent header, for people to recognise a session."""
    browser = next((name for mark, name in BROWSERS if mark in user_agent), "")
    system = next((name for mark, name in SYSTEMS if mark in user_agent), "")
    if browser and system:
        return f"{browser}（{system}）"
    return browser or system or user_agent[:60]


def listed_sessions(user: User) -> list[tuple[UserSession, str]]:
    sessions = UserSession.objects.filter(user=user).order_by("-last_seen_at")
    return [(session, describe_browser(session.user_agent)) for session in sessions]


@login_required
@never_cache
def account_view(request: HttpRequest) -> HttpResponse:
    user = _me(request)
    sessions = listed_sessions(user)
    context = {
        "active_nav": "account",
        "sessions": sessions,
        "current_key": request.session.session_key,
        "tokens": ApiToken.objects.filter(user=user).order_by("-created_at"),
        "now": clock.now(),
        "totp_required": actions.totp_required(user),
        "languages": User.Language.choices,
        "is_it_admin": is_it_admin(user),
    }
    return render(request, "auth/account.html", context)


@login_required
@require_POST
def account_language_view(request: HttpRequest) -> HttpResponse:
    user = _me(request)
    language = request.POST.get("language", "")
    if language not in User.Language.values:
        messages.error(request, _("選択できない言語です。"))
        return redirect("account")
    actions.do_set_language(user, language, acting_user=user)
    return redirect("account")


@login_required
@require_POST
def account_logout_everywhere_view(request: HttpRequest) -> HttpResponse:
    user = _me(request)
    actions.do_logout_everywhere(user, acting_user=user)
    # This session's row is gone already; start a fresh anonymous one for the notice.
    logout(request)
    request.session[SIGNED_OUT_REASON] = "everywhere"
    return redirect("login")


@login_required
@sensitive_post_parameters("current_password", "new_password", "new_password_again")
@never_cache
def account_password_view(request: HttpRequest) -> HttpResponse:
    """Change one's own password; the other sessions end, this one stays."""
    user = _me(request)
    context: dict[str, Any] = {
        "active_nav": "account",
        "usable": user.has_usable_password(),
        "help_html": password_validators_help_text_html(),
    }
    if request.method != "POST":
        return render(request, "auth/password.html", context)
    new = request.POST.get("new_password", "")
    errors = actions.check_new_password(user, request.POST.get("current_password", ""), new)
    if not errors and new != request.POST.get("new_password_again", ""):
        errors = [_("確認用に入力した新しいパスワードが一致しません。")]
    if errors:
        context["errors"] = [_(error) for error in errors]
        return render(request, "auth/password.html", context, status=400)
    actions.do_change_password(
        user, new, acting_user=user, keep_session_key=request.session.session_key
    )
    update_session_auth_hash(request, user)
    messages.success(request, _("パスワードを変更しました。ほかの端末ではサインアウトしました。"))
    return redirect("account")


@login_required
@sensitive_post_parameters("code")
@never_cache
def account_totp_view(request: HttpRequest) -> HttpResponse:
    """Enrol the signed-in user's authenticator app.  Someone already enrolled must
    disable it first (with a code), so a borrowed session cannot swap the second factor."""
    user = _me(request)
    if user.totp_enabled:
        messages.info(
            request, _("二要素認証は設定済みです。設定し直すには、先に解除してください。")
        )
        return redirect("account")
    secret = _enrol_secret(request)
    context = _enrol_context(request, user, secret, action=reverse("account_totp"))
    context["active_nav"] = "account"
    if request.method != "POST":
        return render(request, "auth/totp_enrol.html", context)
    result = actions.check_totp_code(user, request.POST.get("code", ""), secret=secret)
    if result is not actions.TotpResult.OK:
        context["error"] = _(
            "確認コードが正しくありません。アプリに表示されている6桁の数字を入力してください。"
        )
        return render(request, "auth/totp_enrol.html", context, status=400)
    actions.do_enable_totp(user, secret=secret, acting_user=user)
    request.session.pop(ENROL_SECRET, None)
    messages.success(request, _("二要素認証を設定しました。次回から確認コードの入力が必要です。"))
    return redirect("account")


@login_required
@require_POST
@sensitive_post_parameters("code")
def account_totp_disable_view(request: HttpRequest) -> HttpResponse:
    user = _me(request)
    if actions.totp_required(user):
        messages.error(request, _("あなたのロールでは二要素認証が必須のため、解除できません。"))
        return redirect("account")
    # A code typed here is a guess at the second factor (perhaps from a borrowed
    # session): counted, audited and locked out exactly like one at sign-in.
    refused = actions.check_claim_attempt(user, username=user.username)
    if refused is not None:
        messages.error(request, _refusal_message(refused))
        return redirect("account")
    result = actions.check_totp_code(user, request.POST.get("code", ""))
    if result is not actions.TotpResult.OK:
        actions.do_record_login_failure(
            user.username, user, reason=_totp_refusal(result), claimed=True
        )
        messages.error(request, _("確認コードが正しくないため、二要素認証を解除しませんでした。"))
        return redirect("account")
    actions.release_sign_in_attempt(user)
    actions.do_disable_totp(user, acting_user=user)
    messages.success(request, _("二要素認証を解除しました。"))
    return redirect("account")


def access_token(request: HttpRequest, token_id: int) -> ApiToken:
    """A token the requester may manage: their own, or (IT administrator) a bot's or
    device's.  Anything else, unknown ids included, is a 403 (audited)."""
    user = _me(request)
    token = ApiToken.objects.select_related("user").filter(pk=token_id).first()
    if token is not None and (
        token.user_id == user.pk
        or (token.user.kind in (User.Kind.BOT, User.Kind.DEVICE) and is_it_admin(user))
    ):
        return token
    record_denial(
        actor=user, what="api_token.revoke", target=("directory.apitoken", str(token_id), "")
    )
    raise PermissionDenied(_("このトークンを失効させる権限がありません。"))


@login_required
@require_POST
def account_token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    token = access_token(request, token_id)
    actions.do_revoke_token(token, acting_user=_me(request))
    messages.success(request, _("トークン「%(name)s」を失効させました。") % {"name": token.name})
    back = "account_admin_tokens" if request.POST.get("back") == "admin" else "account"
    return redirect(back)


# --- IT administrator pages ------------------------------------------------------------------


def access_managed_user(request: HttpRequest, user_id: int, what: str) -> User:
    """The user an IT administrator manages: 403 (audited) for anyone else, 404 when
    there is no such user."""
    access_directory_admin(request.user, what)
    return get_object_or_404(User, pk=user_id)


@login_required
@never_cache
def admin_users_view(request: HttpRequest) -> HttpResponse:
    access_directory_admin(request.user, "account_admin.users")
    query = request.GET.get("q", "").strip()
    users = User.objects.order_by("username")
    if query:
        users = users.filter(Q(username__icontains=query) | Q(display_name__icontains=query))
    context = {"active_nav": "account", "query": query, "users": users[:50]}
    return render(request, "auth/admin_users.html", context)


@login_required
@never_cache
def admin_user_view(request: HttpRequest, user_id: int) -> HttpResponse:
    target = access_managed_user(request, user_id, "account_admin.user")
    context = {
        "active_nav": "account",
        "target": target,
        "sessions": listed_sessions(target),
        "locked": actions.is_locked(target),
    }
    return render(request, "auth/admin_user.html", context)


# Operation slug → (action, the msgid of the confirmation shown afterwards).
ADMIN_OPERATIONS: dict[str, tuple[Callable[..., object], str]] = {
    "end-sessions": (
        actions.do_end_sessions,
        gettext_noop("このユーザーのすべてのセッションを終了しました。"),
    ),
    "deactivate": (
        actions.do_deactivate_user,
        gettext_noop("利用を停止し、すべてのセッションを終了しました。"),
    ),
    "reactivate": (actions.do_reactivate_user, gettext_noop("利用を再開しました。")),
    "unlock": (actions.do_unlock_user, gettext_noop("ロックを解除しました。")),
    "reset-totp": (actions.do_disable_totp, gettext_noop("二要素認証を解除しました。")),
}


@login_required
@require_POST
def admin_user_operation_view(request: HttpRequest, user_id: int, operation: str) -> HttpResponse:
    """One of ``ADMIN_OPERATIONS`` on a user (end sessions, deactivate, …)."""
    if operation not in ADMIN_OPERATIONS:
        return HttpResponse(status=404)
    target = access_managed_user(request, user_id, f"account_admin.{operation}")
    action, done = ADMIN_OPERATIONS[operation]
    action(target, acting_user=_me(request))
    messages.success(request, _(done))
    return redirect("account_admin_user", user_id=target.pk)


@dataclass
class TokenForm:
    """The admin's new-token form, as typed (kept on errors so nothing is lost)."""

    user: str = ""
    name: str = ""
    days: str = "90"
    scopes: list[str] = field(default_factory=list)

    @classmethod
    def from_post(cls, request: HttpRequest) -> TokenForm:
        return cls(
            user=request.POST.get("user", ""),
            name=request.POST.get("name", "").strip(),
            days=request.POST.get("days", "").strip(),
            scopes=request.POST.getlist("scopes"),
        )

    def errors(self, owner: User | None) -> list[str]:
        errors = []
        if owner is None:
            errors.append(_("ボットまたは端末の利用者を選んでください。"))
        if not self.name:
            errors.append(_("トークンの名前を入力してください。"))
        if not self.scopes:
            errors.append(_("スコープを1つ以上選んでください。"))
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        if self.days and (not self.days.isdecimal() or not 1 <= int(self.days) <= 3650):
            errors.append(_("有効日数は1から3650までの数字で入力してください（空欄は無期限）。"))
        return errors


@login_required
@never_cache
def admin_tokens_view(request: HttpRequest) -> HttpResponse:
    """Tokens of bots and devices; creating one shows its secret on this response only."""
    access_directory_admin(request.user, "account_admin.tokens")
    machine_kinds = (User.Kind.BOT, User.Kind.DEVICE)
    machines = User.objects.filter(kind__in=machine_kinds, is_active=True).order_by("username")
    context: dict[str, Any] = {
        "active_nav": "account",
        "machines": machines,
        "tokens": ApiToken.objects.filter(user__kind__in=machine_kinds)
        .select_related("user")
        .order_by("-created_at"),
        "scopes": [(name, _(label)) for name, label in TOKEN_SCOPES.items()],
        "now": clock.now(),
        "form": TokenForm(),
    }
    if request.method != "POST":
        return render(request, "auth/admin_tokens.html", context)
    form = context["form"] = TokenForm.from_post(request)
    owner = machines.filter(pk=int(form.user)).first() if form.user.isdecimal() else None
    errors = form.errors(owner)
    if errors or owner is None:
        context["errors"] = errors
        return render(request, "auth/admin_tokens.html", context, status=400)
    expires_at = clock.now() + dt.timedelta(days=int(form.days)) if form.days else None
    try:
        token, raw = actions.do_create_token(
            owner,
            name=form.name,
            scopes=form.scopes,
            expires_at=expires_at,
            acting_user=_me(request),
        )
    except UnknownScope:
        context["errors"] = [_("不明なスコープが含まれています。")]
        return render(request, "auth/admin_tokens.html", context, status=400)
    context.update(created=token, raw_token=raw, form=TokenForm())
    response = render(request, "auth/admin_tokens.html", context)
    return response


def admin_login_redirect_view(request: HttpRequest) -> HttpResponse:
    """``/admin/login/`` goes through our sign-in (lockout, TOTP, audit) instead."""
    next_url = _safe_next(request, request.GET.get("next", "")) or reverse("admin:index")
    return redirect(f"{reverse('login')}?{urlencode({'next': next_url})}")
