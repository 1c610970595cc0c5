"""Streamlit widgets and page helpers; pages/ holds thin entry files that call these."""
