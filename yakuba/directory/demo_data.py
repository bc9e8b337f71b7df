"""The demo ward (デモ区): about 100 所属 under 15 部 and about 2,300 staff.

Everything is generated from the lists below with a fixed seed, so every run builds the
same ward and a second run changes nothing.  Only the named demo accounts get a password
(Argon2 is deliberately slow; hashing 2,300 passwords would take minutes).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.contrib.auth.hashers import make_password
from django.db import transaction

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory.actions.staff import SyncResult, sync_departments, sync_staff
from yakuba.directory.csv_io import DepartmentRecord, StaffRecord
from yakuba.directory.models import Department, GuestProfile, Role, RoleGrant, User
from yakuba.lib import clock

DEMO_PASSWORD = "yakuba-demo-2025"  # noqa: S105 (documented demo password, README)
DEFAULT_STAFF = 2300
SEED = 20250401
MAIL_DOMAIN = "demo-ku.example.jp"

# (部, かな, [(課, かな, [係, …]), …]).  Codes: 部 100, 200, …; 課 110, 120, …; 係 111, 112, …
WARD: list[tuple[str, str, list[tuple[str, str, list[str]]]]] = [
    (
        "総務部",
        "そうむぶ",
        [
            ("総務課", "そうむか", ["文書係", "法規係"]),
            ("人事課", "じんじか", ["人事係", "給与係", "研修厚生係"]),
            ("情報政策課", "じょうほうせいさくか", ["情報システム係", "情報セキュリティ係"]),
            ("経理課", "けいりか", ["契約係", "庁舎管理係"]),
        ],
    ),
    (
        "企画部",
        "きかくぶ",
        [
            ("企画課", "きかくか", ["企画調整係"]),
            ("財政課", "ざいせいか", ["財政係", "資産活用係"]),
            ("広報課", "こうほうか", ["広報係", "広聴係"]),
        ],
    ),
    (
        "区民部",
        "くみんぶ",
        [
            ("戸籍住民課", "こせきじゅうみんか", ["戸籍係", "住民記録係", "マイナンバーカード係"]),
            ("税務課", "ぜいむか", ["課税係", "収納係"]),
            ("保険医療課", "ほけんいりょうか", ["国民健康保険係", "後期高齢者医療係"]),
        ],
    ),
    (
        "子ども教育部",
        "こどもきょういくぶ",
        [
            ("子ども政策課", "こどもせいさくか", ["子ども政策係"]),
            ("保育園課", "ほいくえんか", ["入園相談係", "保育運営係"]),
            ("子育て支援課", "こそだてしえんか", ["子育て相談係"]),
        ],
    ),
    (
        "健康福祉部",
        "けんこうふくしぶ",
        [
            ("福祉推進課", "ふくしすいしんか", []),
            ("障害福祉課", "しょうがいふくしか", ["障害者支援係"]),
            ("介護保険課", "かいごほけんか", ["介護認定係", "介護給付係"]),
            ("生活援護課", "せいかつえんごか", ["保護第一係", "保護第二係"]),
        ],
    ),
    (
        "地域支えあい推進部",
        "ちいきささえあいすいしんぶ",
        [
            ("地域包括ケア推進課", "ちいきほうかつけあすいしんか", []),
            (
                "すこやか福祉センター課",
                "すこやかふくしせんたーか",
                ["北部すこやか係", "南部すこやか係"],
            ),
        ],
    ),
    (
        "環境部",
        "かんきょうぶ",
        [
            ("環境課", "かんきょうか", ["環境計画係"]),
            ("ごみゼロ推進課", "ごみぜろすいしんか", ["清掃事業係", "リサイクル係"]),
        ],
    ),
    (
        "都市基盤部",
        "としきばんぶ",
        [
            ("都市計画課", "としけいかくか", ["都市計画係"]),
            ("建築課", "けんちくか", ["建築審査係", "建築指導係"]),
            ("道路課", "どうろか", ["道路管理係", "道路工事係"]),
            ("公園課", "こうえんか", []),
        ],
    ),
    (
        "地域振興部",
        "ちいきしんこうぶ",
        [
            ("産業振興課", "さんぎょうしんこうか", ["商工係", "観光係"]),
            ("文化国際課", "ぶんかこくさいか", []),
        ],
    ),
    (
        "防災危機管理室",
        "ぼうさいききかんりしつ",
        [
            ("防災課", "ぼうさいか", ["防災計画係", "災害対策係"]),
            ("生活安全課", "せいかつあんぜんか", []),
        ],
    ),
    ("会計室", "かいけいしつ", [("会計課", "かいけいか", ["審査係", "出納係"])]),
    (
        "教育委員会事務局",
        "きょういくいいんかいじむきょく",
        [
            ("教育総務課", "きょういくそうむか", ["教育総務係"]),
            ("学校教育課", "がっこうきょういくか", ["学務係", "指導係"]),
            ("生涯学習課", "しょうがいがくしゅうか", []),
        ],
    ),
    (
        "選挙管理委員会事務局",
        "せんきょかんりいいんかいじむきょく",
        [("選挙課", "せんきょか", [])],
    ),
    ("監査事務局", "かんさじむきょく", [("監査課", "かんさか", [])]),
    (
        "区議会事務局",
        "くぎかいじむきょく",
        [("議事調査課", "ぎじちょうさか", ["議事係", "調査係"])],
    ),
]

SURNAMES = [
    ("佐藤", "さとう"), ("鈴木", "すずき"), ("高橋", "たかはし"), ("田中", "たなか"),
    ("伊藤", "いとう"), ("渡辺", "わたなべ"), ("山本", "やまもと"), ("中村", "なかむら"),
    ("小林", "こばやし"), ("加藤", "かとう"), ("吉田", "よしだ"), ("山田", "やまだ"),
    ("佐々木", "ささき"), ("山口", "やまぐち"), ("松本", "まつもと"), ("井上", "いのうえ"),
    ("木村", "きむら"), ("林", "はやし"), ("斎藤", "さいとう"), ("清水", "しみず"),
    ("山崎", "やまざき"), ("森", "もり"), ("池田", "いけだ"), ("橋本", "はしもと"),
    ("阿部", "あべ"), ("石川", "いしかわ"), ("山下", "やました"), ("中島", "なかじま"),
    ("石井", "いしい"), ("小川", "おがわ"), ("前田", "まえだ"), ("岡田", "おかだ"),
    ("長谷川", "はせがわ"), ("藤田", "ふじた"), ("後藤", "ごとう"), ("近藤", "こんどう"),
    ("村上", "むらかみ"), ("遠藤", "えんどう"), ("青木", "あおき"), ("坂本", "さかもと"),
    ("斉藤", "さいとう"), ("福田", "ふくだ"), ("太田", "おおた"), ("西村", "にしむら"),
    ("藤井", "ふじい"), ("金子", "かねこ"), ("岡本", "おかもと"), ("藤原", "ふじわら"),
    ("中野", "なかの"), ("三浦", "みうら"), ("原田", "はらだ"), ("中川", "なかがわ"),
    ("松田", "まつだ"), ("竹内", "たけうち"), ("小野", "おの"), ("田村", "たむら"),
    ("中山", "なかやま"), ("和田", "わだ"), ("石田", "いしだ"), ("森田", "もりた"),
    ("上田", "うえだ"), ("原", "はら"), ("内田", "うちだ"), ("柴田", "しばた"),
    ("酒井", "さかい"), ("宮崎", "みやざき"), ("横山", "よこやま"), ("高木", "たかぎ"),
    ("安藤", "あんどう"), ("宮本", "みやもと"), ("大野", "おおの"), ("小島", "こじま"),
    ("工藤", "くどう"), ("谷口", "たにぐち"), ("今井", "いまい"), ("高田", "たかだ"),
    ("丸山", "まるやま"), ("増田", "ますだ"), ("杉山", "すぎやま"), ("村田", "むらた"),
]  # fmt: skip

GIVEN_NAMES = [
    ("翔太", "しょうた"), ("大輔", "だいすけ"), ("健太", "けんた"), ("拓也", "たくや"),
    ("直樹", "なおき"), ("和也", "かずや"), ("達也", "たつや"), ("浩二", "こうじ"),
    ("誠", "まこと"), ("剛", "つよし"), ("隆", "たかし"), ("修", "おさむ"),
    ("健一", "けんいち"), ("博之", "ひろゆき"), ("正樹", "まさき"), ("雄一", "ゆういち"),
    ("亮", "りょう"), ("悠人", "ゆうと"), ("陽介", "ようすけ"), ("智也", "ともや"),
    ("洋平", "ようへい"), ("聡", "さとし"), ("学", "まなぶ"), ("稔", "みのる"),
    ("康弘", "やすひろ"), ("秀樹", "ひでき"), ("俊介", "しゅんすけ"), ("光太郎", "こうたろう"),
    ("健二", "けんじ"), ("哲也", "てつや"), ("優子", "ゆうこ"), ("恵子", "けいこ"),
    ("裕子", "ゆうこ"), ("美咲", "みさき"), ("陽子", "ようこ"), ("真由美", "まゆみ"),
    ("明美", "あけみ"), ("直子", "なおこ"), ("久美子", "くみこ"), ("由美子", "ゆみこ"),
    ("智子", "ともこ"), ("典子", "のりこ"), ("幸子", "さちこ"), ("京子", "きょうこ"),
    ("さくら", "さくら"), ("彩", "あや"), ("愛", "あい"), ("舞", "まい"),
    ("美穂", "みほ"), ("麻衣", "まい"), ("香織", "かおり"), ("千尋", "ちひろ"),
    ("結衣", "ゆい"), ("奈々", "なな"), ("遥", "はるか"), ("葵", "あおい"),
    ("沙織", "さおり"), ("理恵", "りえ"), ("綾香", "あやか"), ("純子", "じゅんこ"),
    ("花子", "はなこ"), ("明日香", "あすか"), ("瞳", "ひとみ"), ("恵", "めぐみ"),
]  # fmt: skip

WEIGHTS = {"戸籍住民課": 3, "生活援護課": 2, "税務課": 2, "保育園課": 2, "介護保険課": 2}


@dataclass(frozen=True)
class DemoAccount:
    username: str
    family: tuple[str, str]
    given: tuple[str, str]
    department: str
    title: str
    roles: tuple[Role, ...]
    note: str


# The named accounts of README.md, each placed in a real post of the ward.
DEMO_ACCOUNTS = (
    DemoAccount(
        "admin", ("山本", "やまもと"), ("健一", "けんいち"), "情報システム係", "主任",
        (Role.IT_ADMIN,), "システム管理者（情報政策課）、管理画面（/admin/）",
    ),
    DemoAccount(
        "kanri", ("佐々木", "ささき"), ("誠", "まこと"), "庁舎管理係", "係長",
        (Role.FACILITY_MANAGER,), "施設管理者（経理課 庁舎管理係長）",
    ),
    DemoAccount(
        "kansa", ("井上", "いのうえ"), ("由美子", "ゆみこ"), "監査課", "主査",
        (Role.AUDITOR,), "監査（監査事務局）: 監査ログの閲覧",
    ),
    DemoAccount(
        "kacho", ("田中", "たなか"), ("浩二", "こうじ"), "総務課", "課長",
        (), "所属長（総務部 総務課長）",
    ),
    DemoAccount(
        "shokuin", ("鈴木", "すずき"), ("花子", "はなこ"), "文書係", "主事",
        (), "一般職員（総務課 文書係）",
    ),
    DemoAccount(
        "madoguchi", ("高橋", "たかはし"), ("美咲", "みさき"), "住民記録係", "主事",
        (Role.COUNTER_STAFF,), "窓口職員（戸籍住民課 住民記録係）",
    ),
)  # fmt: skip

DEMO_GUEST = "guest"
# (username, name, organisation, can sign in)
GUESTS = (
    (DEMO_GUEST, "中村 大輔", "みどり交通株式会社", True),
    ("guest-shakyo", "小林 恵子", "デモ区社会福祉協議会", False),
    ("guest-denryoku", "加藤 隆", "東都電力パワーグリッド株式会社", False),
)


@dataclass
class Slot:
    """One post to fill: a department (by name) and a title."""

    department_code: str
    department_name: str
    title: str
    concurrent: tuple[str, ...] = ()


@dataclass
class Ward:
    departments: list[DepartmentRecord]
    staff: list[StaffRecord]
    roles: set[tuple[str, Role, str]] = field(default_factory=set)


def build_departments() -> list[DepartmentRecord]:
    records = []
    for b, (bu, bu_kana, sections) in enumerate(WARD, start=1):
        bu_code = str(b * 100)
        records.append(DepartmentRecord(bu_code, bu, bu_kana, "bu", "", b * 100))
        for k, (ka, ka_kana, teams) in enumerate(sections, start=1):
            ka_code = str(b * 100 + k * 10)
            records.append(DepartmentRecord(ka_code, ka, ka_kana, "ka", bu_code, b * 100 + k * 10))
            for j, team in enumerate(teams, start=1):
                records.append(
                    DepartmentRecord(
                        str(b * 100 + k * 10 + j), team, "", "kakari", ka_code, b * 100 + k * 10 + j
                    )
                )
    return records


def _slots(departments: list[DepartmentRecord], total: int) -> list[Slot]:
    """Heads first (部長, 課長, 係長), then the remaining posts spread over the leaves."""
    head_title = {"bu": "部長", "ka": "課長", "kakari": "係長"}
    slots = [Slot(d.code, d.name, head_title[d.level]) for d in departments]
    parents = {d.parent_code for d in departments}
    leaves = [d for d in departments if d.level != "bu" and d.code not in parents]
    by_code = {d.code: d for d in departments}

    def weight(d: DepartmentRecord) -> int:
        section = d if d.level == "ka" else by_code[d.parent_code]
        return WEIGHTS.get(section.name, 1)

    remaining = max(0, total - len(slots))
    total_weight = sum(weight(d) for d in leaves)
    shares = [remaining * weight(d) // total_weight for d in leaves]
    for i in range(remaining - sum(shares)):
        shares[i % len(shares)] += 1
    for leaf, share in zip(leaves, shares, strict=True):
        for n in range(share):
            title = "主査" if n % 10 == 1 else "主任" if n % 4 == 2 else "主事"
            slots.append(Slot(leaf.code, leaf.name, title))
    return slots[:total]


def build_ward(total: int = DEFAULT_STAFF) -> Ward:
    """The same ward for the same ``total`` every time (fixed seed)."""
    rng = random.Random(SEED)  # noqa: S311 (demo names, not security)
    departments = build_departments()
    slots = _slots(departments, max(total, len(DEMO_ACCOUNTS)))
    named = _place_named_accounts(slots, departments)
    codes = [d.code for d in departments if d.level != "bu"]
    bousai = next(d.code for d in departments if d.name == "防災課")
    ward = Ward(departments=departments, staff=[])
    for i, slot in enumerate(slots):
        number = f"{100001 + i:06d}"
        account = named.get(i)
        if account is not None:
            family, given, username = account.family, account.given, account.username
        else:
            family, given, username = rng.choice(SURNAMES), rng.choice(GIVEN_NAMES), None
        # About one in thirty holds a 兼務, most often in 防災課 (disaster duty).
        concurrent: tuple[str, ...] = ()
        if rng.random() < 1 / 30:
            other = bousai if rng.random() < 0.5 else rng.choice(codes)
            if other != slot.department_code:
                concurrent = (other,)
        ward.staff.append(
            StaffRecord(
                employee_number=number,
                family_name=family[0],
                given_name=given[0],
                family_kana=family[1],
                given_kana=given[1],
                department_code=slot.department_code,
                title=slot.title,
                extension=_extension(slot.department_code),
                email=f"{username or 's' + number}@{MAIL_DOMAIN}",
                concurrent_codes=concurrent,
                username=username,
            )
        )
        login = username or number
        ward.roles |= _roles_for(login, slot, account, departments)
    return ward


def _place_named_accounts(
    slots: list[Slot], departments: list[DepartmentRecord]
) -> dict[int, DemoAccount]:
    """Each named account takes the first free post that fits it (a small test ward may
    have none: then the post is added)."""
    placed: dict[int, DemoAccount] = {}
    codes = {d.name: d.code for d in departments}
    for account in DEMO_ACCOUNTS:
        index = next(
            (
                i
                for i, slot in enumerate(slots)
                if i not in placed
                and slot.department_name == account.department
                and slot.title == account.title
            ),
            None,
        )
        if index is None:
            slots.append(Slot(codes[account.department], account.department, account.title))
            index = len(slots) - 1
        placed[index] = account
    return placed


def _extension(code: str) -> str:
    """One four-digit line per department, as a 係 shares its phones."""
    return str(2000 + int(code))


def _roles_for(
    login: str, slot: Slot, account: DemoAccount | None, departments: list[DepartmentRecord]
) -> set[tuple[str, Role, str]]:
    roles: set[tuple[str, Role, str]] = set()
    if slot.title in {"部長", "課長"}:
        roles.add((login, Role.SECTION_HEAD, slot.department_code))
    if account is not None:
        roles |= {(login, role, "") for role in account.roles}
    parents = {d.code: d.parent_code for d in departments}
    section = slot.department_code if slot.title == "課長" else parents.get(slot.department_code)
    names = {d.code: d.name for d in departments}
    if slot.department_name == "情報システム係" and slot.title in {"係長", "主査"}:
        roles.add((login, Role.IT_ADMIN, ""))
    if slot.department_name == "庁舎管理係" and slot.title in {"係長", "主任"}:
        roles.add((login, Role.FACILITY_MANAGER, ""))
    if slot.department_name == "監査課":
        roles.add((login, Role.AUDITOR, ""))
    in_koseki = names.get(section or "") == "戸籍住民課" or slot.department_name == "戸籍住民課"
    if in_koseki and slot.title in {"主事", "主任", "主査"}:
        roles.add((login, Role.COUNTER_STAFF, ""))
    return roles


# --- Loading -----------------------------------------------------------------------------


@dataclass
class DemoResult:
    departments: SyncResult
    staff: SyncResult
    roles_added: int
    guests_added: int
    accounts_changed: list[str]

    @property
    def has_changes(self) -> bool:
        return bool(
            self.departments.has_changes
            or self.staff.has_changes
            or self.roles_added
            or self.guests_added
            or self.accounts_changed
        )


def do_load_demo(*, staff_count: int = DEFAULT_STAFF) -> DemoResult:
    """Build or bring up to date the demo ward, in one transaction, audited once
    (``DEMO_LOADED``) when anything changed.  A second run changes nothing."""
    ward = build_ward(staff_count)
    actor = Actor.system("yakuba demo")
    with transaction.atomic():
        departments = sync_departments(ward.departments)
        staff = sync_staff(ward.staff, acting_user=actor)
        roles_added = _sync_roles(ward.roles)
        guests_added = _sync_guests()
        accounts_changed = _sync_named_accounts()
        result = DemoResult(departments, staff, roles_added, guests_added, accounts_changed)
        if result.has_changes:
            record(
                AuditAction.DEMO_LOADED,
                actor=actor,
                details={
                    "departments_created": len(departments.created),
                    "departments_changed": len(departments.changed),
                    "staff_created": len(staff.created),
                    "staff_changed": len(staff.changed),
                    "roles_added": roles_added,
                    "guests_added": guests_added,
                    "accounts_changed": accounts_changed,
                },
            )
    return result


def _sync_roles(wanted: set[tuple[str, Role, str]]) -> int:
    """Add the missing grants (never removes any: an operator's grants stay)."""
    users = dict(User.objects.filter(kind=User.Kind.STAFF).values_list("username", "pk"))
    departments = dict(Department.objects.values_list("code", "pk"))
    held = set(RoleGrant.objects.values_list("user_id", "role", "department_id"))
    missing = {
        (users[login], role.value, departments[code] if code else None)
        for login, role, code in wanted
    } - held
    now = clock.now()
    RoleGrant.objects.bulk_create(
        [
            RoleGrant(user_id=user_id, role=role, department_id=department_id, granted_at=now)
            for user_id, role, department_id in sorted(missing, key=str)
        ],
        batch_size=500,
    )
    it_admins = {users[login] for login, role, _ in wanted if role == Role.IT_ADMIN}
    User.objects.filter(pk__in=it_admins, is_staff=False).update(is_staff=True)
    return len(missing)


def _sync_named_accounts() -> list[str]:
    """Give the named accounts (and the signing-in guest) the demo password once, only
    while they have none, and make ``admin`` a superuser.

    One Argon2 hash serves them all: they share the documented password anyway, and
    each hash costs about half a second on a busy machine."""
    changed = []
    encoded: str | None = None
    usernames = [a.username for a in DEMO_ACCOUNTS] + [g[0] for g in GUESTS if g[3]]
    for user in User.objects.filter(username__in=usernames).order_by("username"):
        fields = []
        if not user.has_usable_password():
            encoded = encoded or make_password(DEMO_PASSWORD)
            user.password = encoded
            fields.append("password")
        if user.username == "admin" and not (user.is_superuser and user.is_staff):
            user.is_superuser = user.is_staff = True
            fields += ["is_superuser", "is_staff"]
        if fields:
            user.save(update_fields=fields)
            changed.append(user.username)
    return changed


def _sync_guests() -> int:
    added = 0
    for username, name, organisation, _can_sign_in in GUESTS:
        if User.objects.filter(username=username).exists():
            continue
        user = User(username=username, kind=User.Kind.GUEST, display_name=name)
        user.email = f"{username}@{MAIL_DOMAIN}"
        # The demo password, if any, is set by _sync_named_accounts.
        user.password = make_password(None)
        user.save()
        GuestProfile.objects.create(
            user=user,
            name=name,
            organisation=organisation,
            email=user.email,
            expires_at=clock.now() + dt.timedelta(days=365),
        )
        added += 1
    return added


def describe_accounts() -> Iterator[tuple[str, str, str]]:
    """(username, name, what they can do) of each named demo account, for the CLI."""
    for account in DEMO_ACCOUNTS:
        yield account.username, f"{account.family[0]} {account.given[0]}", account.note
    yield DEMO_GUEST, GUESTS[0][1], f"ゲスト（{GUESTS[0][2]}）: 職員名簿は見られません"
