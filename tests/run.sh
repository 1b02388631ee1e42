#!/usr/bin/env bash
# The test command: set up a virtual environment from the project's own files
# and run the whole suite (the README's second command; .ci/run calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m pytest -n 2 -p no:cacheprovider "$@"
