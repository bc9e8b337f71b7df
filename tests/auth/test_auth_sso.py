"""LDAP / Active Directory and OIDC: settings parse into the right backend configuration,
and directory or provider identities map to existing users (no server needed)."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ldap
import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings

from yakuba.audit.models import AuditEntry
from yakuba.config import ConfigError
from yakuba.directory.ldap import YakubaLDAPBackend
from yakuba.directory.models import User, UserSession
from yakuba.directory.oidc import YakubaOIDCBackend, YakubaOIDCCallbackView

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "yakuba" / "settings.py"
LDAP_ENV = {
    "YAKUBA_LDAP_URI": "ldaps://dc1.ward.local",
    "YAKUBA_LDAP_BIND_DN": "CN=yakuba-bind,OU=Service,DC=ward,DC=local",
    "YAKUBA_LDAP_BIND_PASSWORD": "bind-secret",
    "YAKUBA_LDAP_USER_SEARCH_BASE": "OU=職員,DC=ward,DC=local",
}
OIDC_SETTINGS: dict[str, Any] = {
    "OIDC_OP_TOKEN_ENDPOINT": "https://idp.ward.local/token",
    "OIDC_OP_USER_ENDPOINT": "https://idp.ward.local/userinfo",
    "OIDC_OP_JWKS_ENDPOINT": "https://idp.ward.local/jwks",
    "OIDC_RP_CLIENT_ID": "yakuba",
    "OIDC_RP_CLIENT_SECRET": "s3cret",
    "OIDC_RP_SIGN_ALGO": "RS256",
}


def load_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, Any]:
    """Evaluate yakuba/settings.py afresh under ``env`` (the live settings stay as they are)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_it_configures_an_active_directory_search(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_settings(monkeypatch, LDAP_ENV)
    assert config["AUTHENTICATION_BACKENDS"][0] == "yakuba.directory.ldap.YakubaLDAPBackend"
    assert config["AUTHENTICATION_BACKENDS"][-1] == "django.contrib.auth.backends.ModelBackend"
    assert config["AUTH_LDAP_SERVER_URI"] == "ldaps://dc1.ward.local"
    assert config["AUTH_LDAP_BIND_DN"] == LDAP_ENV["YAKUBA_LDAP_BIND_DN"]
    search = config["AUTH_LDAP_USER_SEARCH"]
    assert search.base_dn == "OU=職員,DC=ward,DC=local"
    assert search.scope == ldap.SCOPE_SUBTREE
    assert search.filterstr == "(sAMAccountName=%(user)s)"
    assert config["AUTH_LDAP_USER_DN_TEMPLATE"] is None
    assert config["AUTH_LDAP_NO_NEW_USERS"] is True
    assert config["AUTH_LDAP_ALWAYS_UPDATE_USER"] is False
    assert config["AUTH_LDAP_CONNECTION_OPTIONS"] == {ldap.OPT_REFERRALS: 0}


def test_it_configures_a_dn_template_and_user_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "YAKUBA_LDAP_URI": "ldap://ldap.ward.local",
        "YAKUBA_LDAP_USER_DN_TEMPLATE": "uid=%(user)s,ou=people,dc=ward,dc=local",
        "YAKUBA_LDAP_START_TLS": "true",
        "YAKUBA_LDAP_CREATE_USERS": "true",
    }
    config = load_settings(monkeypatch, env)
    assert config["AUTH_LDAP_USER_DN_TEMPLATE"] == env["YAKUBA_LDAP_USER_DN_TEMPLATE"]
    assert "AUTH_LDAP_USER_SEARCH" not in config
    assert config["AUTH_LDAP_START_TLS"] is True
    assert config["AUTH_LDAP_NO_NEW_USERS"] is False


def test_it_refuses_a_search_without_a_base(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="YAKUBA_LDAP_USER_SEARCH_BASE"):
        load_settings(monkeypatch, {"YAKUBA_LDAP_URI": "ldap://dc1.ward.local"})


def test_it_leaves_ldap_and_oidc_off_by_default(client: Client, db: None) -> None:
    from django.conf import settings

    assert settings.AUTHENTICATION_BACKENDS == ["django.contrib.auth.backends.ModelBackend"]
    assert client.get("/oidc/authenticate/").status_code == 404


def ldap_user(**attrs: str) -> SimpleNamespace:
    return SimpleNamespace(
        dn="CN=x,OU=職員,DC=ward,DC=local", attrs={k: [v] for k, v in attrs.items()}
    )


def test_it_maps_a_directory_account_to_the_existing_user(alice: User) -> None:
    backend = YakubaLDAPBackend()
    username = backend.ldap_to_django_username(" ALICE ")
    user, built = backend.get_or_build_user(username, ldap_user(displayName="Aoki Ai"))
    assert (user, built) == (alice, False)
    # The directory does not overwrite Yakuba's own record.
    assert user.display_name == "青木 愛"


def test_it_refuses_unknown_directory_accounts_by_default(db: None) -> None:
    user, built = YakubaLDAPBackend().get_or_build_user("zoe", ldap_user(displayName="Zoe"))
    assert built is True  # with AUTH_LDAP_NO_NEW_USERS, django-auth-ldap refuses it
    assert user._state.adding  # built, never saved
    assert not User.objects.filter(username="zoe").exists()


