"""Headless engine of the chest X-ray review dashboard.

Nothing in this package imports Streamlit: the app, the queue worker and command
line scripts all share it.
"""
