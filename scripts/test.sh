#!/usr/bin/env bash
# Installs the test dependencies into .venv and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
. .venv/bin/activate
python -m pytest -q -ra "$@"
