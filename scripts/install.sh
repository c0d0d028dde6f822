#!/usr/bin/env bash
# Creates .venv and installs the project's dependencies into it.
#   bash scripts/install.sh        runtime dependencies
#   bash scripts/install.sh dev    runtime + test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch/torchvision are pinned here (not in requirements.txt) to the builds that
# lie on this project's machines; a Space installs whatever requirements.txt allows.
if [ "$(uname -m)" = "x86_64" ]; then
    python -m pip install -q torch==2.14.1 torchvision==0.29.1
else
    python -m pip install -q torch==2.9.1 torchvision==0.24.1
fi
if [ "${1:-}" = "dev" ]; then
    python -m pip install -q -r requirements-dev.txt
else
    python -m pip install -q -r requirements.txt
fi
