"""Entry point: ``streamlit run Home.py``. Only the sign-in page exists until a user
signs in; each page file checks the session again on its own."""

import streamlit as st

from dashboard.auth import session_cookie_updates, sign_in_page, sign_out, signed_in_user
from dashboard.navigation import pages_for, signed_out_pages
from dashboard.state import ensure_receiver, ensure_worker, warm_imports
from dashboard.text import plain

st.set_page_config(page_title="Chest X-ray review", page_icon="🫁", layout="wide")
ensure_worker()
ensure_receiver()
warm_imports()
user = signed_in_user()
session_cookie_updates()
if user is None:
    page = st.navigation(signed_out_pages(sign_in_page), position="hidden")
else:
    page = st.navigation(pages_for(user))
    with st.sidebar:
        st.caption(f"Signed in as **{plain(user.username)}** ({user.role})")
        if st.button("Sign out"):
            sign_out()
            st.rerun()
# the reading screen gives the sidebar's width to the image (one click opens it); every
# other page opens with it
st.set_page_config(initial_sidebar_state="collapsed" if page.url_path == "review" else "expanded")
page.run()
