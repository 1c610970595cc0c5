"""Local accounts: argon2 password hashes, roles, rate-limited sign-in.

``cxr users create NAME --role admin`` (password from a prompt or stdin),
``cxr users disable NAME``, ``cxr users list``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, func, select, text

from db import audit
from db.schema import AuditEvent, User, utcnow
from db.session import run_write

ROLES = ("reviewer", "admin")
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
MIN_PASSWORD = 10
# Unicode control (Cc), format (Cf: bidi overrides, zero-width joiners and spaces) and line
# or paragraph separators: invisible, so a name holding one can pass for another
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
MAX_USERNAME = 80  # the column's size: longer input is cut before it is used or stored
MAX_PASSWORD = 1024  # argon2 hashes anything, but a megabyte "password" is an attack
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Identity:
    """What a page needs to know about the signed-in person."""

    id: int
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class SignInError(Exception):
    """Shown to the user as is; never says whether the name or the password was wrong."""


def create_user(
    engine: Engine,
    username: str,
    password: str,
    role: str = "reviewer",
    actor: str | None = None,
    only_if_no_user: bool = False,
) -> Identity:
    """Create an account. The password is hashed before the write transaction opens, so
    argon2's deliberate slowness never holds the database's write lock.

    ``only_if_no_user``: the check that no account exists and the insert happen in one
    serialised transaction (SQLite's BEGIN IMMEDIATE; an exclusive table lock on
    PostgreSQL), so two people cannot both become the first administrator.
    """
    username = username.strip()
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if not username or len(username) > MAX_USERNAME:
        raise ValueError(f"a user name of 1 to {MAX_USERNAME} characters is needed")
    if any(unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in username):
        raise ValueError(
            "a user name cannot hold control, direction (bidi) or zero-width characters: "
            "they make one name look like another in the audit trail"
        )
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
    password_hash = _hasher.hash(password)

    def work(session) -> Identity:
        if only_if_no_user:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("LOCK TABLE users IN EXCLUSIVE MODE"))
            if session.execute(select(func.count()).select_from(User)).scalar_one():
                raise PermissionError("an administrator already exists; ask them for an account")
        if session.execute(select(User.id).where(User.username == username)).first():
            raise ValueError(f"user {username!r} already exists")
        user = User(username=username, password_hash=password_hash, role=role)
        session.add(user)
        session.flush()
        audit.record(session, "user_created", actor or username, None, username=username, role=role)
        return Identity(user.id, user.username, user.role)

    return run_write(engine, work)


def create_first_admin(engine: Engine, username: str, password: str) -> Identity:
    """Only while no user exists: the first-run form cannot be reused to add admins."""
    return create_user(engine, username, password, "admin", actor="first-run", only_if_no_user=True)


def user_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(User)).scalar_one()


def _recent_failures(conn, username: str) -> int:
    since = utcnow() - FAILURE_WINDOW
    return conn.execute(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "sign_in_failed", AuditEvent.actor == username, AuditEvent.at >= since)
    ).scalar_one()


def authenticate(engine: Engine, username: str, password: str) -> Identity:
    """Check a password; after MAX_FAILURES failures in 15 minutes the account waits.

    The lookup is a read, argon2 runs outside any transaction, and only the outcome is
    written (a short write): a spray of attempts never holds the write lock. A name is
    cut to MAX_USERNAME characters before anything is stored, and failures are audited
    only up to the lock (one further row says the name was locked), so the append-only
    audit trail cannot be flooded through this form.
    """
    username = (username or "").strip()[:MAX_USERNAME]
    password = (password or "")[:MAX_PASSWORD]
    with engine.connect() as conn:
        failures = _recent_failures(conn, username)
        row = conn.execute(
            select(User.id, User.username, User.role, User.active, User.password_hash).where(User.username == username)
        ).first()
    if failures >= MAX_FAILURES:
        raise SignInError("Too many failed attempts: try again in 15 minutes.")
    ok = False
    if row is not None and row.password_hash:
        try:
            ok = _hasher.verify(row.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    else:
        _hasher.hash("timing-equaliser")  # same work whether or not the user exists
    if row is None or not ok or not row.active:
        reason = "disabled" if ok else "bad_credentials"
        locked = failures + 1 >= MAX_FAILURES
        run_write(
            engine,
            lambda s: audit.record(
                s, "sign_in_failed", username, None, username=username, reason=reason, locked=locked
            ),
        )
        raise SignInError("Wrong user name or password, or the account is disabled.")
    new_hash = _hasher.hash(password) if _hasher.check_needs_rehash(row.password_hash) else None

    def work(session) -> None:
        if new_hash:
            user = session.get(User, row.id)
            if user is not None:
                user.password_hash = new_hash
        audit.record(session, "sign_in", username, None, username=username)

    run_write(engine, work)
    return Identity(row.id, row.username, row.role)


def session_epoch(engine: Engine, user_id: int) -> int | None:
    """The account's current session epoch (None: no such active account)."""
    with engine.connect() as conn:
        row = conn.execute(select(User.session_epoch, User.active).where(User.id == user_id)).first()
    return int(row.session_epoch) if row and row.active else None


