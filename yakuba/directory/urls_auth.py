"""Sign-in, sign-out, the account page and the IT administrator's account pages."""

from django.urls import path

from yakuba.directory.views import auth as views

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("login/totp/", views.login_totp_view, name="login_totp"),
    path("login/totp/enrol/", views.login_totp_enrol_view, name="login_totp_enrol"),
    path("logout/", views.logout_view, name="logout"),
    path("account/", views.account_view, name="account"),
    path("account/language/", views.account_language_view, name="account_language"),
    path(
        "account/sessions/end-all/",
        views.account_logout_everywhere_view,
        name="account_logout_everywhere",
    ),
    path("account/password/", views.account_password_view, name="account_password"),
    path("account/totp/", views.account_totp_view, name="account_totp"),
    path("account/totp/disable/", views.account_totp_disable_view, name="account_totp_disable"),
    path(
        "account/tokens/<int:token_id>/revoke/",
        views.account_token_revoke_view,
        name="account_token_revoke",
    ),
    path("account/admin/users/", views.admin_users_view, name="account_admin_users"),
    path("account/admin/users/<int:user_id>/", views.admin_user_view, name="account_admin_user"),
    path(
        "account/admin/users/<int:user_id>/<slug:operation>/",
        views.admin_user_operation_view,
        name="account_admin_user_operation",
    ),
    path("account/admin/tokens/", views.admin_tokens_view, name="account_admin_tokens"),
    # Django's own admin login would skip lockout and the second factor: send it here.
    path("admin/login/", views.admin_login_redirect_view, name="admin_login_redirect"),
]
