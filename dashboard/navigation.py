"""Which pages a user gets: the sign-in page alone, or the product's pages by role."""

from __future__ import annotations

import streamlit as st

from services.accounts import Identity

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


def signed_out_pages(sign_in) -> list[st.Page]:
    """Before sign-in every product address shows the sign-in form, so a link such as
    /review?study=11 asks for a sign-in and then opens that study (the address and its
    query stay as they were)."""
    pages = [st.Page(sign_in, title="Sign in", url_path="sign-in", default=True)]
    for _, title, url in READER_PAGES + ADMIN_PAGES:

        def page(sign_in=sign_in) -> None:
            sign_in()

        page.__name__ = f"sign_in_for_{url}"  # each page needs its own identity
        pages.append(st.Page(page, title=title, url_path=url))
    return pages


def leave_directory_mode() -> None:
    """Streamlit routes the first request of a fresh server by the pages/ directory (its
    older multipage mode) until the entry script has called ``st.navigation`` once, so a
    link such as /review?study=11 opened first would run the page alone, without the
    sign-in gate and navigation of Home.py. A page run that way switches the server to
    Home.py's navigation and runs again (the address and query are kept)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without that mode
        return
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
