"""The screens (run by st.navigation in Home.py); a package only so the import contracts can see them."""
