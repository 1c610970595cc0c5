"""Entry point: ``streamlit run Home.py``. Only the sign-in page exists until a user
signs in; each page file checks the session again on its own."""
import streamlit as st

from dashboard.auth import sign_in_page, sign_out, signed_in_user
from dashboard.state import ensure_worker
from dashboard.text import plain

st.set_page_config(page_title="Chest X-ray review", page_icon="🫁", layout="wide")
ensure_worker()
user = signed_in_user()
if user is None:
    page = st.navigation([st.Page(sign_in_page, title="Sign in", url_path="sign-in")])
else:
    pages = [
        st.Page("pages/home.py", title="Home", url_path="home", default=True),
        st.Page("pages/upload.py", title="Upload", url_path="upload"),
        st.Page("pages/worklist.py", title="Worklist", url_path="worklist"),
        st.Page("pages/review.py", title="Review", url_path="review"),
        st.Page("pages/analytics.py", title="Analytics", url_path="analytics"),
        st.Page("pages/model.py", title="Model", url_path="model"),
    ]
    if user.is_admin:
        pages.append(st.Page("pages/admin.py", title="Admin", url_path="admin"))
    page = st.navigation(pages)
    with st.sidebar:
        st.caption(f"Signed in as **{plain(user.username)}** ({user.role})")
        if st.button("Sign out"):
            sign_out()
            st.rerun()
page.run()
