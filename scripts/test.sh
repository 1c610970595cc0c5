#!/usr/bin/env bash
# Set up a virtual environment with the pinned requirements, check lint, format, the
# layer contracts and types, and run the whole test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .  # the `cxr` command
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
bash scripts/check_bundle.sh  # the committed reading-component bundle equals a fresh build
.venv/bin/mypy  # core, db, services and training are type-checked (pyproject.toml [tool.mypy])
exec .venv/bin/python -m pytest "$@"
