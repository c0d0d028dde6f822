#!/usr/bin/env bash
# Installs the runtime dependencies into .venv and starts the editor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
exec python app.py "$@"