@override_settings(LDAP_CREATE_USERS=True)
def test_it_creates_directory_accounts_when_told_to(db: None) -> None:
    user, built = YakubaLDAPBackend().get_or_build_user(
        "sato", ldap_user(displayName="佐藤 一郎", mail="sato@ward.local")
    )
    assert built is False
    user.refresh_from_db()
    assert (user.username, user.display_name, user.email) == (
        "sato",
        "佐藤 一郎",
        "sato@ward.local",
    )
    assert not user.has_usable_password()
    entry = AuditEntry.objects.get(action="directory.staff_created")
    assert entry.details["source"] == "ldap"


@override_settings(
    **OIDC_SETTINGS,
    OIDC_MATCH_CLAIM="preferred_username",
    OIDC_USERNAME_DOMAIN="ward.example.lg.jp",
)
def test_it_matches_oidc_claims_to_a_username(alice: User) -> None:
    backend = YakubaOIDCBackend()
    matched = backend.filter_users_by_claims({"preferred_username": "Alice@ward.example.lg.jp"})
    assert list(matched) == [alice]
    assert list(backend.filter_users_by_claims({"preferred_username": "alice"})) == [alice]
    assert not backend.filter_users_by_claims({"preferred_username": "alice@other.example"})
    assert not backend.filter_users_by_claims({"email": "alice@ward.example.lg.jp"})
    assert backend.verify_claims({"preferred_username": "alice"})
    assert not backend.verify_claims({"sub": "123"})


@override_settings(**OIDC_SETTINGS, OIDC_MATCH_CLAIM="email")
def test_it_matches_oidc_claims_to_an_email(alice: User, bob: User) -> None:
    User.objects.filter(pk=alice.pk).update(email="aoki-ai@ward.example.lg.jp")
    backend = YakubaOIDCBackend()
    matched = backend.filter_users_by_claims({"email": "AOKI-AI@ward.example.lg.jp"})
    assert list(matched) == [alice]
    assert not backend.filter_users_by_claims({"preferred_username": "alice"})


@override_settings(**OIDC_SETTINGS, OIDC_MATCH_CLAIM="preferred_username")
def test_it_creates_nobody_from_oidc_by_default_and_audits_the_refusal(db: None) -> None:
    backend = YakubaOIDCBackend()
    claims = {"preferred_username": "stranger", "sub": "42"}
    backend.get_userinfo = lambda *args: claims
    assert backend.get_or_create_user("access", "id", {}) is None
    assert not User.objects.filter(username="stranger").exists()
    entry = AuditEntry.objects.get(action="auth.login_failed")
    assert entry.details == {"username": "oidc:stranger", "reason": "unknown_user"}


@override_settings(**OIDC_SETTINGS, OIDC_MATCH_CLAIM="email", OIDC_CREATE_USER=True)
def test_it_creates_no_oidc_user_over_an_existing_username(alice: User) -> None:
    """An unknown e-mail whose name part is a taken username is refused (and audited),
    neither a 500 on the unique constraint nor someone else's account."""
    backend = YakubaOIDCBackend()
    claims = {"email": "alice@elsewhere.example", "sub": "7"}
    backend.get_userinfo = lambda *args: claims
    assert backend.get_or_create_user("access", "id", {}) is None
    assert User.objects.filter(username__iexact="alice").count() == 1
    entry = AuditEntry.objects.get(action="auth.login_failed")
    assert entry.details["reason"] == "unknown_user"
    claims["email"] = "sato@ward.example.lg.jp"
    created = backend.get_or_create_user("access", "id", {})
    assert created is not None
    assert created.username == "sato"


@override_settings(**OIDC_SETTINGS, OIDC_MATCH_CLAIM="preferred_username")
def test_it_audits_an_oidc_sign_in_of_a_deactivated_user(alice: User) -> None:
    User.objects.filter(pk=alice.pk).update(is_active=False)
    backend = YakubaOIDCBackend()
    backend.get_userinfo = lambda *args: {"preferred_username": "alice", "sub": "1"}
    user = backend.get_or_create_user("access", "id", {})
    assert user is not None
    assert not user.is_active  # the callback view refuses it
    entry = AuditEntry.objects.get(action="auth.login_failed")
    assert (entry.target_id, entry.details) == (
        str(alice.pk),
        {"username": "oidc:alice", "reason": "inactive"},
    )


@override_settings(**OIDC_SETTINGS, LOGIN_REDIRECT_URL="portal")
def test_it_signs_in_after_the_provider_through_our_own_steps(alice: User) -> None:
    request = RequestFactory().get("/oidc/callback/")
    SessionMiddleware(lambda _request: HttpResponse()).process_request(request)
    request.user = AnonymousUser()
    view = YakubaOIDCCallbackView()
    view.request = request
    view.user = alice
    response = view.login_success()
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert UserSession.objects.filter(user=alice).exists()
    entry = AuditEntry.objects.get(action="auth.login")
    assert entry.details == {"method": "oidc"}
