"""Which pages a user gets: the sign-in page alone, or the product's pages by role."""

from __future__ import annotations

import streamlit as st

from db.users import Identity

# (file, title, url path); the first is the default page
READER_PAGES = (
    ("pages/home.py", "Home", "home"),
    ("pages/upload.py", "Upload", "upload"),
    ("pages/worklist.py", "Worklist", "worklist"),
    ("pages/review.py", "Review", "review"),
    ("pages/analytics.py", "Analytics", "analytics"),
    ("pages/model.py", "Model", "model"),
)
ADMIN_PAGES = (("pages/admin.py", "Admin", "admin"),)


def page_files(user: Identity) -> list[str]:
    """The page files this user may open (administration only for admins)."""
    return [f for f, _, _ in READER_PAGES + (ADMIN_PAGES if user.is_admin else ())]


def pages_for(user: Identity) -> list[st.Page]:
    specs = READER_PAGES + (ADMIN_PAGES if user.is_admin else ())
    return [st.Page(f, title=title, url_path=url, default=i == 0) for i, (f, title, url) in enumerate(specs)]
