"""The ward's directory: departments (所属), staff (職員), roles, guests and API tokens.

A ``User`` is whoever signs in: a staff member, a guest from outside the ward, or a
bot/device that uses an API token.  Staff details live in ``StaffProfile`` and guest
details in ``GuestProfile``, so that the sign-in machinery is the same for all.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from yakuba.lib import clock


class Department(models.Model):
    """所属: a node of the 部/課/係 tree, identified by its code."""

    class Level(models.TextChoices):
        BU = "bu", _("部")
        KA = "ka", _("課")
        KAKARI = "kakari", _("係")

    code = models.CharField(_("所属コード"), max_length=20, unique=True)
    name = models.CharField(_("所属名"), max_length=100)
    kana = models.CharField(_("所属名かな"), max_length=200, blank=True)
    level = models.CharField(_("階層"), max_length=10, choices=Level.choices)
    parent = models.ForeignKey(
        "self",
        verbose_name=_("上位所属"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
    )
    sort_order = models.PositiveIntegerField(_("表示順"), default=0)
    is_active = models.BooleanField(_("有効"), default=True)

    class Meta:
        verbose_name = _("所属")
        verbose_name_plural = _("所属")
        ordering: ClassVar = ["sort_order", "code"]

    def __str__(self) -> str:
        return self.name

    def path(self) -> list[Department]:
        """This department and its ancestors, from the top (部) down."""
        chain: list[Department] = []
        node: Department | None = self
        while node is not None:
            chain.append(node)
            node = node.parent
        return list(reversed(chain))

    def full_name(self) -> str:
        """総務部 総務課 文書係"""
        return " ".join(d.name for d in self.path())


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, username: str, password: str | None = None, **fields: object) -> User:
        user = self.model(username=username, **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(
        self, username: str, password: str | None = None, **fields: object
    ) -> User:
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(username, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """An account that can sign in or hold an API token."""

    class Kind(models.TextChoices):
        STAFF = "staff", _("職員")
        GUEST = "guest", _("ゲスト")
        BOT = "bot", _("ボット")
        DEVICE = "device", _("端末")

    class Language(models.TextChoices):
        JA = "ja", _("日本語")
        EN = "en", _("English")

    username = models.CharField(_("ユーザー名"), max_length=150, unique=True)
    kind = models.CharField(_("種別"), max_length=10, choices=Kind.choices, default=Kind.STAFF)
    display_name = models.CharField(_("表示名"), max_length=150)
    email = models.EmailField(_("メールアドレス"), blank=True)
    language = models.CharField(_("表示言語"), max_length=5, choices=Language.choices, default="ja")
    is_active = models.BooleanField(_("有効"), default=True)
    # Django admin access; granted to IT administrators by the role actions.
    is_staff = models.BooleanField(_("管理画面の利用"), default=False)
    date_joined = models.DateTimeField(_("登録日時"), default=clock.now)
    # Lockout: consecutive failed sign-ins and the time until which sign-in is refused.
    failed_logins = models.PositiveIntegerField(_("連続失敗回数"), default=0)
    locked_until = models.DateTimeField(_("ロック解除日時"), null=True, blank=True)
    # TOTP (RFC 6238) second factor; the secret is set when enrolment is confirmed.
    totp_secret = models.CharField(_("TOTP秘密鍵"), max_length=64, blank=True)
    totp_last_step = models.BigIntegerField(_("最後に使ったTOTP時刻ステップ"), default=0)

    objects = UserManager()

    USERNAME_FIELD = "username"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["display_name"]

    class Meta:
        verbose_name = _("利用者")
        verbose_name_plural = _("利用者")

    def __str__(self) -> str:
        return self.display_name or self.username

    @property
    def totp_enabled(self) -> bool:
        return bool(self.totp_secret)


class StaffProfile(models.Model):
    """職員: one per staff member, keyed by the 職員番号 the personnel system uses."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("在職")
        RETIRED = "retired", _("退職")

    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="staff")
    employee_number = models.CharField(_("職員番号"), max_length=20, unique=True)
    family_name = models.CharField(_("姓"), max_length=50)
    given_name = models.CharField(_("名"), max_length=50)
    family_kana = models.CharField(_("姓（ふりがな）"), max_length=100)
    given_kana = models.CharField(_("名（ふりがな）"), max_length=100)
    department = models.ForeignKey(
        Department, verbose_name=_("所属"), on_delete=models.PROTECT, related_name="staff"
    )
    title = models.CharField(_("役職"), max_length=50, blank=True)
    extension = models.CharField(_("内線"), max_length=20, blank=True)
    email = models.EmailField(_("メールアドレス"), blank=True)
    status = models.CharField(
        "在職状況", max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    retired_on = models.DateField(_("退職日"), null=True, blank=True)

    class Meta:
        verbose_name = _("職員")
        verbose_name_plural = _("職員")
        ordering: ClassVar = ["employee_number"]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.family_name} {self.given_name}"

    @property
    def full_kana(self) -> str:
        return f"{self.family_kana} {self.given_kana}"


