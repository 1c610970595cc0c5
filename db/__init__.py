"""Storage: schema, sessions, migrations and queries (SQLAlchemy 2, no Streamlit)."""
