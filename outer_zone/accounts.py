"""Agencies, users, roles, delegations and bearer tokens (no Flask here: the CLI uses it too).

Passwords are Argon2id hashes (tgw_common/web/passwords.py, shared with the console). A bearer token is 32 random
bytes shown once; only its SHA-256 is stored, which is enough for a secret of that entropy
and keeps the per-request check cheap.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, delete, func, select
from sqlalchemy.orm import Session

from tgw_common.db import transaction, utcnow
from tgw_common.web import passwords
from tgw_common.web.passwords import AccountError, check_password_policy, hash_password
from tgw_common.web.passwords import generate_password as generate_password  # re-exported for the CLI and `tgw up`

from .models import ROLES, Agency, AgencyNetwork, ApiToken, Delegation, User, UserRole
from .netaccess import normalise_cidr

AGENCY_CODE = re.compile(r"^[A-Za-z0-9]{1,16}$")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
BEARER_PREFIX = "tgwo_"


@dataclass(frozen=True)
class Principal:
    """An authenticated user as the portal sees it for one request."""

    id: int
    username: str
    agency: str
    display_name: str
    roles: frozenset[str]  # own roles plus roles delegated to the user right now
    must_change_password: bool

    def has(self, role: str) -> bool:
        return role in self.roles


# --- agencies
def add_agency(engine: Engine, code: str, name: str) -> Agency:
    if not AGENCY_CODE.match(code):
        raise AccountError(f"機關代號只能是 1 到 16 個英數字 / agency code {code!r} must be 1-16 letters or digits")
    if not name.strip():
        raise AccountError("機關名稱不可空白 / the agency name is empty")
    with transaction(engine) as s:
        if s.get(Agency, code) is not None:
            raise AccountError(f"機關 {code} 已存在 / agency {code} already exists")
        agency = Agency(code=code, name=name.strip(), active=True, created_at=utcnow())
        s.add(agency)
        return agency


def get_agency(session: Session, code: str) -> Agency:
    agency = session.get(Agency, code)
    if agency is None:
        raise AccountError(f"沒有機關 {code} / no agency {code} (add it with `tgw outer agency add`)")
    return agency


def allow_networks(engine: Engine, code: str, cidrs: list[str]) -> list[str]:
    """Add CIDRs to the agency's allow-list; returns the ones that were new."""
    networks = [normalise_cidr(c) for c in cidrs]
    added = []
    with transaction(engine) as s:
        get_agency(s, code)
        have = set(s.scalars(select(AgencyNetwork.cidr).where(AgencyNetwork.agency == code)))
        for cidr in networks:
            if cidr not in have:
                s.add(AgencyNetwork(agency=code, cidr=cidr, added_at=utcnow()))
                have.add(cidr)
                added.append(cidr)
    return added


def remove_networks(engine: Engine, code: str, cidrs: list[str]) -> list[str]:
    networks = [normalise_cidr(c) for c in cidrs]
    with transaction(engine) as s:
        get_agency(s, code)
        present = set(s.scalars(select(AgencyNetwork.cidr).where(AgencyNetwork.agency == code)))
        gone = [c for c in networks if c in present]
        if gone:
            s.execute(delete(AgencyNetwork).where(AgencyNetwork.agency == code, AgencyNetwork.cidr.in_(gone)))
    return gone


def list_agencies(engine: Engine) -> list[dict]:
    with transaction(engine) as s:
        out = []
        for a in s.scalars(select(Agency).order_by(Agency.code)):
            nets = s.scalars(select(AgencyNetwork.cidr).where(AgencyNetwork.agency == a.code)
                             .order_by(AgencyNetwork.cidr)).all()
            users = s.scalar(select(func.count()).select_from(User).where(User.agency == a.code))
            out.append({"code": a.code, "name": a.name, "active": a.active, "networks": list(nets),
                        "users": users, "created_at": a.created_at.isoformat()})
        return out


# --- users
def _check_roles(roles: list[str]) -> list[str]:
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise AccountError(f"角色須為 {', '.join(ROLES)} / roles must be among {', '.join(ROLES)}; got {roles}")
    return sorted(set(roles))


