"""Sign-in: local accounts (argon2) or single sign-on through st.login when configured."""

from __future__ import annotations

import streamlit as st

from dashboard.text import plain
from db.users import (
    Identity,
    SignInError,
    authenticate,
    create_first_admin,
    current_identity,
    user_count,
)

SESSION_KEY = "user_id"
CLIENT_ATTEMPTS, CLIENT_WINDOW_S = 20, 15 * 60  # sign-in attempts per client address


@st.cache_resource(show_spinner=False)
def _client_limiter():
    from core.ratelimit import SlidingWindowLimiter

    return SlidingWindowLimiter(CLIENT_ATTEMPTS, CLIENT_WINDOW_S)


def _client_key() -> str:
    """The client's address as the server sees it (one key for all when unknown)."""
    try:
        return str(st.context.ip_address or "unknown")
    except Exception:  # noqa: BLE001 - AppTest and older servers have no address
        return "unknown"


def sso_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file
        return False


def signed_in_user() -> Identity | None:
    """The user of this session, re-checked against the database on every run."""
    from dashboard.state import settings_and_engine

    user_id = st.session_state.get(SESSION_KEY)
    if user_id is None and sso_configured() and getattr(st.user, "is_logged_in", False):
        from db.users import sso_identity

        _, engine = settings_and_engine()
        identity = sso_identity(
            engine,
            str(st.user.get("sub") or st.user.get("email") or ""),
            str(st.user.get("email") or st.user.get("name") or ""),
        )
        if identity is not None:
            st.session_state[SESSION_KEY] = identity.id
        return identity
    if user_id is None:
        return None
    _, engine = settings_and_engine()
    identity = current_identity(engine, int(user_id))
    if identity is None:  # disabled or deleted: the session ends now
        st.session_state.pop(SESSION_KEY, None)
    return identity


def require_user(admin: bool = False) -> Identity:
    """Stop the page unless someone (an admin, if asked) is signed in."""
    user = signed_in_user()
    if user is None:
        st.warning("Please sign in to see this page.")
        st.stop()
    if admin and not user.is_admin:
        st.error("This page is for administrators.")
        st.stop()
    return user


def sign_in_page() -> None:
    from dashboard.state import DISCLAIMER, settings_and_engine

    _, engine = settings_and_engine()
    st.title("Chest X-ray review")
    st.caption(DISCLAIMER)
    if sso_configured():
        st.button("Sign in with single sign-on", on_click=st.login, type="primary")
        st.caption("or with a local account:")
    if user_count(engine) == 0:
        _first_run_form(engine)
        return
    with st.form("sign_in"):
        username = st.text_input("User name", key="sign_in_user")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if not _client_limiter().allow(_client_key()):
            st.error("Too many sign-in attempts from this address: try again in 15 minutes.")
            return
        try:
            user = authenticate(engine, username, password)
        except SignInError as exc:
            st.error(plain(exc))
        else:
            st.session_state[SESSION_KEY] = user.id
            st.rerun()


def _first_run_form(engine) -> None:
    st.info("No account exists yet: create the first administrator.")
    with st.form("first_admin"):
        username = st.text_input("Administrator user name")
        password = st.text_input("Password (10 characters or more)", type="password")
        submitted = st.form_submit_button("Create administrator")
    if submitted:
        try:
            user = create_first_admin(engine, username, password)
        except (ValueError, PermissionError) as exc:
            st.error(plain(exc))
        else:
            st.session_state[SESSION_KEY] = user.id
            st.rerun()


def sign_out() -> None:
    st.session_state.pop(SESSION_KEY, None)
    if sso_configured() and getattr(st.user, "is_logged_in", False):
        st.logout()
