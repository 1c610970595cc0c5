"""Accounts for the screens: sign-in, the session's identity, and the admin's user
management (rows and password hashing in :mod:`db.users`). Every change is audited there
with the acting admin's name."""

from __future__ import annotations

from db.users import (
    ROLES,
    Identity,
    SignInError,
    UserRow,
    authenticate,
    create_first_admin,
    create_user,
    current_identity,
    end_sessions,
    list_users,
    reset_password,
    session_epoch,
    set_active,
    set_role,
    sso_identity,
    user_count,
)

__all__ = [
    "ROLES",
    "Identity",
    "SignInError",
    "UserRow",
    "authenticate",
    "create_first_admin",
    "create_user",
    "current_identity",
    "end_sessions",
    "list_users",
    "reset_password",
    "session_epoch",
    "set_active",
    "set_role",
    "sso_identity",
    "user_count",
]