def end_sessions(engine: Engine, user_id: int, actor: str) -> None:
    """Sign-out: raise the epoch so every session cookie issued before stops working."""

    def work(session) -> None:
        user = session.get(User, user_id)
        if user is not None:
            user.session_epoch = (user.session_epoch or 0) + 1
            audit.record(session, "sign_out", actor, None, username=user.username)

    run_write(engine, work)


def current_identity(engine: Engine, user_id: int, epoch: int | None = None) -> Identity | None:
    """Re-read on every page run, so a disabled user's session ends at once; with the
    ``epoch`` the session was opened under, a sign-out elsewhere, a password reset or a
    disable and re-enable since then end it too."""
    with engine.connect() as conn:
        row = conn.execute(
            select(User.id, User.username, User.role, User.active, User.session_epoch).where(User.id == user_id)
        ).first()
    if row is None or not row.active or (epoch is not None and int(row.session_epoch or 0) != epoch):
        return None
    return Identity(row.id, row.username, row.role)


def sso_identity(engine: Engine, subject: str, display_name: str) -> Identity | None:
    """Map a single-sign-on subject to a local account, creating a reviewer the first time.

    Roles stay local: an admin promotes SSO users. A disabled account is refused.
    """
    if not subject:
        return None

    def work(session) -> Identity | None:
        user = session.execute(select(User).where(User.sso_subject == subject)).scalar_one_or_none()
        if user is None:
            base = "".join(
                ch for ch in (display_name or subject) if unicodedata.category(ch) not in INVISIBLE_CATEGORIES
            )
            base = base.strip()[:60] or "sso-user"
            name = base
            n = 1
            while session.execute(select(User.id).where(User.username == name)).first():
                n += 1
                name = f"{base}-{n}"
            user = User(username=name, password_hash=None, role="reviewer", sso_subject=subject)
            session.add(user)
            session.flush()
            audit.record(session, "user_created", "sso", None, username=name, role="reviewer", method="sso")
        if not user.active:
            audit.record(session, "sign_in_failed", user.username, None, username=user.username, reason="disabled")
            return None
        audit.record(session, "sign_in", user.username, None, username=user.username, method="sso")
        return Identity(user.id, user.username, user.role)

    return run_write(engine, work)


def set_active(engine: Engine, username: str, active: bool, actor: str) -> None:
    def work(session) -> None:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            raise ValueError(f"no user {username!r}")
        user.active = active
        user.session_epoch = (user.session_epoch or 0) + 1  # enabled again, the old cookies stay dead
        audit.record(session, "user_enabled" if active else "user_disabled", actor, None, username=username)

    run_write(engine, work)


def set_role(engine: Engine, username: str, role: str, actor: str) -> None:
    """Change an account's role (e.g. promote a single-sign-on reviewer to admin); audited."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")

    def work(session) -> None:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            raise ValueError(f"no user {username!r}")
        if user.role != role:
            audit.record(session, "user_role_changed", actor, None, username=username, previous=user.role, role=role)
            user.role = role

    run_write(engine, work)


def reset_password(engine: Engine, username: str, password: str, actor: str) -> None:
    """Set a new password (hashed before the write transaction, like create_user); audited,
    the password itself never."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
    password_hash = _hasher.hash(password)

    def work(session) -> None:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            raise ValueError(f"no user {username!r}")
        user.password_hash = password_hash
        user.session_epoch = (user.session_epoch or 0) + 1  # every session of the account ends
        audit.record(session, "user_password_reset", actor, None, username=username)

    run_write(engine, work)


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    role: str
    active: bool
    created_at: datetime


def list_users(engine: Engine) -> list[UserRow]:
    with engine.connect() as conn:
        rows = conn.execute(select(User.id, User.username, User.role, User.active, User.created_at).order_by(User.id))
        return [UserRow(*r) for r in rows]


def main(argv: list[str] | None = None) -> int:
    from core.config import load_settings
    from db.bootstrap import open_database

    parser = argparse.ArgumentParser(prog="cxr users")
    sub = parser.add_subparsers(dest="cmd", required=True)
    create = sub.add_parser("create")
    create.add_argument("username")
    create.add_argument("--role", choices=ROLES, default="reviewer")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for name in ("disable", "enable"):
        sub.add_parser(name).add_argument("username")
    sub.add_parser("list")
    args = parser.parse_args(argv)
    engine = open_database(load_settings())
    try:
        if args.cmd == "create":
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
            user = create_user(engine, args.username, password, args.role, actor="cli")
            print(f"created {user.role} {user.username}")
        elif args.cmd in ("disable", "enable"):
            set_active(engine, args.username, args.cmd == "enable", actor="cli")
            print(f"{args.cmd}d {args.username}")
        else:
            for u in list_users(engine):
                print(f"{u.username}\t{u.role}\t{'active' if u.active else 'disabled'}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