def add_user(session: Session, *, agency: str, username: str, roles: list[str], password: str,
             display_name: str = "", must_change: bool = True, min_length: int = 12) -> User:
    if not USERNAME.match(username):
        raise AccountError(f"帳號格式不符 / username {username!r}: letters, digits and . _ @ - (max 64)")
    roles = _check_roles(roles)
    check_password_policy(password, min_length)
    agency_row = get_agency(session, agency)
    if not agency_row.active:
        raise AccountError(f"機關 {agency} 已停用 / agency {agency} is disabled")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        # The same words whichever agency holds the name: never tell whether another agency has it.
        raise AccountError("此帳號無法使用，請換一個 / this username cannot be used; choose another")
    now = utcnow()
    user = User(username=username, agency=agency, display_name=display_name.strip()[:200],
                password_hash=hash_password(password), active=True, must_change_password=must_change,
                failed_logins=0, created_at=now, password_changed_at=now)
    session.add(user)
    session.flush()
    for role in roles:
        session.add(UserRole(user_id=user.id, role=role))
    return user


def set_roles(session: Session, user: User, roles: list[str]) -> None:
    roles = _check_roles(roles)
    session.execute(delete(UserRole).where(UserRole.user_id == user.id))
    for role in roles:
        session.add(UserRole(user_id=user.id, role=role))


def set_password(session: Session, user: User, password: str, *, must_change: bool, min_length: int) -> None:
    """`session` is the user's, as for every function here that changes a row."""
    passwords.set_password(user, password, must_change=must_change, min_length=min_length)


def find_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AccountError(f"沒有帳號 {username} / no user {username}")
    return user


def own_roles(session: Session, user_id: int) -> set[str]:
    return set(session.scalars(select(UserRole.role).where(UserRole.user_id == user_id)))


def delegated_roles(session: Session, user_id: int, now: datetime) -> set[str]:
    """Roles delegated to the user right now, by principals who are active and still hold them."""
    rows = session.execute(
        select(Delegation.role, Delegation.principal_id)
        .join(User, User.id == Delegation.principal_id)
        .where(Delegation.delegate_id == user_id, Delegation.revoked_at.is_(None),
               Delegation.starts_at <= now, Delegation.ends_at > now, User.active.is_(True))
    ).all()
    roles = set()
    for role, principal_id in rows:
        if role in own_roles(session, principal_id):
            roles.add(role)
    return roles


def principal(session: Session, user: User, now: datetime | None = None) -> Principal:
    now = now or utcnow()
    roles = own_roles(session, user.id) | delegated_roles(session, user.id, now)
    return Principal(user.id, user.username, user.agency, user.display_name, frozenset(roles),
                     user.must_change_password)