class ConcurrentPost(models.Model):
    """兼務: a staff member's post in a department besides the primary one."""

    staff = models.ForeignKey(
        StaffProfile, on_delete=models.CASCADE, related_name="concurrent_posts"
    )
    department = models.ForeignKey(Department, verbose_name=_("兼務先"), on_delete=models.PROTECT)
    title = models.CharField(_("役職"), max_length=50, blank=True)

    class Meta:
        verbose_name = _("兼務")
        verbose_name_plural = _("兼務")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["staff", "department"], name="concurrent_post_once")
        ]

    def __str__(self) -> str:
        return f"{self.staff} / {self.department}"


class Role(models.TextChoices):
    """What a person may do beyond ordinary staff work."""

    STAFF = "staff", _("職員")
    SECTION_HEAD = "section_head", _("所属長")
    IT_ADMIN = "it_admin", _("情報政策（システム管理者）")
    FACILITY_MANAGER = "facility_manager", _("施設管理者")
    AUDITOR = "auditor", _("監査")
    COUNTER_STAFF = "counter_staff", _("窓口職員")


class RoleGrant(models.Model):
    """A role held by a user; a section head's grant names the department they head."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_grants")
    role = models.CharField(_("ロール"), max_length=20, choices=Role.choices)
    department = models.ForeignKey(
        Department, verbose_name=_("対象所属"), null=True, blank=True, on_delete=models.CASCADE
    )
    granted_at = models.DateTimeField(_("付与日時"), default=clock.now)

    class Meta:
        verbose_name = _("ロール")
        verbose_name_plural = _("ロール")
        # Two partial constraints instead of NULLS NOT DISTINCT, which SQLite lacks.
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["user", "role", "department"],
                condition=Q(department__isnull=False),
                name="role_grant_once_per_department",
            ),
            models.UniqueConstraint(
                fields=["user", "role"],
                condition=Q(department__isnull=True),
                name="role_grant_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} : {self.get_role_display()}"


class GuestProfile(models.Model):
    """ゲスト: a person outside the ward, invited to named things only, until expiry."""

    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="guest")
    name = models.CharField(_("氏名"), max_length=100)
    organisation = models.CharField(_("所属団体"), max_length=200, blank=True)
    email = models.EmailField(_("メールアドレス"))
    expires_at = models.DateTimeField(_("有効期限"))
    invited_by = models.ForeignKey(
        User, verbose_name=_("招待者"), null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("ゲスト")
        verbose_name_plural = _("ゲスト")

    def __str__(self) -> str:
        return f"{self.name}（{self.organisation}）" if self.organisation else self.name

    def is_expired(self, at: dt.datetime | None = None) -> bool:
        return (at or clock.now()) >= self.expires_at


class UserSession(models.Model):
    """One signed-in browser session, so that sessions can be listed and ended per user."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(default=clock.now)
    last_seen_at = models.DateTimeField(default=clock.now)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = _("セッション")
        verbose_name_plural = _("セッション")

    def __str__(self) -> str:
        return f"{self.user} @ {self.ip_address or '-'}"


class ApiToken(models.Model):
    """A bearer token for a bot or device.  Only a SHA-256 of the secret is kept: the
    secret has 256 bits of entropy, so a slow hash would add nothing but latency."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("名前"), max_length=100)
    # The first characters of the token, shown in lists so people can tell tokens apart.
    prefix = models.CharField(max_length=12, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(_("スコープ"), default=list)
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField(_("有効期限"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("失効日時"), null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = _("APIトークン")
        verbose_name_plural = _("APIトークン")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, at: dt.datetime | None = None) -> bool:
        moment = at or clock.now()
        return self.revoked_at is None and (self.expires_at is None or moment < self.expires_at)


class TransferBatch(models.Model):
    """人事異動: a dated batch of personnel transfers applied together on its date."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("予定")
        APPLIED = "applied", _("発令済")
        CANCELLED = "cancelled", _("取消")

    name = models.CharField(_("名称"), max_length=200)
    effective_on = models.DateField(_("発令日"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    created_at = models.DateTimeField(default=clock.now)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("人事異動")
        verbose_name_plural = _("人事異動")
        indexes: ClassVar = [
            models.Index(
                fields=["effective_on"], condition=Q(status="scheduled"), name="transfer_batch_due"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name}（{self.effective_on}）"


class Transfer(models.Model):
    """One person's move within a batch: new primary 所属 and 役職, 兼務, or retirement."""

    batch = models.ForeignKey(TransferBatch, on_delete=models.CASCADE, related_name="transfers")
    staff = models.ForeignKey(StaffProfile, on_delete=models.PROTECT, related_name="transfers")
    new_department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    new_title = models.CharField(max_length=50, blank=True)
    # Department codes of the 兼務 the person holds after the transfer (replaces the old set).
    concurrent_department_codes = models.JSONField(default=list)
    retire = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("異動明細")
        verbose_name_plural = _("異動明細")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["batch", "staff"], name="transfer_once_per_batch")
        ]

    def __str__(self) -> str:
        return f"{self.batch}: {self.staff}"
