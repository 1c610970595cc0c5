#!/usr/bin/env bash
# Set up a virtual environment and start the app on its embedded defaults:
# SQLite in ./data, the bundled model in models/default, one worker in the app process.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .  # the `cxr` command
exec .venv/bin/streamlit run Home.py "$@"