def list_users(engine: Engine, agency: str | None = None) -> list[dict]:
    with transaction(engine) as s:
        q = select(User).order_by(User.agency, User.username)
        if agency:
            q = q.where(User.agency == agency)
        out = []
        now = utcnow()
        for u in s.scalars(q):
            tokens = s.scalar(select(func.count()).select_from(ApiToken)
                              .where(ApiToken.user_id == u.id, ApiToken.revoked_at.is_(None)))
            out.append({"id": u.id, "username": u.username, "agency": u.agency, "display_name": u.display_name,
                        "roles": sorted(own_roles(s, u.id)), "delegated_roles": sorted(delegated_roles(s, u.id, now)),
                        "active": u.active, "locked": bool(u.locked_until and u.locked_until > now),
                        "locked_until": u.locked_until.isoformat() if u.locked_until else None,
                        "must_change_password": u.must_change_password, "tokens": tokens,
                        "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None})
        return out


# --- delegations (代理設定)
def add_delegation(session: Session, *, agency: str, principal_id: int, delegate_id: int, role: str,
                   starts_at: datetime, ends_at: datetime, created_by: str) -> Delegation:
    if role == "admin" or role not in ROLES:
        raise AccountError("只能代理簽核與上傳角色 / only the working roles can be delegated, not the administrator")
    if principal_id == delegate_id:
        raise AccountError("代理人不可為本人 / a user cannot be their own delegate")
    if ends_at <= starts_at:
        raise AccountError("代理期間結束須晚於開始 / the period must end after it starts")
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_([principal_id, delegate_id])))}
    if len(users) != 2 or any(u.agency != agency for u in users.values()):
        raise AccountError("兩位使用者都須屬於本機關 / both users must belong to this agency")
    if role not in own_roles(session, principal_id):
        raise AccountError(f"被代理人沒有「{role}」角色 / the principal does not hold the role {role}")
    row = Delegation(agency=agency, principal_id=principal_id, delegate_id=delegate_id, role=role,
                     starts_at=starts_at, ends_at=ends_at, created_by=created_by, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def list_delegations(session: Session, agency: str) -> list[dict]:
    principal_user = User.__table__.alias("p")
    delegate_user = User.__table__.alias("d")
    rows = session.execute(
        select(Delegation, principal_user.c.username, delegate_user.c.username)
        .join(principal_user, principal_user.c.id == Delegation.principal_id)
        .join(delegate_user, delegate_user.c.id == Delegation.delegate_id)
        .where(Delegation.agency == agency).order_by(Delegation.starts_at.desc())
    ).all()
    now = utcnow()
    return [{"id": d.id, "principal": p, "delegate": dl, "role": d.role, "starts_at": d.starts_at,
             "ends_at": d.ends_at, "created_by": d.created_by, "revoked_at": d.revoked_at,
             "active": d.revoked_at is None and d.starts_at <= now < d.ends_at}
            for d, p, dl in rows]


# --- bearer tokens
# Who may hold an API token: every officer of the workflow; an administrator manages users
# in the browser only.
TOKEN_ROLES = ("preparer", "reviewer", "accountant", "head", "releaser")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, username: str, label: str = "") -> tuple[int, str]:
    """A new token for an officer (any role but a bare admin); returns (id, token). The token
    is not stored anywhere. It acts as its user with that user's roles at each request."""
    with transaction(engine) as s:
        user = find_user(s, username)
        if not user.active:
            raise AccountError(f"帳號 {username} 已停用 / user {username} is disabled")
        if not own_roles(s, user.id) & set(TOKEN_ROLES):
            raise AccountError(f"權杖只發給承辦、覆核、會計、機關長官與放行人員 / tokens are for officers "
                               f"({', '.join(TOKEN_ROLES)}); {username} is none of them")
        token = BEARER_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(user_id=user.id, token_hash=token_hash(token), label=label[:200], created_at=utcnow())
        s.add(row)
        s.flush()
        return row.id, token


def revoke_tokens(engine: Engine, *, token_id: int | None = None, username: str | None = None) -> list[int]:
    with transaction(engine) as s:
        conds = [ApiToken.revoked_at.is_(None)]
        if token_id is not None:
            conds.append(ApiToken.id == token_id)
        if username is not None:
            conds.append(ApiToken.user_id == find_user(s, username).id)
        rows = s.scalars(select(ApiToken).where(and_(*conds))).all()
        for row in rows:
            row.revoked_at = utcnow()
        return [r.id for r in rows]


def list_tokens(engine: Engine, username: str | None = None) -> list[dict]:
    with transaction(engine) as s:
        q = select(ApiToken, User.username, User.agency).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
        if username:
            q = q.where(User.username == username)
        return [{"id": t.id, "user": u, "agency": a, "label": t.label, "created_at": t.created_at.isoformat(),
                 "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                 "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None}
                for t, u, a in s.execute(q)]


def user_for_token(session: Session, token: str) -> tuple[User, ApiToken] | None:
    """The active user behind a live token, or None (unknown, revoked, disabled user or agency)."""
    if not token.startswith(BEARER_PREFIX) or len(token) > 200:
        return None
    row = session.execute(
        select(User, ApiToken).join(ApiToken, ApiToken.user_id == User.id).join(Agency, Agency.code == User.agency)
        .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None), User.active.is_(True),
               Agency.active.is_(True))
    ).first()
    return (row[0], row[1]) if row else None


def users_of(session: Session, agency: str) -> list[User]:
    return list(session.scalars(select(User).where(User.agency == agency).order_by(User.username)))


def any_admin_left(session: Session, agency: str, *, excluding: int) -> bool:
    q = (select(func.count()).select_from(User).join(UserRole, UserRole.user_id == User.id)
         .where(User.agency == agency, User.active.is_(True), UserRole.role == "admin",
                User.id != excluding))
    return bool(session.scalar(q))
