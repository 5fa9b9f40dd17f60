#!/usr/bin/env bash
# Sets up a virtual environment (once) and runs every check: lint, format, types, translations, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
echo "== ruff";  .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy";  .venv/bin/mypy
echo "== translations"; .venv/bin/python scripts/i18n.py check
echo "== pytest"; .venv/bin/python -m pytest "$@"
