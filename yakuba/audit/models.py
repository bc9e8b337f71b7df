"""The audit log (操作ログ): an append-only table of who did what, when and from where."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from yakuba.lib import clock


class AuditAction(models.TextChoices):
    """Every kind of audited action.  Values are stable: they are stored and hashed."""

    # Sign-in and sessions
    LOGIN_SUCCEEDED = "auth.login", "サインイン"
    LOGIN_FAILED = "auth.login_failed", "サインイン失敗"
    ACCOUNT_LOCKED = "auth.locked", "アカウントロック"
    ACCOUNT_UNLOCKED = "auth.unlocked", "アカウントロック解除"
    LOGOUT = "auth.logout", "サインアウト"
    LOGOUT_EVERYWHERE = "auth.logout_everywhere", "全端末からサインアウト"
    SESSIONS_ENDED = "auth.sessions_ended", "セッション強制終了"
    SESSION_EXPIRED = "auth.session_expired", "セッション期限切れ"
    PASSWORD_CHANGED = "auth.password_changed", "パスワード変更"
    TOTP_ENABLED = "auth.totp_enabled", "二要素認証の設定"
    TOTP_DISABLED = "auth.totp_disabled", "二要素認証の解除"
    TOKEN_CREATED = "auth.token_created", "APIトークン発行"
    TOKEN_REVOKED = "auth.token_revoked", "APIトークン失効"
    PERMISSION_DENIED = "auth.denied", "権限のない操作"
    # Directory
    DEPARTMENT_CREATED = "directory.department_created", "所属の作成"
    DEPARTMENT_CHANGED = "directory.department_changed", "所属の変更"
    STAFF_CREATED = "directory.staff_created", "職員の登録"
    STAFF_CHANGED = "directory.staff_changed", "職員の変更"
    USER_DEACTIVATED = "directory.user_deactivated", "利用停止"
    USER_REACTIVATED = "directory.user_reactivated", "利用再開"
    ROLE_GRANTED = "directory.role_granted", "ロール付与"
    ROLE_REVOKED = "directory.role_revoked", "ロール解除"
    GUEST_INVITED = "directory.guest_invited", "ゲスト招待"
    GUEST_CHANGED = "directory.guest_changed", "ゲスト変更"
    CSV_IMPORTED = "directory.csv_imported", "CSV取込"
    CSV_EXPORTED = "directory.csv_exported", "CSV出力"
    TRANSFER_SCHEDULED = "directory.transfer_scheduled", "人事異動の登録"
    TRANSFER_APPLIED = "directory.transfer_applied", "人事異動の発令"
    TRANSFER_CANCELLED = "directory.transfer_cancelled", "人事異動の取消"
    ADMIN_CHANGE = "admin.change", "管理画面での変更"
    DEMO_LOADED = "system.demo_loaded", "デモデータ投入"
    # The audit log itself
    AUDIT_CHECKPOINT = "audit.checkpoint", "チェックポイント作成"
    AUDIT_EXPORTED = "audit.exported", "監査ログ出力"
    AUDIT_PRUNED = "audit.pruned", "監査ログ削除（保存期間経過）"
    AUDIT_SEARCHED = "audit.searched", "監査ログ検索"


class ActorKind(models.TextChoices):
    STAFF = "staff", "職員"
    GUEST = "guest", "ゲスト"
    DEVICE = "device", "端末・ボット"
    SYSTEM = "system", "システム"
    ANONYMOUS = "anonymous", "未認証"


class AuditEntry(models.Model):
    """One audited action.  Rows are only ever inserted: the database refuses UPDATE and
    DELETE (see the migration that installs the triggers).  The hash chain lives in
    ``AuditSeal`` so that sealing never has to update an entry."""

    occurred_at = models.DateTimeField("日時", default=clock.now, db_index=True)
    actor_kind = models.CharField("操作者種別", max_length=10, choices=ActorKind.choices)
    actor_id = models.BigIntegerField("操作者ID", null=True, blank=True, db_index=True)
    actor_label = models.CharField("操作者", max_length=200, blank=True)
    # Stored without ``choices`` so that new actions need no migration; ``record``
    # only accepts members of ``AuditAction``.
    action = models.CharField("操作", max_length=64, db_index=True)
    target_type = models.CharField("対象種別", max_length=64, blank=True)
    target_id = models.CharField("対象ID", max_length=64, blank=True)
    target_label = models.CharField("対象", max_length=300, blank=True)
    details = models.JSONField("詳細", default=dict)
    source_ip = models.GenericIPAddressField("接続元", null=True, blank=True)

    class Meta:
        verbose_name = "監査ログ"
        verbose_name_plural = "監査ログ"
        indexes: ClassVar = [models.Index(fields=["target_type", "target_id"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"
