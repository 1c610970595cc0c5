"""Sign-in: local accounts (argon2) or single sign-on through st.login when configured."""

from __future__ import annotations

import streamlit as st

from dashboard.text import plain
from services.accounts import (
    Identity,
    SignInError,
    authenticate,
    create_first_admin,
    current_identity,
    user_count,
)

SESSION_KEY = "user_id"
EPOCH_KEY = "session_epoch"  # the account's session epoch when this session signed in
CLIENT_ATTEMPTS, CLIENT_WINDOW_S = 20, 15 * 60  # sign-in attempts per client address


@st.cache_resource(show_spinner=False)
def _client_limiter():
    from services.ratelimit import SlidingWindowLimiter

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


@st.cache_resource(show_spinner=False)
def _secret(data_dir: str) -> bytes:
    from services.session_token import site_secret

    return site_secret(data_dir)


def _from_cookie(engine, settings) -> tuple[int, int] | None:
    """(user, epoch) of a valid session cookie: signed, younger than the site's session
    limit, its epoch current and the account active."""
    import time

    from services.accounts import session_epoch
    from services.session_token import COOKIE, verify

    try:
        token = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 - AppTest and bare runs have no request
        return None
    claims = verify(_secret(str(settings.data_dir)), token, time.time(), int(settings.session_hours * 3600))
    if claims is None or session_epoch(engine, claims.user_id) != claims.epoch:
        return None
    return claims.user_id, claims.epoch


def _open_session(engine, user_id: int) -> None:
    """This browser session is the account's, under its current epoch: raising the epoch
    (sign-out anywhere, password reset, disable) ends it at its next interaction."""
    from services.accounts import session_epoch

    st.session_state[SESSION_KEY] = user_id
    st.session_state[EPOCH_KEY] = session_epoch(engine, user_id)


def _write_cookie(value: str, max_age: int) -> None:
    """Set (or with max_age 0, delete) the session cookie in the browser. Streamlit has no
    server-side cookie API, so a zero-height component sets it in the page's own origin."""
    import json

    import streamlit.components.v1 as components

    from services.session_token import COOKIE

    cookie = json.dumps(f"{COOKIE}={value}; Path=/; Max-Age={int(max_age)}; SameSite=Strict")
    components.html(
        f"<script>const c = {cookie} + (window.parent.location.protocol === 'https:' ? '; Secure' : '');"
        "window.parent.document.cookie = c;</script>",
        height=0,
    )


def session_cookie_updates() -> None:
    """Issue the cookie after a sign-in, delete it after a sign-out (called once per run)."""
    from dashboard.state import settings_and_engine
    from services.accounts import session_epoch
    from services.session_token import LIFETIME_S, issue

    action = st.session_state.pop("cookie_action", None)
    if action == "clear":
        _write_cookie("", 0)
    elif action == "issue" and st.session_state.get(SESSION_KEY) is not None:
        import time

        settings, engine = settings_and_engine()
        user_id = int(st.session_state[SESSION_KEY])
        epoch = session_epoch(engine, user_id)
        if epoch is not None:
            _write_cookie(issue(_secret(str(settings.data_dir)), user_id, epoch, time.time()), LIFETIME_S)


def signed_in_user() -> Identity | None:
    """The user of this session, re-checked against the database on every run; a refresh
    (a new Streamlit session) is recognised by its signed session cookie."""
    from dashboard.state import settings_and_engine

    user_id = st.session_state.get(SESSION_KEY)
    if user_id is None:
        settings, engine = settings_and_engine()
        found = _from_cookie(engine, settings)
        if found is not None:
            user_id = found[0]
            st.session_state[SESSION_KEY], st.session_state[EPOCH_KEY] = found
    if user_id is None and sso_configured() and getattr(st.user, "is_logged_in", False):
        from services.accounts import sso_identity

        _, engine = settings_and_engine()
        identity = sso_identity(
            engine,
            str(st.user.get("sub") or st.user.get("email") or ""),
            str(st.user.get("email") or st.user.get("name") or ""),
        )
        if identity is not None:
            _open_session(engine, identity.id)
        return identity
    if user_id is None:
        return None
    _, engine = settings_and_engine()
    if st.session_state.get(EPOCH_KEY) is None:  # a session opened before epochs were kept here
        _open_session(engine, int(user_id))
    identity = current_identity(engine, int(user_id), st.session_state.get(EPOCH_KEY))
    if identity is None:  # disabled, deleted, signed out elsewhere or password reset: it ends now
        st.session_state.pop(SESSION_KEY, None)
        st.session_state.pop(EPOCH_KEY, None)
    return identity


def require_user(admin: bool = False) -> Identity:
    """Stop the page unless someone (an admin, if asked) is signed in."""
    from dashboard.navigation import leave_directory_mode

    leave_directory_mode()
    user = signed_in_user()
    if user is None:
        # a page opened directly (a link or a refresh before any navigation exists) asks for
        # a sign-in right here; afterwards the same address, query included, opens as asked
        st.warning("Please sign in to see this page.")
        sign_in_page()
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
            _open_session(engine, user.id)
            st.session_state["cookie_action"] = "issue"
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
            _open_session(engine, user.id)
            st.session_state["cookie_action"] = "issue"
            st.rerun()


def sign_out() -> None:
    """End this session and every session cookie of the account (its epoch is raised)."""
    from dashboard.state import settings_and_engine
    from services.accounts import current_identity, end_sessions

    user_id = st.session_state.pop(SESSION_KEY, None)
    st.session_state.pop(EPOCH_KEY, None)
    if user_id is not None:
        _, engine = settings_and_engine()
        identity = current_identity(engine, int(user_id))
        end_sessions(engine, int(user_id), identity.username if identity else str(user_id))
    st.session_state["cookie_action"] = "clear"
    if sso_configured() and getattr(st.user, "is_logged_in", False):
        st.logout()
