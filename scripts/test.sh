#!/usr/bin/env bash
# Sets up a virtual environment (once) and runs every check: lint, format, types, translations, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# requirements.lock holds the versions CI tested; after a change of pyproject.toml's dependencies:
# .venv/bin/pip install -e '.[dev]' && .venv/bin/pip freeze --exclude-editable > requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
echo "== ruff";  .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy";  .venv/bin/mypy
echo "== translations"; .venv/bin/python scripts/i18n.py check
# four test processes: the tests mostly wait (on `python -m bot` subprocesses, the doubles'
# latencies, timeouts), so four keep two cores busy; later options win: -n 0 runs in this process
# (a debugger), -n 8 more at once
echo "== pytest"; .venv/bin/python -m pytest -n 4 "$@"
